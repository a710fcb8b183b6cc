// Package importer reads identity-event records out of the files operators
// have: Microsoft Graph list responses, Event Hub messages, storage-account
// blobs (JSON Lines), plain JSON arrays, CloudTrail files and Okta System Log
// exports, gzipped or not. It streams: memory stays bounded by the largest
// record, whatever the file size. Each record comes back with its exact raw
// bytes (byte-identical to the input span), its 1-based record number and
// the byte offset of its first byte in the decompressed stream.
package importer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Container is the outer shape of a file: how records are laid out in it.
type Container string

// The containers a Reader understands.
const (
	// Auto detects the container from the start of the file.
	Auto Container = ""
	// Graph is Microsoft Graph list responses,
	// {"@odata.context":…,"value":[…],"@odata.nextLink":…}, one or several
	// pages one after another.
	Graph Container = "graph"
	// EventHub is Event Hub message bodies, {"records":[…]}, one or several
	// (typically one per line).
	EventHub Container = "eventhub"
	// CloudTrail is CloudTrail log files, {"Records":[…]}.
	CloudTrail Container = "cloudtrail"
	// Array is a plain JSON array of records (or several arrays one after
	// another), as Okta's /api/v1/logs returns.
	Array Container = "array"
	// JSONL is JSON Lines: one record per line, as storage-account blobs
	// hold them.
	JSONL Container = "jsonl"
	// Object is one JSON object that is a record, pretty-printed or not
	// (how AWS's docs show a CloudTrail record, or a Graph or Okta event
	// saved from a browser), or several one after another.
	Object Container = "object"
	// OktaHook is Okta Event Hook request bodies,
	// {"eventType":"com.okta.event_hook",…,"data":{"events":[…]}}: the
	// push form of the System Log.
	OktaHook Container = "oktahook"
	// CSV is a Log Analytics / Sentinel query export as CSV: a header row
	// of column names, then one row per record. Each row becomes a JSON
	// object of column name to cell text, in column order (see Record).
	CSV Container = "csv"
	// LATables is a Log Analytics query API response,
	// {"tables":[{"name":…,"columns":[{"name":…,"type":…}],"rows":[[…]]}]}:
	// each row becomes a JSON object of column name to cell, the cells'
	// JSON values kept byte for byte.
	LATables Container = "latables"
)

// Containers lists the containers that can be asked for by name.
var Containers = []Container{Graph, EventHub, CloudTrail, Array, JSONL, Object, OktaHook, CSV, LATables}

// ParseContainer returns the container named s ("auto" or "" detects it).
func ParseContainer(s string) (Container, error) {
	if s == "" || s == "auto" {
		return Auto, nil
	}
	for _, c := range Containers {
		if string(c) == s {
			return c, nil
		}
	}
	names := make([]string, len(Containers))
	for i, c := range Containers {
		names[i] = string(c)
	}
	return Auto, fmt.Errorf("unknown format %q: use auto, %s", s, strings.Join(names, ", "))
}

// wrapperKey is the key of the records array in a wrapper container.
func (c Container) wrapperKey() string {
	switch c {
	case Graph:
		return "value"
	case EventHub:
		return "records"
	case CloudTrail:
		return "Records"
	}
	return ""
}

// MaxRecordBytes is the largest record a Reader reads. A larger one in a
// JSON Lines file is reported and skipped; in any other container it stops
// the file, since finding its end would mean holding it.
const MaxRecordBytes = 16 << 20

// Record is one record of a file, or why an element is not one.
type Record struct {
	// N is the record's 1-based number in the file, counting malformed ones.
	N int
	// Offset is the byte offset of the record's first byte in the
	// (decompressed) stream.
	Offset int64
	// Raw is the record's exact bytes. Nil when Err is set. A CSV row has
	// no JSON bytes of its own: Raw is then the row as a JSON object of
	// column name to cell text (strings, in column order, nothing
	// escaped that need not be), and Offset is the row's first byte.
	Raw []byte
	// Err says why the element is not a record; the Reader goes on after it.
	Err error
}

