package entragen

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stele-dev/stele/internal/importer"
)

// BenchmarkImportSide measures the importer's own work on a generated
// export, without a server: reading the container and building each event
// (go test ./internal/importer/entragen -run '^$' -bench ImportSide).
func BenchmarkImportSide(b *testing.B) {
	for _, c := range []Container{EventHub, JSONL, Graph} {
		b.Run(string(c), func(b *testing.B) {
			var buf bytes.Buffer
			n, err := Write(&buf, c, 16<<20)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			b.ResetTimer()
			for range b.N {
				r, err := importer.NewReader(bytes.NewReader(buf.Bytes()), importer.Auto)
				if err != nil {
					b.Fatal(err)
				}
				bld := &importer.Builder{Provider: importer.Entra, Tenant: Tenant}
				for {
					rec, err := r.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil || rec.Err != nil {
						b.Fatal(err, rec.Err)
					}
					if _, err := bld.Event(rec, "bench"); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
