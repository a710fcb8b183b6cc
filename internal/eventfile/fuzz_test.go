package eventfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

func jsonMarshalString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }

// timeText formats t as RFC 3339 text that time.Parse accepts back: when
// t's UTC year has no four-digit form, it is written with an offset that
// brings it back into 0000..9999 (Parse accepts offsets up to 23:59).
func timeText(t time.Time) string {
	t = t.UTC()
	const maxOffset = 23*3600 + 59*60
	switch {
	case t.Year() < 0:
		t = t.In(time.FixedZone("", maxOffset))
	case t.Year() > 9999:
		t = t.In(time.FixedZone("", -maxOffset))
	}
	return t.Format(time.RFC3339Nano)
}

func addSeeds(f *testing.F) {
	for _, s := range []string{
		goodLine,
		with(nil),
		with(map[string]string{"source": ""}),
		with(map[string]string{"record": "null"}),
		with(map[string]string{"record": " [ 1 , {\"a\" : \"\\u00e9\"} ] "}),
		with(map[string]string{"record": `"x"`}),
		with(map[string]string{"event_time": `"0000-01-01T00:00:00+23:59"`}),
		with(map[string]string{"event_time": `"9999-12-31T23:59:59.999999999-23:59"`}),
		with(map[string]string{"source_seq": "18446744073709551615"}),
		goodLine + " {}",
		"null",
		"{}",
		"",
		"\n\r\n" + goodLine + "\r\n\n" + goodLine,
	} {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "def/src")
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, defaultSource string) {
		ev, err := Parse(data, defaultSource)
		if err != nil {
			if ev != nil {
				t.Fatalf("Parse returned both an event and error %v", err)
			}
			return
		}
		if ev == nil {
			t.Fatal("Parse returned neither event nor error")
		}
		if ev.Source == "" || len(ev.Record) == 0 || string(ev.Record) == "null" {
			t.Fatalf("accepted event lacks a required field: %v", ev)
		}
		// event_time may be left out for the server to derive, but a time
		// that was given must not be dropped.
		var given struct {
			EventTime *string `json:"event_time"`
		}
		if err := json.Unmarshal(data, &given); err != nil {
			t.Fatalf("accepted line is not a JSON object: %v", err)
		}
		if (ev.EventTime == nil) != (given.EventTime == nil || *given.EventTime == "") {
			t.Fatalf("event_time %v parsed from %v", ev.EventTime, given.EventTime)
		}
		if !bytes.Contains(data, ev.Record) {
			t.Fatalf("record %q is not a verbatim part of the line %q", ev.Record, data)
		}
		if !json.Valid(ev.Record) {
			t.Fatalf("record %q is not valid JSON", ev.Record)
		}
		again, err := Parse(data, defaultSource)
		if err != nil || !proto.Equal(ev, again) {
			t.Fatalf("parsing the same line twice differs: %v / %v, %v", ev, again, err)
		}
		// Write the event back as a canonical line and read it again.
		tt := ""
		if ev.EventTime != nil {
			tt = timeText(ev.EventTime.AsTime())
		}
		enc := encodeLine(t, ev, defaultSource, tt)
		back, err := Parse(enc, defaultSource)
		if err != nil {
			t.Fatalf("re-encoded line %q does not parse: %v", enc, err)
		}
		if !proto.Equal(ev, back) {
			t.Fatalf("re-parsed event differs:\n got %v\nwant %v\nline %q", back, ev, enc)
		}
	})
}

func FuzzReader(f *testing.F) {
	addSeeds(f)
	f.Add([]byte("\r\r\n\n\x00\n{\n}\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, defaultSource string) {
		r := NewReader(bytes.NewReader(data), defaultSource)
		physical := bytes.Split(data, []byte("\n"))
		last := 0
		for calls := 0; ; calls++ {
			if calls > len(data)+1 {
				t.Fatalf("more lines than bytes in %q", data)
			}
			l, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next on an in-memory reader: %v", err)
			}
			if l.No <= last {
				t.Fatalf("line number %d after %d", l.No, last)
			}
			last = l.No
			if l.No > len(physical) {
				t.Fatalf("line number %d but the input has %d lines", l.No, len(physical))
			}
			if (l.Event == nil) == (l.Err == nil) {
				t.Fatalf("line %d: want exactly one of Event and Err, got %v / %v", l.No, l.Event, l.Err)
			}
			// The line the Reader reports must be the physical line with that number.
			text := bytes.TrimSuffix(physical[l.No-1], []byte("\r"))
			if len(bytes.TrimSpace(text)) == 0 {
				t.Fatalf("line %d is blank but was reported", l.No)
			}
			want, werr := Parse(text, defaultSource)
			if (werr == nil) != (l.Err == nil) {
				t.Fatalf("line %d: Reader error %v, Parse error %v", l.No, l.Err, werr)
			}
			if werr == nil && !proto.Equal(want, l.Event) {
				t.Fatalf("line %d: Reader gave %v, Parse gives %v", l.No, l.Event, want)
			}
		}
		// Every non-blank physical line must have been reported; we can at
		// least check the count of non-blank lines bounds the last number.
		nonBlank := 0
		lastNonBlank := 0
		for i, p := range physical {
			if len(bytes.TrimSpace(p)) != 0 {
				nonBlank++
				lastNonBlank = i + 1
			}
		}
		if last != lastNonBlank {
			t.Fatalf("last reported line %d, last non-blank line %d (of %d non-blank)", last, lastNonBlank, nonBlank)
		}
	})
}
