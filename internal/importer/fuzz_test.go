package importer

import (
	"bytes"
	"testing"

	"github.com/stele-dev/stele/leaf"
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

func FuzzObject(f *testing.F) {
	fuzzContainer(f, Object,
		"{\n  \"eventID\": \"e1\",\n  \"a\": [1, {\"b\": \"}\"}]\n}\n", `{"a":1} {"b":2}`, `{"a":1} [2]`, `{"a"`, `{"a":1}}`)
}

func FuzzOktaHook(f *testing.F) {
	fuzzContainer(f, OktaHook,
		`{"eventType":"com.okta.event_hook","data":{"events":[{"uuid":"u1"},{"uuid":"u2"}]}}`,
		`{"data":{"events":[1,{"a":"[{\"x\"}]"}]}}{"data":{}}`, `{"data":{"events":{}}}`, `{"data":`)
}

// FuzzCSV reads any input as a Log Analytics CSV export: no panic, and
// every record is a JSON object of strings (readAll's CSV invariant).
func FuzzCSV(f *testing.F) {
	fuzzContainer(f, CSV,
		"TimeGenerated [UTC],Id,Status\r\n11/14/2025 1:48:53 AM,x,\"{\"\"errorCode\"\":0}\"\r\n",
		"TimeGenerated,Id\na\n\"b\nc\",d\n", "TimeGenerated,TimeGenerated\n", "TimeGenerated,\xff\n\xfe,a\n")
}

func FuzzLATables(f *testing.F) {
	fuzzContainer(f, LATables,
		`{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"Id","type":"string"}],"rows":[["2025-11-14T01:48:53Z","a"],[1],2]}]}`,
		`{"tables":[{"rows":[[1]]}]}`, `{"tables":[{"columns":[{"name":"a"},{"name":"a"}]}]}`, `{"tables":[],"x":{"tables":[1]}}{"tables":[{}]}`, `{"tables":[{"columns":[],"rows":[[]]}`)
}

// FuzzDetect reads any input with detection: whichever container it picks,
// the invariants hold.
func FuzzDetect(f *testing.F) {
	fuzzContainer(f, Auto,
		`{"value":[{"id":"a"}]}`, `{"records":[{"a":1}]}`, `{"Records":[{"a":1}]}`, `[{"a":1}]`,
		"{\"id\":1}\n{\"id\":2}\n", `hello`, `{"a":`, "{\n\"a\": 1\n}", `{"eventType":"com.okta.event_hook","data":{"events":[{}]}}`,
		"TimeGenerated,Id\nx,y\n")
}

// FuzzBuilder builds events from any record bytes for each provider: no
// panic, and an event it builds has a valid source and event_id and the
// record's exact bytes.
func FuzzBuilder(f *testing.F) {
	for _, s := range []string{
		`{"time":"t","tenantId":"` + tid + `","category":"AuditLogs","properties":{"id":"Directory_abc_1"}}`,
		`{"resourceId":"/tenants/` + tid + `/providers/Microsoft.aadiam","category":"SignInLogs","properties":{"id":"s1"}}`,
		`{"id":17.5,"activityDateTime":"x"}`, `{"id":"","createdDateTime":"x"}`,
		`{"uuid":"u-1","eventType":"user.session.start"}`,
		`{"eventID":"e-1","recipientAccountId":"123456789012"}`, `{"eventID":"e","recipientAccountId":"a/b"}`,
		`[]`, `{`, `{"properties":null,"category":"AuditLogs"}`,
		`{"TimeGenerated [UTC]":"11/14/2025 1:48:53 AM","Id":"la-2","Category":"NonInteractiveUserSignInLogs","ResultType":"50126","AADTenantId":"` + tid + `"}`,
		`{"TimeGenerated":"2025-11-14T01:48:53Z","Type":"AADRiskyUsers","Id":"r1","Status":"{\"a\":1,\"a\":2}"}`,
		`{"eventID":"e-2","userIdentity":{"type":"IAMUser","accountId":"111122223333"}}`,
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		providers := []Provider{Entra, Okta, AWS}
		p := providers[int(which)%len(providers)]
		tenant := ""
		if which >= 3 {
			tenant = map[Provider]string{Entra: tid, Okta: "example.okta.com", AWS: "123456789012"}[p]
		}
		b := &Builder{Provider: p, Tenant: tenant}
		ev, err := b.Event(Record{N: 1, Raw: raw}, "f.json")
		if err != nil {
			return
		}
		if !bytes.Equal(ev.Record, raw) {
			t.Fatalf("record %q, want the input %q", ev.Record, raw)
		}
		if err := leaf.ValidateSource(ev.Source); err != nil {
			t.Fatalf("source %q: %v", ev.Source, err)
		}
		if err := leaf.ValidateEventID(ev.EventId); err != nil {
			t.Fatalf("event_id %q: %v", ev.EventId, err)
		}
	})
}
