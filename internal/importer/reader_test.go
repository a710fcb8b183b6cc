package importer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// got is what a test expects of one record: its raw text, or a substring
// of its error.
type got struct {
	raw string
	err string
}

// readAll reads every record of in and checks the invariants that hold for
// any input: numbers count up from 1, offsets grow, and a record's bytes
// are exactly the input's at its offset (in is the decompressed stream).
func readAll(t testing.TB, in, stream []byte, c Container) (*Reader, []Record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(in), c)
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	last := int64(-1)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r, recs, nil
		}
		if err != nil {
			var se *StopError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *StopError", err, err)
			}
			if se.Offset < 0 || se.Offset > int64(len(stream)) {
				t.Fatalf("stop offset %d outside the stream of %d bytes", se.Offset, len(stream))
			}
			if se.Records != len(recs) {
				t.Fatalf("StopError.Records = %d after %d records", se.Records, len(recs))
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("Next after a stop returned %v, want the same stop", err2)
			}
			return r, recs, err
		}
		if rec.N != len(recs)+1 {
			t.Fatalf("record number %d, want %d", rec.N, len(recs)+1)
		}
		if rec.Offset <= last {
			t.Fatalf("record %d offset %d does not grow (last %d)", rec.N, rec.Offset, last)
		}
		last = rec.Offset
		if (rec.Err == nil) == (rec.Raw == nil) {
			t.Fatalf("record %d: Raw %q and Err %v: want exactly one", rec.N, rec.Raw, rec.Err)
		}
		if rec.Err == nil {
			if r.Container() == CSV {
				// A CSV row's record is its JSON rendering: check it
				// decodes to strings under the header's names.
				var m map[string]string
				if err := json.Unmarshal(rec.Raw, &m); err != nil {
					t.Fatalf("record %d: CSV row rendered as %q: %v", rec.N, rec.Raw, err)
				}
			} else if r.Container() == LATables {
				// A query response row is rendered as an object too.
				var m map[string]json.RawMessage
				if err := json.Unmarshal(rec.Raw, &m); err != nil {
					t.Fatalf("record %d: row rendered as %q: %v", rec.N, rec.Raw, err)
				}
			} else if end := rec.Offset + int64(len(rec.Raw)); end > int64(len(stream)) || !bytes.Equal(stream[rec.Offset:end], rec.Raw) {
				t.Fatalf("record %d at offset %d: raw %q is not the input's bytes there", rec.N, rec.Offset, rec.Raw)
			}
			if !json.Valid(rec.Raw) || rec.Raw[0] != '{' {
				t.Fatalf("record %d: raw %q is not a JSON object", rec.N, rec.Raw)
			}
		}
		recs = append(recs, rec)
	}
}

