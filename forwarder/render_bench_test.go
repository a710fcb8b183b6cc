package forwarder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// BenchmarkRender measures rendering alone, on 1,000 verified entries of
// a real log (Entra audit events): record.Build (the normalised view as
// protojson, the OCSF event, the receipt) and the document's JSON, the
// one-pass encoder against the encoding/json encoding it replaced (same
// bytes, checked here too). cpu-ns/op is the process's CPU time per
// record.
//
//	go test ./forwarder -run '^$' -bench BenchmarkRender -benchtime 2000x
func BenchmarkRender(b *testing.B) {
	ctx := context.Background()
	l := startLog(b)
	l.appendAll(b, goldenEvents(b, 1000))
	lg, err := client.NewTileLog(l.httpURL, l.verifier, nil)
	if err != nil {
		b.Fatal(err)
	}
	fl := &forwarder.Follower{Log: lg, Events: l.cli}
	cp, err := fl.Advance(ctx)
	if err != nil {
		b.Fatal(err)
	}
	entries, err := fl.Read(ctx, cp, 0, 1000)
	if err != nil {
		b.Fatal(err)
	}
	docs := make([]*record.Document, len(entries))
	size := 0
	for i, e := range entries {
		if docs[i], err = record.Build(e); err != nil {
			b.Fatal(err)
		}
		j, _ := docs[i].Marshal()
		if want := reflectJSON(b, docs[i]); !bytes.Equal(j, want) {
			b.Fatalf("entry %d: the one-pass encoding differs from encoding/json's:\n%s\n%s", i, j, want)
		}
		size += len(j)
	}
	b.Logf("%d bytes a record on average", size/len(docs))
	b.ResetTimer()
	// The machine is shared: the process's CPU time per record is the
	// number to compare (cpu-ns/op), wall time moves with the load.
	run := func(name string, f func(i int)) {
		b.Run(name, func(b *testing.B) {
			c0 := cpuTime()
			for i := range b.N {
				f(i)
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
	run("build", func(i int) {
		if _, err := record.Build(entries[i%len(entries)]); err != nil {
			b.Fatal(err)
		}
	})
	run("json", func(i int) { docs[i%len(docs)].Marshal() })
	run("json-encoding/json", func(i int) { reflectJSON(b, docs[i%len(docs)]) })
}

// reflectJSON is the document's encoding before the one-pass encoder.
func reflectJSON(b testing.TB, d *record.Document) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		b.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