// ErrPartialLine is the Err of the last line of a JSON Lines file when it
// has no line ending and is not a complete JSON object: a blob that is still
// being written. It is not imported; import the file again once it is
// complete (what was imported comes back as duplicates).
var ErrPartialLine = errors.New("incomplete last line (no line ending, not a complete JSON object): the blob may still be growing; import it again later")

// StopError is a problem after which the rest of a file cannot be read.
// Every record before it was returned.
type StopError struct {
	// Offset is the byte offset of the problem in the decompressed stream.
	Offset int64
	// Records is how many records (good or not) were returned before.
	Records int
	Err     error
}

func (e *StopError) Error() string {
	return fmt.Sprintf("at byte offset %d, after record %d: %v: the rest of the file cannot be read", e.Offset, e.Records, e.Err)
}

func (e *StopError) Unwrap() error { return e.Err }

// Reader streams the records of one file.
type Reader struct {
	container Container
	n         int
	next      func() (Record, error)
	done      error // sticky terminal error (io.EOF or a *StopError)

	// JSON Lines
	br     *bufio.Reader
	offset int64

	// CSV
	csv *csvReader

	// Okta Event Hooks: the records of the current request body
	hook []Record

	// Log Analytics query responses
	la *laState

	// JSON containers
	tap  *tap
	dec  *json.Decoder
	top  int // top-level values seen
	in   bool
	skip int64 // bytes skipped before the decoder's stream (a BOM)
}

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// utf8BOM is skipped at the start of a file (Windows tools write it).
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// detectBytes is how much of the file detection looks at.
const detectBytes = 1 << 20

// NewReader reads records from r, gunzipping it when it starts with the gzip
// magic bytes. With container Auto it detects the container from the start
// of the file (see Detect).
func NewReader(r io.Reader, container Container) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	var skip int64
	if b, _ := br.Peek(3); bytes.Equal(b, utf8BOM) {
		br.Discard(3)
		skip = 3
	}
	if container == Auto {
		head, err := br.Peek(detectBytes)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			if len(head) == 0 {
				return nil, fmt.Errorf("reading: %w", err)
			}
		}
		if len(head) < detectBytes {
			// bufio's buffer is smaller than detectBytes: grow it.
			br2 := bufio.NewReaderSize(br, detectBytes)
			head, _ = br2.Peek(detectBytes)
			br = br2
		}
		c, err := Detect(head)
		if err != nil {
			return nil, err
		}
		container = c
	}
	rd := &Reader{container: container, offset: skip, skip: skip}
	switch container {
	case JSONL:
		rd.br = br
		rd.next = rd.nextLine
	case CSV:
		cr, err := newCSVReader(br, skip)
		if err != nil {
			return nil, err
		}
		rd.csv = cr
		rd.next = rd.nextCSV
	case Array, Graph, EventHub, CloudTrail, Object, OktaHook, LATables:
		rd.tap = &tap{r: br, base: skip}
		rd.dec = json.NewDecoder(rd.tap)
		rd.tap.dec = rd.dec
		rd.next = rd.nextJSON
	default:
		return nil, fmt.Errorf("unknown container %q", container)
	}
	return rd, nil
}

// Container is the container being read (detected or given).
func (r *Reader) Container() Container { return r.container }

// Next returns the next record, io.EOF after the last one, or a *StopError
// (or another read error, such as a damaged gzip stream) when the rest of
// the file cannot be read. A malformed record is a Record with Err set, and
// reading goes on after it.
func (r *Reader) Next() (Record, error) {
	if r.done != nil {
		return Record{}, r.done
	}
	rec, err := r.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			var se *StopError
			if !errors.As(err, &se) {
				err = &StopError{Offset: r.position(), Records: r.n, Err: err}
			}
		}
		r.done = err
		return Record{}, err
	}
	return rec, nil
}

// position is how far the reader got, for errors.
func (r *Reader) position() int64 {
	if r.dec != nil {
		return r.skip + r.dec.InputOffset()
	}
	if r.csv != nil {
		return r.csv.offset()
	}
	return r.offset
}

