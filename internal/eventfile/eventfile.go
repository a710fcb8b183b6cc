// Package eventfile reads the JSON Lines event files that `stele submit`
// takes: one event object per line,
//
//	{"source": "...", "event_id": "...", "kind": "...", "event_time": "<RFC 3339>",
//	 "format": "...", "record": <any JSON value>, "source_seq": 0}
//
// The record's bytes are kept exactly as they appear in the line.
package eventfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// MaxLineBytes is the longest line a Reader accepts.
const MaxLineBytes = 4 << 20

// Line is one non-blank line of an event file: its event, or why it is not
// one.
type Line struct {
	// No is the 1-based line number.
	No    int
	Event *stelev1.Event
	Err   error
}

// Reader reads events line by line, in constant memory.
type Reader struct {
	r             *bufio.Reader
	defaultSource string
	no            int
}

// NewReader reads events from r. defaultSource fills a missing "source".
func NewReader(r io.Reader, defaultSource string) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), defaultSource: defaultSource}
}

// Next returns the next non-blank line, or io.EOF after the last one. A line
// that is not a valid event comes back with Err set; reading goes on.
func (r *Reader) Next() (Line, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			var long *tooLongError
			if errors.As(err, &long) {
				return Line{No: r.no, Err: err}, nil
			}
			return Line{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, perr := Parse(line, r.defaultSource)
		return Line{No: r.no, Event: ev, Err: perr}, nil
	}
}

type tooLongError struct{ n int }

func (e *tooLongError) Error() string {
	return fmt.Sprintf("line is longer than %d bytes", e.n)
}

// readLine returns the next line without its line ending (LF or CRLF);
// io.EOF at the end. A line whose content is over MaxLineBytes is skipped
// and reported as a tooLongError, in constant memory.
func (r *Reader) readLine() ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.r.ReadSlice('\n')
		if !tooLong {
			// Keep at most the content limit plus "\r\n".
			if len(buf)+len(chunk) > MaxLineBytes+2 {
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 && !tooLong {
				return nil, io.EOF
			}
		default:
			return nil, fmt.Errorf("reading line %d: %w", r.no+1, err)
		}
		r.no++
		line := bytes.TrimSuffix(buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if tooLong || len(line) > MaxLineBytes {
			return nil, &tooLongError{MaxLineBytes}
		}
		return line, nil
	}
}

// rfc3339 is RFC 3339's date-time production (section 5.6); Go's parsers
// alone also take a one-digit hour or a comma before the fraction.
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)

func parseRFC3339(s string) (time.Time, error) {
	if !rfc3339.MatchString(s) {
		return time.Time{}, errors.New("not RFC 3339")
	}
	return time.Parse(time.RFC3339Nano, strings.ToUpper(s))
}

var knownKeys = map[string]bool{
	"source": true, "event_id": true, "kind": true, "event_time": true,
	"format": true, "record": true, "source_seq": true,
}

// checkKeys refuses what encoding/json would quietly accept: a key in another
// case ("SOURCE") or a key given twice, where one value would silently win.
func checkKeys(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	bad := func(err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("not an event object: %v", err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err != nil {
			return bad(err)
		}
		return errors.New("not an event object: the line must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		key, _ := tok.(string)
		if !knownKeys[key] {
			return fmt.Errorf("unknown field %q (fields are source, event_id, kind, event_time, format, record, source_seq)", key)
		}
		if seen[key] {
			return fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return bad(err)
		}
	}
	return nil
}

type rawEvent struct {
	Source    *string         `json:"source"`
	EventID   *string         `json:"event_id"`
	Kind      *string         `json:"kind"`
	EventTime *string         `json:"event_time"`
	Format    *string         `json:"format"`
	Record    json.RawMessage `json:"record"`
	SourceSeq *uint64         `json:"source_seq"`
}

// Parse parses one line. It checks the line's shape (known fields matched
// exactly, no repeated field, types, RFC 3339 time, record present); the
// server checks the values.
func Parse(line []byte, defaultSource string) (*stelev1.Event, error) {
	if err := checkKeys(line); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var raw rawEvent
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not an event object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the event object")
	}
	ev := &stelev1.Event{}
	switch {
	case raw.Source != nil && *raw.Source != "":
		ev.Source = *raw.Source
	case defaultSource != "":
		ev.Source = defaultSource
	default:
		return nil, errors.New(`"source" is missing: add it to the line or pass --source`)
	}
	// event_id, kind and event_time may be left out (no key, or an empty
	// string): the server derives them from the record when its format
	// says them, and refuses the event, saying which is missing, when not.
	if raw.EventID != nil {
		ev.EventId = *raw.EventID
	}
	if raw.Kind != nil {
		ev.Kind = *raw.Kind
	}
	if raw.Format == nil {
		return nil, errors.New(`"format" is missing`)
	}
	ev.Format = *raw.Format
	if raw.EventTime != nil && *raw.EventTime != "" {
		t, err := parseRFC3339(*raw.EventTime)
		if err != nil {
			return nil, fmt.Errorf(`"event_time" is not an RFC 3339 time: %q`, *raw.EventTime)
		}
		ev.EventTime = timestamppb.New(t)
	}
	if len(raw.Record) == 0 || bytes.Equal(raw.Record, []byte("null")) {
		return nil, errors.New(`"record" is missing or null`)
	}
	ev.Record = append([]byte(nil), raw.Record...)
	if raw.SourceSeq != nil {
		ev.SourceSeq = *raw.SourceSeq
	}
	return ev, nil
}