func check(t *testing.T, recs []Record, want []got) {
	t.Helper()
	if len(recs) != len(want) {
		for _, r := range recs {
			t.Logf("record %d @%d: %s %v", r.N, r.Offset, r.Raw, r.Err)
		}
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		switch {
		case w.err != "":
			if r.Err == nil || !strings.Contains(r.Err.Error(), w.err) {
				t.Errorf("record %d: error %v, want one containing %q", r.N, r.Err, w.err)
			}
		case r.Err != nil:
			t.Errorf("record %d: unexpected error %v", r.N, r.Err)
		case string(r.Raw) != w.raw:
			t.Errorf("record %d: raw %q, want %q", r.N, r.Raw, w.raw)
		}
	}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestContainers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		container Container // what detection must find (and what is passed when auto is false)
		want      []got
		stop      string // a substring of the StopError, if the file stops
		stopAt    int64  // its offset
	}{
		{
			name:      "graph one page",
			in:        "{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#auditLogs/directoryAudits\",\n \"value\" : [ {\"id\":\"a\",  \"activityDisplayName\":\"Add user\"} ,\n\t{\"id\":\"b\",\"x\":[1,{\"y\":\"}]\"}]}],\"@odata.nextLink\":\"https://graph.microsoft.com/v1.0/auditLogs/directoryAudits?$skiptoken=x\"}\n",
			container: Graph,
			want:      []got{{raw: `{"id":"a",  "activityDisplayName":"Add user"}`}, {raw: `{"id":"b","x":[1,{"y":"}]"}]}`}},
		},
		{
			name:      "graph pages concatenated, value first, a non-object element, a repeated value key",
			in:        `{"value":[{"id":"1"},7,{"id":"2"}],"@odata.nextLink":"n"}` + "\n" + `{"@odata.context":"c","value":[],"value":[{"id":"3"}]}{"value":[{"id":"4"}]}`,
			container: Graph,
			want:      []got{{raw: `{"id":"1"}`}, {err: "not a JSON object but a number"}, {raw: `{"id":"2"}`}, {raw: `{"id":"3"}`}, {raw: `{"id":"4"}`}},
		},
		{
			name:      "event hub messages one per line",
			in:        `{"records":[{"category":"AuditLogs","properties":{"id":"p1"}},{"category":"SignInLogs","properties":{"id":"p2"}}]}` + "\r\n" + `{"records": [ {"time":"t3"} ]}` + "\n",
			container: EventHub,
			want:      []got{{raw: `{"category":"AuditLogs","properties":{"id":"p1"}}`}, {raw: `{"category":"SignInLogs","properties":{"id":"p2"}}`}, {raw: `{"time":"t3"}`}},
		},
		{
			name:      "event hub message without records, and records not an array",
			in:        `{"records":[{"a":1}]}` + "\n" + `{"other":{"records":[{"no":1}]}}` + "\n" + `{"records":{"x":[1]},"records":null}` + "\n" + `{"records":[{"b":2}]}`,
			container: EventHub,
			want:      []got{{raw: `{"a":1}`}, {err: `top-level object 2 has no "records" array`}, {err: `top-level object 3 has no "records" array`}, {raw: `{"b":2}`}},
		},
		{
			name:      "cloudtrail",
			in:        `{"Records":[{"eventVersion":"1.11","eventID":"e1","requestParameters":null},{"eventID":"e2"}]}`,
			container: CloudTrail,
			want:      []got{{raw: `{"eventVersion":"1.11","eventID":"e1","requestParameters":null}`}, {raw: `{"eventID":"e2"}`}},
		},
		{
			name:      "array, several arrays, non-objects",
			in:        "[\n  {\"uuid\":\"u1\",\"published\":\"2024-01-02T03:04:05.000Z\"},\n  \"text\",\n  null\n]\n[] [{\"uuid\":\"u2\"}]",
			container: Array,
			want:      []got{{raw: `{"uuid":"u1","published":"2024-01-02T03:04:05.000Z"}`}, {err: "but a string"}, {err: "but null"}, {raw: `{"uuid":"u2"}`}},
		},
		{
			name:      "empty array",
			in:        " [ ] ",
			container: Array,
		},
		{
			name:      "json lines: CRLF, blank lines, bad lines, a complete last line without newline",
			in:        "{\"id\":1}\r\n\n  {\"id\":2} \n{\"id\":\n[1]\n{\"value\":3}\n{\"id\":4}",
			container: JSONL,
			want:      []got{{raw: `{"id":1}`}, {raw: `{"id":2}`}, {err: "not valid JSON: unexpected end of JSON input"}, {err: "but an array"}, {raw: `{"value":3}`}, {raw: `{"id":4}`}},
		},
		{
			name:      "json lines: partial last line of a growing blob",
			in:        "{\"id\":1}\n{\"id\":2,\"propert",
			container: JSONL,
			want:      []got{{raw: `{"id":1}`}, {err: "incomplete last line"}},
		},
		{
			name:      "json lines: a bad line in the middle names its byte",
			in:        "{\"id\":1}\n{\"id\" 2}\n{\"id\":3}\n",
			container: JSONL,
			want:      []got{{raw: `{"id":1}`}, {err: "invalid character '2' after object key at byte 6 of the record"}, {raw: `{"id":3}`}},
		},
		{
			name:      "byte-order mark",
			in:        "\xef\xbb\xbf[{\"a\":1}]",
			container: Array,
			want:      []got{{raw: `{"a":1}`}},
		},
		{
			name:      "empty file",
			in:        "",
			container: JSONL,
		},
		{
			name:      "syntax error inside an element stops at its byte",
			in:        `{"value":[{"a":1},{"b" 2},{"c":3}]}`,
			container: Graph,
			want:      []got{{raw: `{"a":1}`}},
			stop:      "invalid character '2' after object key",
			stopAt:    23,
		},
		{
			name:      "missing comma between elements",
			in:        `[{"a":1} {"b":2}]`,
			container: Array,
			want:      []got{{raw: `{"a":1}`}},
			stop:      "expected comma after array element",
			stopAt:    9,
		},
		{
			name:      "truncated array",
			in:        `[{"a":1},{"b":[1,`,
			container: Array,
			want:      []got{{raw: `{"a":1}`}},
			stop:      "ends in the middle of a value",
			stopAt:    17,
		},
		{
			name:      "truncated after an element",
			in:        "{\"Records\":[{\"a\":1}\n",
			container: CloudTrail,
			want:      []got{{raw: `{"a":1}`}},
			stop:      "ends in the middle of the JSON structure",
			stopAt:    20,
		},
		{
			name:      "wrapper with a bad key",
			in:        `{"records":[{"a":1}], 5:1}`,
			container: EventHub,
			want:      []got{{raw: `{"a":1}`}},
			stop:      "invalid character",
			stopAt:    22,
		},
		{
			name:      "top-level value of the wrong shape",
			in:        `[{"a":1}] {"b":2}`,
			container: Array,
			want:      []got{{raw: `{"a":1}`}},
			stop:      "top-level value 2 is not a JSON array",
			stopAt:    10,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"auto", "given", "gzip"} {
				in := []byte(tc.in)
				c := tc.container
				if mode == "auto" {
					c = Auto
				}
				if mode == "gzip" {
					in = gz(t, in)
				}
				r, recs, err := readAll(t, in, []byte(tc.in), c)
				if r == nil {
					t.Fatalf("%s: NewReader: %v", mode, err)
				}
				if r.Container() != tc.container {
					t.Errorf("%s: container %q, want %q", mode, r.Container(), tc.container)
				}
				check(t, recs, tc.want)
				if tc.stop == "" {
					if err != nil {
						t.Fatalf("%s: %v", mode, err)
					}
					continue
				}
				var se *StopError
				if !errors.As(err, &se) || !strings.Contains(se.Error(), tc.stop) {
					t.Fatalf("%s: error %v, want a stop containing %q", mode, err, tc.stop)
				}
				if se.Offset != tc.stopAt {
					t.Errorf("%s: stopped at offset %d (%q…), want %d", mode, se.Offset, tc.in[min(se.Offset, int64(len(tc.in))):], tc.stopAt)
				}
				if !strings.Contains(se.Error(), "the rest of the file cannot be read") {
					t.Errorf("%s: %v does not say the rest is lost", mode, se)
				}
			}
		})
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Container
		err  string
	}{
		{`{"@odata.context":"x","value":[`, Graph, ""},
		{`{"@odata.nextLink":"x"`, Graph, ""},
		{` {"value" : [ {`, Graph, ""},
		{`{"records":[`, EventHub, ""},
		{`{"Records":[`, CloudTrail, ""},
		{"\n[", Array, ""},
		{`{"id":"x","value":"not a records array"}` + "\n", JSONL, ""},
		{`{"time":"2024","properties":{"value":[1]}}` + "\n{", JSONL, ""},
		{`{"properties":{"a":"` + strings.Repeat("x", 100) + `"},"records":[1]}`, EventHub, ""},
		{"{\n  \"eventVersion\": \"1.09\",\n  \"eventID\": \"e1\"\n}\n", Object, ""},
		{`{"eventID":"e1"}` + "\n" + `{"eventID":"e2"}`, JSONL, ""},
		{`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#auditLogs/directoryAudits/$entity","id":"x"}`, Object, ""},
		{`{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","data":{"events":[`, OktaHook, ""},
		{`{"eventType":"user.session.start","uuid":"u"}` + "\n", JSONL, ""},
		{"TimeGenerated [UTC],Id,OperationName\r\n11/14/2025 1:48:53 AM,x,Sign-in activity\r\n", CSV, ""},
		{"\"TimeGenerated [UTC]\",\"Id\"\n", CSV, ""},
		{"name,value\na,b\n", Auto, "not JSON"},
		{`{"tables":[{"name":"PrimaryResult","columns":[`, LATables, ""},
		{`{"tables":"x"}` + "\n", JSONL, ""},
		{`hello`, Auto, `not JSON: the file starts with "hello"`},
		{`{"a":` + strings.Repeat("1", 10), Auto, "cannot tell the file's format"},
		{`{"a" 1}`, Auto, "cannot tell the file's format, its start is not JSON"},
	} {
		c, err := Detect([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Detect(%.30q) = %q, %v; want error %q", tc.in, c, err, tc.err)
			}
			continue
		}
		if err != nil || c != tc.want {
			t.Errorf("Detect(%.30q) = %q, %v; want %q", tc.in, c, err, tc.want)
		}
	}
	// Detection looks at the first MiB only: a first key whose value is
	// longer cannot be told, and the error says what to do.
	long := `{"properties":"` + strings.Repeat("x", detectBytes) + `","records":[]}`
	if _, err := NewReader(strings.NewReader(long), Auto); err == nil || !strings.Contains(err.Error(), "pass --format") {
		t.Errorf("long first key: %v, want a pass --format error", err)
	}
	if _, _, err := readAll(t, []byte(long), []byte(long), EventHub); err != nil {
		t.Errorf("long first key with --format eventhub: %v", err)
	}
}

