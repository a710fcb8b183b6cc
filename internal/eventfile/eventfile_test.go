package eventfile

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// goodLine is a complete, valid event line.
const goodLine = `{"source":"entra/t1/audit","event_id":"e-1","kind":"directory.role.member.add","event_time":"2026-01-02T03:04:05.123456789Z","format":"entra.directoryAudit","record":{"id":"e-1"},"source_seq":7}`

// line builds an event line from fields given as raw JSON text (name ->
// value), in the given order. A value of "" leaves the field out.
func line(fields ...[2]string) string {
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, f := range fields {
		if f[1] == "" {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + f[0] + `":` + f[1])
	}
	b.WriteString("}")
	return b.String()
}

// with returns the standard fields with the named ones overridden (a value
// of "" removes the field).
func with(over map[string]string) string {
	std := [][2]string{
		{"source", `"entra/t1/audit"`},
		{"event_id", `"e-1"`},
		{"kind", `"directory.role.member.add"`},
		{"event_time", `"2026-01-02T03:04:05Z"`},
		{"format", `"entra.directoryAudit"`},
		{"record", `{"id":"e-1"}`},
	}
	for i, f := range std {
		if v, ok := over[f[0]]; ok {
			std[i][1] = v
		}
	}
	for k, v := range over {
		found := false
		for _, f := range std {
			if f[0] == k {
				found = true
			}
		}
		if !found {
			std = append(std, [2]string{k, v})
		}
	}
	return line(std...)
}

func ts(t *testing.T, s string) *timestamppb.Timestamp {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return timestamppb.New(tm)
}