// Detect tells the container from the start of a file (after any gzip
// layer): '[' is an Array; '{' is a Graph response if the first object has
// a "value" array or an "@odata." key (but a single Graph entity,
// "@odata.context" ending in "$entity", is an Object), Event Hub if it has
// a "records" array, CloudTrail if it has a "Records" array, an Okta Event
// Hook if its eventType is "com.okta.event_hook", and otherwise a record:
// JSON Lines when the first object is on one line, an Object when it
// spans lines (pretty-printed). A first line of comma-separated names with
// a Log Analytics column (TimeGenerated) is CSV.
func Detect(head []byte) (Container, error) {
	head = bytes.TrimPrefix(head, utf8BOM)
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) == 0 {
		return JSONL, nil // empty: no records either way
	}
	switch trimmed[0] {
	case '[':
		return Array, nil
	case '{':
	default:
		if isCSVHeader(trimmed) {
			return CSV, nil
		}
		return Auto, fmt.Errorf("not JSON: the file starts with %q; stele import reads JSON arrays, JSON objects ({\"value\":[…]}, {\"records\":[…]}, {\"Records\":[…]}, one record), JSON Lines and Log Analytics CSV exports (a header row with TimeGenerated)", firstBytes(trimmed))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil {
		return Auto, detectErr(err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Auto, detectErr(err)
		}
		key, _ := t.(string)
		if key == "@odata.context" {
			if v, err := dec.Token(); err == nil {
				if ctx, _ := v.(string); strings.HasSuffix(ctx, "/$entity") {
					return Object, nil // one Graph entity, not a list
				}
			}
			return Graph, nil
		}
		if strings.HasPrefix(key, "@odata.") {
			return Graph, nil
		}
		if key == "tables" {
			if t, err := dec.Token(); err == nil && t == json.Delim('[') {
				return LATables, nil
			}
			return JSONL, nil
		}
		if key == "eventType" {
			v, err := dec.Token()
			if err != nil {
				return Auto, detectErr(err)
			}
			if v == "com.okta.event_hook" {
				return OktaHook, nil
			}
			continue
		}
		var c Container
		switch key {
		case "value":
			c = Graph
		case "records":
			c = EventHub
		case "Records":
			c = CloudTrail
		}
		if c != Auto {
			if t, err := dec.Token(); err == nil && t == json.Delim('[') {
				return c, nil
			}
			return JSONL, nil // a record that happens to have such a key
		}
		if err := skipValue(dec); err != nil {
			return Auto, detectErr(err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Auto, detectErr(err)
	}
	if bytes.IndexByte(trimmed[:dec.InputOffset()], '\n') >= 0 {
		return Object, nil // a record over several lines cannot be JSON Lines
	}
	return JSONL, nil
}

func detectErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot tell the file's format from its first %d bytes (the first object's keys do not show it): pass --format", detectBytes)
	}
	return fmt.Errorf("cannot tell the file's format, its start is not JSON (%v): pass --format, or check the file", err)
}

// skipValue skips one value token by token, holding no more than a token.
func skipValue(dec *json.Decoder) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == json.Delim('{') || t == json.Delim('[') {
		return skipRest(dec)
	}
	return nil
}

func firstBytes(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}

// nextLine reads JSON Lines.
func (r *Reader) nextLine() (Record, error) {
	for {
		start := r.offset
		line, complete, tooLong, err := r.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return Record{}, err
		}
		if tooLong {
			r.n++
			return Record{N: r.n, Offset: start, Err: fmt.Errorf("line is longer than %d bytes: skipped", MaxRecordBytes)}, nil
		}
		lead := len(line) - len(bytes.TrimLeft(line, " \t\r"))
		body := bytes.TrimRight(line[lead:], " \t\r")
		if len(body) == 0 {
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			continue
		}
		r.n++
		rec := Record{N: r.n, Offset: start + int64(lead)}
		switch {
		case !json.Valid(body):
			if !complete {
				rec.Err = ErrPartialLine
			} else {
				rec.Err = fmt.Errorf("not valid JSON: %v", jsonErr(body))
			}
		case body[0] != '{':
			rec.Err = notObject(body)
		default:
			rec.Raw = bytes.Clone(body)
		}
		return rec, nil
	}
}