func TestParseContainer(t *testing.T) {
	for _, s := range []string{"", "auto", "graph", "eventhub", "cloudtrail", "array", "jsonl", "object", "oktahook", "csv", "latables"} {
		if _, err := ParseContainer(s); err != nil {
			t.Errorf("ParseContainer(%q): %v", s, err)
		}
	}
	if _, err := ParseContainer("xml"); err == nil || !strings.Contains(err.Error(), "use auto, graph, eventhub, cloudtrail, array, jsonl, object, oktahook, csv, latables") {
		t.Errorf("ParseContainer(xml): %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", MaxRecordBytes+tapSlack) + `"}`
	// In JSON Lines, the long line is skipped and reading goes on.
	in := "{\"a\":1}\n" + big + "\n{\"b\":2}\n"
	_, recs, err := readAll(t, []byte(in), []byte(in), JSONL)
	if err != nil {
		t.Fatal(err)
	}
	check(t, recs, []got{{raw: `{"a":1}`}, {err: "line is longer than"}, {raw: `{"b":2}`}})
	// In an array, it stops the file at the record's start.
	in = `[{"a":1}, ` + big + `]`
	_, recs, err = readAll(t, []byte(in), []byte(in), Array)
	check(t, recs, []got{{raw: `{"a":1}`}})
	var se *StopError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "larger than") || se.Offset != 8 {
		t.Fatalf("got %v, want a too-large stop at offset 8", err)
	}
}

