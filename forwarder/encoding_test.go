package forwarder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder/record"
)

// awkwardItems are items whose text exercises every JSON escape.
func awkwardItems(t *testing.T) []*Item {
	var items []*Item
	for i, s := range []string{"", "plain", `"q" \b`, "<a href='x'>&amp;</a>", "\x00\n\u2028\u2029", "bad \xff utf-8", "\U0001F600"} {
		rec := `{"k":"` + s + `"}`
		d := &record.Document{Schema: record.Schema, Type: record.TypeEvent, Origin: "log.example/" + s, Index: uint64(i) * 977, LeafHash: s,
			Source: s, EventID: s, Kind: s, EventTime: "2026-01-02T03:04:05.123456789Z", AdmittedTime: time.Unix(1767323045+int64(i), int64(i)*123457).UTC().Format(time.RFC3339Nano),
			Record: &rec, Normalized: json.RawMessage(`{"a":"` + "raw \u2028 <&>" + `"}`), Receipt: s}
		if i%2 == 1 {
			d.Erasure = &record.Erasure{ErasedIndex: uint64(i), Reason: s}
		}
		j, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, &Item{Doc: d, JSON: j})
	}
	return items
}

// TestSinkEncodings: the sinks' one-pass encodings of their requests give
// the bytes of the encoding/json and fmt code they replaced.
func TestSinkEncodings(t *testing.T) {
	for _, it := range awkwardItems(t) {
		d := it.Doc
		want, _ := json.Marshal(SentinelRow{TimeGenerated: d.AdmittedTime, SteleOrigin: d.Origin, SteleIndex: d.Index, LeafHash: d.LeafHash,
			Source: d.Source, EventID: d.EventID, Kind: d.Kind, EventTime: d.EventTime, RecordType: d.Type, SteleRecord: it.JSON})
		if got := row(it); !bytes.Equal(got, want) {
			t.Errorf("sentinel row:\n got %s\nwant %s", got, want)
		}

		for _, cfg := range []SplunkConfig{{}, {Host: "h<&>", Source: "stele", SourceType: "stele:record", Index: `i"x`}} {
			s := &SplunkSink{cfg: cfg}
			var meta bytes.Buffer
			for _, kv := range [][2]string{{"host", cfg.Host}, {"source", cfg.Source}, {"sourcetype", cfg.SourceType}, {"index", cfg.Index}} {
				if kv[1] != "" {
					v, _ := json.Marshal(kv[1])
					fmt.Fprintf(&meta, `,%q:%s`, kv[0], v)
				}
			}
			s.meta = meta.Bytes()
			tm, _ := time.Parse(time.RFC3339Nano, d.AdmittedTime)
			want := fmt.Sprintf(`{"time":%d.%06d%s,"event":%s}`, tm.Unix(), tm.Nanosecond()/1000, meta.Bytes(), it.JSON)
			if got := s.event(it); string(got) != want {
				t.Errorf("splunk event:\n got %s\nwant %s", got, want)
			}
		}

		for _, index := range []string{"stele", `a"<b>`} {
			s := &ElasticSink{cfg: ElasticConfig{Index: index}}
			idx, _ := json.Marshal(index)
			s.indexAction = fmt.Appendf(nil, `{"index":{"_index":%s,"_id":`, idx)
			s.deleteAction = fmt.Appendf(nil, `{"delete":{"_index":%s,"_id":`, idx)
			id, _ := json.Marshal(DocID(d.Origin, d.Index))
			want := fmt.Sprintf(`{"index":{"_index":%s,"_id":%s}}`+"\n%s\n", idx, id, it.JSON)
			wantN := 1
			if d.Erasure != nil {
				did, _ := json.Marshal(DocID(d.Origin, d.Erasure.ErasedIndex))
				want += fmt.Sprintf(`{"delete":{"_index":%s,"_id":%s}}`+"\n", idx, did)
				wantN = 2
			}
			if got, n := s.actions(it); string(got) != want || n != wantN {
				t.Errorf("elasticsearch actions (%d):\n got %s\nwant %s", n, got, want)
			}
		}
	}
}