// readLine returns the next line without its "\n"; complete tells whether
// it ended with one. A line over MaxRecordBytes is consumed in constant
// memory and reported as tooLong.
func (r *Reader) readLine() (line []byte, complete, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.offset += int64(len(chunk))
		if !tooLong {
			if len(buf)+len(chunk) > MaxRecordBytes+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf, []byte("\n")), true, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, false, tooLong, err
		}
	}
}

// jsonErr is why b is not valid JSON, with the offset inside b.
func jsonErr(b []byte) error {
	var v json.RawMessage
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v at byte %d of the record", se, se.Offset-1)
	}
	if err == nil {
		err = errors.New("invalid JSON")
	}
	return err
}

func notObject(b []byte) error {
	what := "a JSON value"
	switch b[0] {
	case '[':
		what = "an array"
	case '"':
		what = "a string"
	case 't', 'f':
		what = "a boolean"
	case 'n':
		what = "null"
	default:
		what = "a number"
	}
	return fmt.Errorf("not a JSON object but %s: a record must be an object", what)
}

// nextJSON reads arrays and wrapper objects with a json.Decoder, keeping each
// element's exact bytes.
func (r *Reader) nextJSON() (Record, error) {
	switch r.container {
	case Object:
		r.tap.mark(r.dec.InputOffset())
		if !r.dec.More() {
			if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
				return Record{}, r.stopToken(err)
			}
			return Record{}, io.EOF
		}
		r.top++
		return r.element()
	case OktaHook:
		return r.nextHook()
	case LATables:
		return r.nextLATable()
	}
	for {
		if r.in {
			r.tap.mark(r.dec.InputOffset())
			if r.dec.More() {
				return r.element()
			}
			if err := r.expect(']'); err != nil {
				return Record{}, err
			}
			r.in = false
			if r.container != Array {
				// Go on through the wrapper's keys: there may be another
				// records array (a repeated key), or the object ends.
				found, err := r.wrapperKeys()
				if err != nil {
					return Record{}, err
				}
				r.in = found
			}
			continue
		}
		r.tap.mark(r.dec.InputOffset())
		t, err := r.dec.Token()
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		if err != nil {
			return Record{}, r.stopToken(err)
		}
		r.top++
		switch {
		case r.container == Array && t == json.Delim('['):
			r.in = true
		case r.container != Array && t == json.Delim('{'):
			start := r.skip + r.tap.at
			found, err := r.wrapperKeys()
			if err != nil {
				return Record{}, err
			}
			if !found {
				r.n++
				return Record{N: r.n, Offset: start, Err: fmt.Errorf("top-level object %d has no %q array: skipped; is this a %s file? (pass --format)", r.top, r.container.wrapperKey(), r.container)}, nil
			}
			r.in = true
		default:
			want := "a JSON array"
			if r.container != Array {
				want = "a JSON object"
			}
			return Record{}, r.stopAt(r.dec.InputOffset()-1, fmt.Errorf("top-level value %d is not %s (format %s)", r.top, want, r.container))
		}
	}
}

// wrapperKeys reads the keys of a wrapper object up to its next records
// array, skipping other values. found is false when the object ended
// without one.
func (r *Reader) wrapperKeys() (found bool, err error) {
	for r.dec.More() {
		r.tap.mark(r.dec.InputOffset())
		t, err := r.dec.Token()
		if err != nil {
			return false, r.stopToken(err)
		}
		if t != r.container.wrapperKey() {
			if err := r.skipJSONValue(); err != nil {
				return false, err
			}
			continue
		}
		r.tap.mark(r.dec.InputOffset())
		t, err = r.dec.Token()
		if err != nil {
			return false, r.stopToken(err)
		}
		switch t {
		case json.Delim('['):
			return true, nil
		case json.Delim('{'):
			// Not an array: skip it (a scalar was consumed whole).
			if err := skipRest(r.dec); err != nil {
				return false, r.stopToken(err)
			}
		}
	}
	return false, r.expect('}')
}