func TestDamagedGzip(t *testing.T) {
	z := gz(t, []byte(`[{"a":1},{"b":2},{"c":3}]`))
	z[len(z)-5] ^= 0xff // the CRC: all data reads, then the check fails
	_, recs, err := readAll(t, z, []byte(`[{"a":1},{"b":2},{"c":3}]`), Auto)
	if err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("damaged gzip: %v after %d records, want a gzip error", err, len(recs))
	}
	if _, err := NewReader(bytes.NewReader([]byte{0x1f, 0x8b, 1}), Auto); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("gzip header: %v", err)
	}
}

// TestFileShapes reads the file shapes of issue 22 that are not wrapper
// arrays: a pretty-printed single record, several of them, an Okta Event
// Hook body, and a Log Analytics CSV export.
func TestFileShapes(t *testing.T) {
	pretty := "{\n  \"eventVersion\": \"1.09\",\n  \"eventID\": \"e1\",\n  \"requestParameters\": {\n    \"roleArn\": \"arn:aws:iam::111122223333:role/x\"\n  }\n}\n"
	hook := `{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://example.okta.com/api/v1/eventHooks/whoEXAMPLE","eventId":"h1","data":{"events":[{"uuid":"u1","eventType":"user.session.start"}, {"uuid":"u2"}]},"eventTime":"2025-01-01T00:00:00.000Z","contentType":"application/json"}`
	csvIn := "\ufeffTimeGenerated [UTC],Id,Status,AuthenticationDetails\r\n" +
		"\"11/14/2025 1:48:53 AM\",id-1,\"{\"\"errorCode\"\":0}\",\"[{\"\"authenticationMethod\"\":\"\"Password\"\"}]\"\r\n" +
		"11/14/2025 1:49:00 AM,id-2\r\n" +
		"\"11/14/2025 1:50:00 AM\",\"id-3 <a&b>\",\"multi\nline\",\r\n"
	for _, tc := range []struct {
		name string
		in   string
		c    Container
		want []got
	}{
		{"pretty single object", pretty, Object, []got{{raw: strings.TrimSuffix(pretty, "\n")}}},
		{"pretty objects one after another", pretty + pretty, Object, []got{{raw: strings.TrimSuffix(pretty, "\n")}, {raw: strings.TrimSuffix(pretty, "\n")}}},
		{"object then a non-object", pretty + "[1]", Object, []got{{raw: strings.TrimSuffix(pretty, "\n")}, {err: "not a JSON object but an array"}}},
		{"okta event hook", hook + "\n" + hook, OktaHook, []got{{raw: `{"uuid":"u1","eventType":"user.session.start"}`}, {raw: `{"uuid":"u2"}`}, {raw: `{"uuid":"u1","eventType":"user.session.start"}`}, {raw: `{"uuid":"u2"}`}}},
		{"log analytics query response", `{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"Id","type":"string"},{"name":"Status","type":"dynamic"},{"name":"DurationMs","type":"long"}],` +
			`"rows":[["2025-11-14T01:48:53.6134712Z","id-1","{\"errorCode\":0}",0], ["2025-11-14T01:49:00Z", "id-2", null, 12], ["short"], 7]},{"name":"Other","rows":[]}],"statistics":{}}`, LATables, []got{
			{raw: `{"TimeGenerated":"2025-11-14T01:48:53.6134712Z","Id":"id-1","Status":"{\"errorCode\":0}","DurationMs":0}`},
			{raw: `{"TimeGenerated":"2025-11-14T01:49:00Z","Id":"id-2","Status":null,"DurationMs":12}`},
			{err: "row has 1 cells, the table 4 columns"},
			{err: "row is not a JSON array"},
		}},
		{"okta hook without events", `{"eventType":"com.okta.event_hook","data":{}}`, OktaHook, []got{{err: "not an Okta Event Hook body with events"}}},
		{"log analytics csv", csvIn, CSV, []got{
			{raw: `{"TimeGenerated [UTC]":"11/14/2025 1:48:53 AM","Id":"id-1","Status":"{\"errorCode\":0}","AuthenticationDetails":"[{\"authenticationMethod\":\"Password\"}]"}`},
			{err: "CSV row has 2 cells, the header 4"},
			{raw: `{"TimeGenerated [UTC]":"11/14/2025 1:50:00 AM","Id":"id-3 <a&b>","Status":"multi\nline","AuthenticationDetails":""}`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, recs, err := readAll(t, []byte(tc.in), []byte(tc.in), Auto)
			if err != nil {
				t.Fatal(err)
			}
			if r.Container() != tc.c {
				t.Fatalf("detected %q, want %q", r.Container(), tc.c)
			}
			check(t, recs, tc.want)
		})
	}
	// A CSV quoting error stops the file; a duplicate column refuses it.
	bad := []byte("TimeGenerated,Id\n\"a,b\n")
	if _, _, err := readAll(t, bad, bad, CSV); err == nil || !strings.Contains(err.Error(), "CSV") {
		t.Errorf("open quote: %v", err)
	}
	rowsFirst := []byte(`{"tables":[{"rows":[[1]],"columns":[{"name":"a"}]}]}`)
	if _, _, err := readAll(t, rowsFirst, rowsFirst, LATables); err == nil || !strings.Contains(err.Error(), "rows before its columns") {
		t.Errorf("rows before columns: %v", err)
	}
	if _, err := NewReader(strings.NewReader("TimeGenerated,Id,Id\n"), CSV); err == nil || !strings.Contains(err.Error(), `column "Id" appears twice`) {
		t.Errorf("duplicate column: %v", err)
	}
}