func TestParseGoodLine(t *testing.T) {
	ev, err := Parse([]byte(goodLine), "ignored/default")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &stelev1.Event{
		Source:    "entra/t1/audit",
		EventId:   "e-1",
		Kind:      "directory.role.member.add",
		EventTime: &timestamppb.Timestamp{Seconds: 1767323045, Nanos: 123456789},
		Format:    "entra.directoryAudit",
		Record:    []byte(`{"id":"e-1"}`),
		SourceSeq: 7,
	}
	if !proto.Equal(ev, want) {
		t.Fatalf("Parse(goodLine) = %v, want %v", ev, want)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name          string
		line          string
		defaultSource string
		wantRecord    string
		wantSource    string
		wantSeq       uint64
		wantTime      string // RFC 3339; compared as an instant
	}{
		{name: "all fields", line: goodLine, wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantSeq: 7, wantTime: "2026-01-02T03:04:05.123456789Z"},
		{name: "source_seq missing is 0", line: with(nil), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "source_seq null is 0", line: with(map[string]string{"source_seq": "null"}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "source_seq zero", line: with(map[string]string{"source_seq": "0"}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "source_seq max uint64", line: with(map[string]string{"source_seq": "18446744073709551615"}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantSeq: 18446744073709551615, wantTime: "2026-01-02T03:04:05Z"},
		{name: "line source wins over default", line: with(nil), defaultSource: "other/src", wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "missing source filled from default", line: with(map[string]string{"source": ""}), defaultSource: "other/src", wantRecord: `{"id":"e-1"}`, wantSource: "other/src", wantTime: "2026-01-02T03:04:05Z"},
		{name: "empty source filled from default", line: with(map[string]string{"source": `""`}), defaultSource: "other/src", wantRecord: `{"id":"e-1"}`, wantSource: "other/src", wantTime: "2026-01-02T03:04:05Z"},
		{name: "null source filled from default", line: with(map[string]string{"source": `null`}), defaultSource: "other/src", wantRecord: `{"id":"e-1"}`, wantSource: "other/src", wantTime: "2026-01-02T03:04:05Z"},
		{name: "time with offset", line: with(map[string]string{"event_time": `"2026-01-02T04:04:05.5+01:00"`}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05.5Z"},
		{name: "time with negative offset", line: with(map[string]string{"event_time": `"2026-01-01T23:04:05-04:00"`}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "fields in another order", line: `{"record":[1],"format":"f","event_time":"2026-01-02T03:04:05Z","kind":"k","event_id":"e","source":"s"}`, wantRecord: `[1]`, wantSource: "s", wantTime: "2026-01-02T03:04:05Z"},
		{name: "whitespace around the object", line: " \t" + with(nil) + " \t\r\n ", wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "escaped strings are decoded", line: with(map[string]string{"event_id": `"a\u0062\"c"`}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		// The record is kept exactly, for every JSON kind, whatever the whitespace.
		{name: "record object odd whitespace", line: with(map[string]string{"record": " {  \"b\" :\t[ 1 ,2 ] , \"a\":{}\t}  "}), wantRecord: "{  \"b\" :\t[ 1 ,2 ] , \"a\":{}\t}", wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record object with newline inside", line: with(map[string]string{"record": "{\n\"a\" : 1\r\n}"}), wantRecord: "{\n\"a\" : 1\r\n}", wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record empty object", line: with(map[string]string{"record": `{}`}), wantRecord: `{}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record array", line: with(map[string]string{"record": "\t[ 1,\"x\" , null ]"}), wantRecord: "[ 1,\"x\" , null ]", wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record empty array", line: with(map[string]string{"record": `[ ]`}), wantRecord: `[ ]`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record string with escapes kept escaped", line: with(map[string]string{"record": ` "a\u00e9\n\/" `}), wantRecord: `"a\u00e9\n\/"`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record empty string", line: with(map[string]string{"record": `""`}), wantRecord: `""`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record number kept as written", line: with(map[string]string{"record": ` -1.50E+03 `}), wantRecord: `-1.50E+03`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record true", line: with(map[string]string{"record": `true`}), wantRecord: `true`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record false", line: with(map[string]string{"record": "\tfalse\t"}), wantRecord: `false`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record with raw non-ASCII", line: with(map[string]string{"record": `{"n":"Zoë 😀"}`}), wantRecord: `{"n":"Zoë 😀"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "record with duplicate keys inside kept as is", line: with(map[string]string{"record": `{"a":1,"a":2}`}), wantRecord: `{"a":1,"a":2}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		// Values are the server's business; Parse only checks shape.
		{name: "empty event_id kind format accepted", line: with(map[string]string{"event_id": `""`, "kind": `""`, "format": `""`}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		// One rule for event_id, kind and event_time: a missing key, null
		// and "" all mean "let the server derive it from the record".
		{name: "missing event_id", line: with(map[string]string{"event_id": ""}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "null event_id", line: with(map[string]string{"event_id": "null"}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "missing kind", line: with(map[string]string{"kind": ""}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit", wantTime: "2026-01-02T03:04:05Z"},
		{name: "missing event_time", line: with(map[string]string{"event_time": ""}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit"},
		{name: "null event_time", line: with(map[string]string{"event_time": "null"}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit"},
		{name: "empty event_time", line: with(map[string]string{"event_time": `""`}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit"},
		{name: "all three missing", line: with(map[string]string{"event_id": "", "kind": "", "event_time": ""}), wantRecord: `{"id":"e-1"}`, wantSource: "entra/t1/audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse([]byte(tt.line), tt.defaultSource)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.line, err)
			}
			if string(ev.Record) != tt.wantRecord {
				t.Errorf("record = %q, want %q", ev.Record, tt.wantRecord)
			}
			if !bytes.Contains([]byte(tt.line), ev.Record) {
				t.Errorf("record %q does not occur verbatim in the line", ev.Record)
			}
			if ev.Source != tt.wantSource {
				t.Errorf("source = %q, want %q", ev.Source, tt.wantSource)
			}
			if ev.SourceSeq != tt.wantSeq {
				t.Errorf("source_seq = %d, want %d", ev.SourceSeq, tt.wantSeq)
			}
			if tt.wantTime == "" {
				if ev.EventTime != nil {
					t.Errorf("event_time = %v, want none (the server derives it)", ev.EventTime)
				}
			} else if want := ts(t, tt.wantTime); !proto.Equal(ev.EventTime, want) {
				t.Errorf("event_time = %v, want %v", ev.EventTime, want)
			}
		})
	}
}

func TestParseEscapedEventID(t *testing.T) {
	ev, err := Parse([]byte(with(map[string]string{"event_id": `"a\u0062\"c"`})), "")
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventId != `ab"c` {
		t.Fatalf("event_id = %q, want %q", ev.EventId, `ab"c`)
	}
}

// TestParseRecordIsACopy checks the record does not alias the input line.
func TestParseRecordIsACopy(t *testing.T) {
	l := []byte(with(map[string]string{"record": `{"a":1}`}))
	ev, err := Parse(l, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range l {
		l[i] = 'X'
	}
	if string(ev.Record) != `{"a":1}` {
		t.Fatalf("record changed with the input buffer: %q", ev.Record)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name          string
		line          string
		defaultSource string
		wantErr       string
	}{
		{name: "empty", line: ``, wantErr: "not an event object"},
		{name: "only spaces", line: `   `, wantErr: "not an event object"},
		{name: "missing source no default", line: with(map[string]string{"source": ""}), wantErr: `"source" is missing`},
		{name: "empty source no default", line: with(map[string]string{"source": `""`}), wantErr: `"source" is missing`},
		{name: "null source no default", line: with(map[string]string{"source": `null`}), wantErr: `"source" is missing`},
		{name: "missing format", line: with(map[string]string{"format": ""}), wantErr: `"format" is missing`},
		{name: "missing record", line: with(map[string]string{"record": ""}), wantErr: `"record" is missing or null`},
		{name: "null record", line: with(map[string]string{"record": "null"}), wantErr: `"record" is missing or null`},
		{name: "null record with spaces", line: with(map[string]string{"record": "  null  "}), wantErr: `"record" is missing or null`},
		{name: "all missing", line: `{}`, defaultSource: "d/s", wantErr: `"format" is missing`},
		{name: "source number", line: with(map[string]string{"source": "1"}), wantErr: "not an event object"},
		{name: "source object", line: with(map[string]string{"source": "{}"}), wantErr: "not an event object"},
		{name: "event_id number", line: with(map[string]string{"event_id": "5"}), wantErr: "not an event object"},
		{name: "event_id array", line: with(map[string]string{"event_id": `["e"]`}), wantErr: "not an event object"},
		{name: "kind bool", line: with(map[string]string{"kind": "true"}), wantErr: "not an event object"},
		{name: "format number", line: with(map[string]string{"format": "1"}), wantErr: "not an event object"},
		{name: "event_time number", line: with(map[string]string{"event_time": "1767323045"}), wantErr: "not an event object"},
		{name: "source_seq string", line: with(map[string]string{"source_seq": `"7"`}), wantErr: "not an event object"},
		{name: "source_seq negative", line: with(map[string]string{"source_seq": `-1`}), wantErr: "not an event object"},
		{name: "source_seq fraction", line: with(map[string]string{"source_seq": `1.5`}), wantErr: "not an event object"},
		{name: "source_seq exponent", line: with(map[string]string{"source_seq": `1e3`}), wantErr: "not an event object"},
		{name: "source_seq overflow", line: with(map[string]string{"source_seq": `18446744073709551616`}), wantErr: "not an event object"},
		{name: "source_seq bool", line: with(map[string]string{"source_seq": `true`}), wantErr: "not an event object"},
		{name: "unknown field", line: with(map[string]string{"extra": `1`}), wantErr: `unknown field "extra"`},
		{name: "unknown field null", line: with(map[string]string{"sourceSeq": `null`}), wantErr: `unknown field "sourceSeq"`},
		{name: "trailing second object", line: goodLine + goodLine, wantErr: "unexpected data after the event object"},
		{name: "trailing second object after space", line: goodLine + " {}", wantErr: "unexpected data after the event object"},
		{name: "trailing garbage", line: goodLine + "x", wantErr: "unexpected data after the event object"},
		{name: "trailing comma", line: goodLine + ",", wantErr: "unexpected data after the event object"},
		{name: "trailing close bracket", line: goodLine + "]", wantErr: "unexpected data after the event object"},
		{name: "trailing close brace", line: goodLine + "}", wantErr: "unexpected data after the event object"},
		{name: "trailing number", line: goodLine + " 1", wantErr: "unexpected data after the event object"},
		{name: "trailing NUL", line: goodLine + "\x00", wantErr: "unexpected data after the event object"},
		{name: "truncated object", line: goodLine[:len(goodLine)-1], wantErr: "not an event object"},
		{name: "array line", line: `[` + goodLine + `]`, wantErr: "not an event object"},
		{name: "string line", line: `"x"`, wantErr: "not an event object"},
		{name: "number line", line: `1`, wantErr: "not an event object"},
		{name: "null line", line: `null`, wantErr: "must be a JSON object"},
		{name: "null line with default", line: `null`, defaultSource: "d/s", wantErr: "must be a JSON object"},
		{name: "invalid JSON in record", line: with(map[string]string{"record": `{"a":}`}), wantErr: "not an event object"},
		{name: "single quotes", line: `{'source':'s'}`, wantErr: "not an event object"},
		{name: "time without zone", line: with(map[string]string{"event_time": `"2026-01-02T03:04:05"`}), wantErr: "not an RFC 3339 time"},
		{name: "time with space separator", line: with(map[string]string{"event_time": `"2026-01-02 03:04:05Z"`}), wantErr: "not an RFC 3339 time"},
		{name: "time date only", line: with(map[string]string{"event_time": `"2026-01-02"`}), wantErr: "not an RFC 3339 time"},
		{name: "time words", line: with(map[string]string{"event_time": `"yesterday"`}), wantErr: "not an RFC 3339 time"},
		{name: "time month 13", line: with(map[string]string{"event_time": `"2026-13-02T03:04:05Z"`}), wantErr: "not an RFC 3339 time"},
		{name: "time day 32", line: with(map[string]string{"event_time": `"2026-01-32T03:04:05Z"`}), wantErr: "not an RFC 3339 time"},
		{name: "time hour 24", line: with(map[string]string{"event_time": `"2026-01-02T24:00:00Z"`}), wantErr: "not an RFC 3339 time"},
		{name: "time unix seconds string", line: with(map[string]string{"event_time": `"1767323045"`}), wantErr: "not an RFC 3339 time"},
		{name: "time trailing space", line: with(map[string]string{"event_time": `"2026-01-02T03:04:05Z "`}), wantErr: "not an RFC 3339 time"},
		{name: "time RFC 1123", line: with(map[string]string{"event_time": `"Fri, 02 Jan 2026 03:04:05 GMT"`}), wantErr: "not an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse([]byte(tt.line), tt.defaultSource)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tt.line, ev, tt.wantErr)
			}
			if ev != nil {
				t.Errorf("Parse(%q) returned an event with its error", tt.line)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.line, err, tt.wantErr)
			}
		})
	}
}

// TestParseRefusesAmbiguousKeys: encoding/json alone matches keys
// case-insensitively and lets a later duplicate win, so Parse must refuse
// lines whose meaning is ambiguous (which "record" is the record?).
func TestParseRefusesAmbiguousKeys(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"duplicate record", with(map[string]string{"record": `{"a":1},"record":{"a":2}`})},
		{"duplicate event_id", with(map[string]string{"event_id": `"e-1","event_id":"e-2"`})},
		{"duplicate source", with(map[string]string{"source": `"a/b","source":"c/d"`})},
		{"upper-case key", strings.Replace(goodLine, `"source"`, `"SOURCE"`, 1)},
		{"mixed-case key", strings.Replace(goodLine, `"event_id"`, `"Event_Id"`, 1)},
		{"case variant duplicate", strings.Replace(goodLine, `"source":"entra/t1/audit"`, `"source":"entra/t1/audit","Source":"other/src"`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse([]byte(tt.line), "")
			if err == nil {
				t.Errorf("Parse(%q) accepted an ambiguous line (event %v); want an error", tt.line, ev)
			}
		})
	}
}

// TestParseStrictRFC3339: Go's time parsers take a one-digit hour and a
// comma before the fraction; Parse must hold to RFC 3339.
func TestParseStrictRFC3339(t *testing.T) {
	for _, s := range []string{
		"2026-01-02T3:04:05Z",
		"2026-01-02T03:04:05,123Z",
	} {
		t.Run(s, func(t *testing.T) {
			ev, err := Parse([]byte(with(map[string]string{"event_time": `"` + s + `"`})), "")
			if err == nil {
				t.Fatalf("Parse accepted event_time %q (as %v); it is not RFC 3339", s, ev.EventTime.AsTime())
			}
			if !strings.Contains(err.Error(), "not an RFC 3339 time") {
				t.Fatalf("error = %v", err)
			}
		})
	}
}

func readAll(t *testing.T, r *Reader) []Line {
	t.Helper()
	var out []Line
	for {
		l, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, l)
		if len(out) > 1000 {
			t.Fatal("Reader does not end")
		}
	}
}

// lineSummary is what a test checks about one Line.
type lineSummary struct {
	no      int
	eventID string // "" when an error is expected
	err     string // substring; "" when an event is expected
}

func checkLines(t *testing.T, got []Line, want []lineSummary) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.No != w.no {
			t.Errorf("line %d: No = %d, want %d", i, g.No, w.no)
		}
		if w.err != "" {
			if g.Err == nil || !strings.Contains(g.Err.Error(), w.err) {
				t.Errorf("line %d: Err = %v, want it to contain %q", i, g.Err, w.err)
			}
			if g.Event != nil {
				t.Errorf("line %d: Event set with an error", i)
			}
			continue
		}
		if g.Err != nil {
			t.Errorf("line %d: unexpected error %v", i, g.Err)
			continue
		}
		if g.Event == nil || g.Event.EventId != w.eventID {
			t.Errorf("line %d: event = %v, want event_id %q", i, g.Event, w.eventID)
		}
	}
}

func ev(id string) string {
	return with(map[string]string{"event_id": `"` + id + `"`})
}

func TestReader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []lineSummary
	}{
		{name: "empty input", input: "", want: nil},
		{name: "only blank lines", input: "\n\n  \n\t\r\n\r\n", want: nil},
		{name: "one line LF", input: ev("a") + "\n", want: []lineSummary{{no: 1, eventID: "a"}}},
		{name: "one line no newline", input: ev("a"), want: []lineSummary{{no: 1, eventID: "a"}}},
		{name: "one line CRLF", input: ev("a") + "\r\n", want: []lineSummary{{no: 1, eventID: "a"}}},
		{name: "last line CR no LF", input: ev("a") + "\r", want: []lineSummary{{no: 1, eventID: "a"}}},
		{name: "blank lines counted", input: "\n" + ev("a") + "\n\n   \n" + ev("b") + "\n\n", want: []lineSummary{{no: 2, eventID: "a"}, {no: 5, eventID: "b"}}},
		{name: "CRLF throughout", input: "\r\n" + ev("a") + "\r\n\r\n" + ev("b") + "\r\n", want: []lineSummary{{no: 2, eventID: "a"}, {no: 4, eventID: "b"}}},
		{name: "mixed endings last without newline", input: ev("a") + "\n" + ev("b") + "\r\n" + ev("c"), want: []lineSummary{{1, "a", ""}, {2, "b", ""}, {3, "c", ""}}},
		{name: "bad line in the middle does not stop reading", input: ev("a") + "\nnot json\n" + ev("c") + "\n", want: []lineSummary{{1, "a", ""}, {2, "", "not an event object"}, {3, "c", ""}}},
		{name: "missing field error carries line number", input: "\n\n" + with(map[string]string{"format": ""}) + "\n" + ev("d"), want: []lineSummary{{3, "", `"format" is missing`}, {4, "d", ""}}},
		{name: "CR inside a line is not a line end", input: ev("a") + "\r" + ev("b") + "\n", want: []lineSummary{{1, "", "unexpected data after the event object"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLines(t, readAll(t, NewReader(strings.NewReader(tt.input), "")), tt.want)
		})
	}
}

func TestReaderDefaultSource(t *testing.T) {
	in := with(map[string]string{"source": ""}) + "\n" + ev("b") + "\n"
	lines := readAll(t, NewReader(strings.NewReader(in), "def/src"))
	if len(lines) != 2 || lines[0].Err != nil || lines[1].Err != nil {
		t.Fatalf("lines = %+v", lines)
	}
	if got := lines[0].Event.Source; got != "def/src" {
		t.Errorf("line 1 source = %q, want the default", got)
	}
	if got := lines[1].Event.Source; got != "entra/t1/audit" {
		t.Errorf("line 2 source = %q, want the line's own", got)
	}
	// Without a default the first line is an error, the second still parses.
	lines = readAll(t, NewReader(strings.NewReader(in), ""))
	checkLines(t, lines, []lineSummary{{1, "", `"source" is missing`}, {2, "b", ""}})
}

// padded returns an event line of exactly n bytes (not counting any line
// ending), padding with spaces inside the object.
func padded(t *testing.T, id string, n int) string {
	t.Helper()
	l := ev(id)
	if n < len(l) {
		t.Fatalf("cannot pad %d bytes to %d", len(l), n)
	}
	return l[:len(l)-1] + strings.Repeat(" ", n-len(l)) + "}"
}

func TestReaderLongLines(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []lineSummary
	}{
		{
			name:  "exactly MaxLineBytes then LF",
			input: padded(t, "a", MaxLineBytes) + "\n" + ev("b") + "\n",
			want:  []lineSummary{{1, "a", ""}, {2, "b", ""}},
		},
		{
			name:  "exactly MaxLineBytes at EOF",
			input: ev("a") + "\n" + padded(t, "b", MaxLineBytes),
			want:  []lineSummary{{1, "a", ""}, {2, "b", ""}},
		},
		{
			name:  "one over MaxLineBytes then LF",
			input: ev("a") + "\n\n" + padded(t, "x", MaxLineBytes+1) + "\n" + ev("c") + "\n" + ev("d"),
			want:  []lineSummary{{1, "a", ""}, {3, "", "longer than"}, {4, "c", ""}, {5, "d", ""}},
		},
		{
			name:  "far over MaxLineBytes then lines",
			input: padded(t, "x", 3*MaxLineBytes+12345) + "\n\n" + ev("c") + "\r\n" + ev("d") + "\n",
			want:  []lineSummary{{1, "", "longer than"}, {3, "c", ""}, {4, "d", ""}},
		},
		{
			name:  "over MaxLineBytes without any newline",
			input: ev("a") + "\n" + strings.Repeat("z", 2*MaxLineBytes),
			want:  []lineSummary{{1, "a", ""}, {2, "", "longer than"}},
		},
		{
			name:  "two long lines in a row",
			input: strings.Repeat("y", MaxLineBytes+70000) + "\n" + strings.Repeat("y", MaxLineBytes+2) + "\n" + ev("c"),
			want:  []lineSummary{{1, "", "longer than"}, {2, "", "longer than"}, {3, "c", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLines(t, readAll(t, NewReader(strings.NewReader(tt.input), "")), tt.want)
		})
	}
}

// TestReaderMaxLineBytesBoundary: the limit applies to the line content
// alone, whatever the line ending, and also to a last line with none.
func TestReaderMaxLineBytesBoundary(t *testing.T) {
	t.Run("MaxLineBytes+1 at EOF must be refused", func(t *testing.T) {
		in := ev("a") + "\n" + padded(t, "b", MaxLineBytes+1)
		checkLines(t, readAll(t, NewReader(strings.NewReader(in), "")), []lineSummary{{1, "a", ""}, {2, "", "longer than"}})
	})
	t.Run("MaxLineBytes then CRLF must be accepted", func(t *testing.T) {
		in := padded(t, "a", MaxLineBytes) + "\r\n" + ev("b") + "\r\n"
		checkLines(t, readAll(t, NewReader(strings.NewReader(in), "")), []lineSummary{{1, "a", ""}, {2, "b", ""}})
	})
}

type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := NewReader(&errAfter{data: []byte(ev("a") + "\n" + `{"sou`), err: boom}, "")
	l, err := r.Next()
	if err != nil || l.No != 1 || l.Err != nil || l.Event.EventId != "a" {
		t.Fatalf("first Next = %+v, %v", l, err)
	}
	_, err = r.Next()
	if !errors.Is(err, boom) {
		t.Fatalf("second Next error = %v, want %v", err, boom)
	}
	if !strings.Contains(err.Error(), "line 2") {
		t.Errorf("read error %q does not name line 2", err)
	}
}

func TestReaderEOFIsSticky(t *testing.T) {
	r := NewReader(strings.NewReader(ev("a")), "")
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("Next after the end = %v, want io.EOF", err)
		}
	}
}

// encodeLine writes ev back as a line that Parse should read as the same
// event. The record is spliced in verbatim.
// The source is left out when it equals defaultSource, which need not be
// valid UTF-8 and so could not survive being written as a JSON string.
func encodeLine(t *testing.T, ev *stelev1.Event, defaultSource, timeText string) []byte {
	str := func(s string) string {
		b, err := jsonMarshalString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var b bytes.Buffer
	b.WriteString(`{"event_id":` + str(ev.EventId))
	if ev.Source != defaultSource {
		b.WriteString(`,"source":` + str(ev.Source))
	}
	b.WriteString(`,"kind":` + str(ev.Kind))
	b.WriteString(`,"event_time":` + str(timeText))
	b.WriteString(`,"format":` + str(ev.Format))
	b.WriteString(`,"record":`)
	b.Write(ev.Record)
	b.WriteString(`,"source_seq":` + uitoa(ev.SourceSeq) + `}`)
	return b.Bytes()
}