// skipRest skips to the end of an object or array whose opening delimiter
// was just read.
func skipRest(dec *json.Decoder) error {
	depth := 1
	for depth > 0 {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

func (r *Reader) skipJSONValue() error {
	r.tap.mark(r.dec.InputOffset())
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return r.stop(err)
	}
	return nil
}

func (r *Reader) expect(d json.Delim) error {
	r.tap.mark(r.dec.InputOffset())
	t, err := r.dec.Token()
	if err != nil {
		return r.stopToken(err)
	}
	if t != d {
		return r.stopAt(r.dec.InputOffset()-1, fmt.Errorf("expected %q, found %v", string(d), t))
	}
	return nil
}

// element reads one element of the records array.
func (r *Reader) element() (Record, error) {
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		return Record{}, r.stop(err)
	}
	r.n++
	end := r.dec.InputOffset()
	rec := Record{N: r.n, Offset: r.skip + end - int64(len(raw))}
	if len(raw) == 0 || raw[0] != '{' {
		rec.Err = notObject(raw)
		return rec, nil
	}
	rec.Raw = raw
	return rec, nil
}

// stopToken turns an error of Decoder.Token into a StopError. Token's
// syntax errors carry the exact offset.
func (r *Reader) stopToken(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return r.stopAt(se.Offset, se)
	}
	return r.stop(err)
}

// stop turns a decoding error into a StopError at the exact byte where the
// input went wrong. The tap holds the bytes from the last mark, so the
// value that failed can be checked again alone to find the offending byte.
func (r *Reader) stop(err error) error {
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return r.stopAt(r.tap.at, fmt.Errorf("a value is larger than %d bytes (the most a record may be)", MaxRecordBytes))
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	var se *json.SyntaxError
	if errors.As(err, &se) && (strings.HasPrefix(se.Error(), "expected comma") || strings.HasPrefix(se.Error(), "expected colon")) {
		return r.stopAt(se.Offset, se) // Decode's own token checks are exact
	}
	if !errors.As(err, &se) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return r.stopAt(r.tap.at+int64(len(r.tap.buf)-r.tap.lo), err) // a read error (e.g. gzip)
	}
	off, msg := r.tap.locate()
	if msg == "" {
		msg = err.Error()
	}
	return r.stopAt(off, errors.New(msg))
}

func (r *Reader) stopAt(off int64, err error) error {
	return &StopError{Offset: r.skip + off, Records: r.n, Err: err}
}

// tap sits between the input and the json.Decoder. It keeps the bytes the
// decoder has read since the last mark, so an error can be located exactly,
// and it refuses to let the decoder buffer more than MaxRecordBytes (plus a
// little) beyond the last mark, which bounds memory.
type tap struct {
	r    io.Reader
	dec  *json.Decoder
	base int64  // stream offset of the decoder's offset 0 (a skipped BOM)
	at   int64  // decoder offset of buf[lo]
	buf  []byte // bytes read; buf[lo:] are those since the last mark
	lo   int
}

type tooLargeError struct{}

func (tooLargeError) Error() string { return "value too large" }

const tapSlack = 64 << 10

func (t *tap) Read(p []byte) (int, error) {
	room := MaxRecordBytes + tapSlack - (len(t.buf) - t.lo)
	if room <= 0 {
		return 0, &tooLargeError{}
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

// mark drops the bytes before decoder offset off, which the decoder has
// consumed. The buffer is compacted only once most of it is dropped, so
// marking is cheap.
func (t *tap) mark(off int64) {
	drop := int(off - t.at)
	if drop <= 0 {
		return
	}
	drop = min(drop, len(t.buf)-t.lo)
	t.at += int64(drop)
	t.lo += drop
	if t.lo > 32<<10 && t.lo > len(t.buf)/2 {
		n := copy(t.buf, t.buf[t.lo:])
		t.buf, t.lo = t.buf[:n], 0
	}
}

// locate finds the first bad byte in the bytes since the mark: after
// whitespace and at most one comma or colon, the value that follows is
// checked alone. It returns the decoder offset of the bad byte and a
// message, or "" when the bytes are fine so far (the input ended early).
func (t *tap) locate() (int64, string) {
	b := t.buf[t.lo:]
	i := 0
	skipWS := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
			i++
		}
	}
	skipWS()
	if i < len(b) && (b[i] == ',' || b[i] == ':') {
		i++
		skipWS()
	}
	if i == len(b) {
		return t.at + int64(i), "the input ends in the middle of the JSON structure (truncated file?)"
	}
	dec := json.NewDecoder(bytes.NewReader(b[i:]))
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if err == nil {
		// The value is fine: the trouble is what follows it.
		j := i + int(dec.InputOffset())
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n') {
			j++
		}
		if j == len(b) {
			return t.at + int64(j), "the input ends in the middle of the JSON structure (truncated file?)"
		}
		return t.at + int64(j), fmt.Sprintf("invalid character %q where a comma or a closing bracket was expected", b[j])
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return t.at + int64(len(b)), "the input ends in the middle of a value (truncated file?)"
	}
	// json.Unmarshal reports the exact offset of the first bad byte (a
	// trailing-data error could only come after a complete value).
	err = json.Unmarshal(b[i:], &raw)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return t.at + int64(i) + se.Offset - 1, se.Error()
	}
	return t.at + int64(i), err.Error()
}

// nextHook reads Okta Event Hook bodies: each top-level object whole (a
// hook body is small: Okta sends at most a few dozen events), its
// data.events elements as records at their exact offsets.
func (r *Reader) nextHook() (Record, error) {
	for len(r.hook) == 0 {
		r.tap.mark(r.dec.InputOffset())
		if !r.dec.More() {
			if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
				return Record{}, r.stopToken(err)
			}
			return Record{}, io.EOF
		}
		var raw json.RawMessage
		if err := r.dec.Decode(&raw); err != nil {
			return Record{}, r.stop(err)
		}
		r.top++
		base := r.skip + r.dec.InputOffset() - int64(len(raw))
		r.hook = hookEvents(raw, base)
		if len(r.hook) == 0 {
			r.hook = []Record{{Offset: base, Err: fmt.Errorf("top-level object %d is not an Okta Event Hook body with events (data.events): skipped", r.top)}}
		}
	}
	rec := r.hook[0]
	r.hook = r.hook[1:]
	r.n++
	rec.N = r.n
	return rec, nil
}

// hookEvents returns the elements of body's data.events, each with its
// offset (base is body's offset), or nil when body has none.
func hookEvents(body []byte, base int64) []Record {
	var top struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &top) != nil || len(top.Data) == 0 {
		return nil
	}
	var data struct {
		Events json.RawMessage `json:"events"`
	}
	if json.Unmarshal(top.Data, &data) != nil || len(data.Events) == 0 || data.Events[0] != '[' {
		return nil
	}
	// The offset of the events array in body: json.RawMessage aliases
	// nothing, so find it by decoding body token by token.
	start := indexOfSub(body, data.Events)
	if start < 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data.Events))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var out []Record
	for dec.More() {
		var ev json.RawMessage
		if err := dec.Decode(&ev); err != nil {
			return out
		}
		off := base + int64(start) + dec.InputOffset() - int64(len(ev))
		rec := Record{Offset: off}
		if len(ev) == 0 || ev[0] != '{' {
			rec.Err = notObject(ev)
		} else {
			rec.Raw = bytes.Clone(ev)
		}
		out = append(out, rec)
	}
	return out
}

// indexOfSub finds the exact span sub of b (a value json.Unmarshal copied
// out of it); the last occurrence, since data.events follows the keys that
// could repeat its text.
func indexOfSub(b, sub []byte) int { return bytes.LastIndex(b, sub) }
