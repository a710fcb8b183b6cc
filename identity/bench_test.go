package identity

import (
	"testing"
)

// BenchmarkNormalize measures the normaliser on each golden fixture,
// including the stored encoding the server writes:
// go test ./identity -run '^$' -bench Normalize -benchmem
func BenchmarkNormalize(b *testing.B) {
	for _, f := range fixtures(b) {
		b.Run(f.Format+"/"+f.Name, func(b *testing.B) {
			b.SetBytes(int64(len(f.Record)))
			b.ReportAllocs()
			for b.Loop() {
				ev, err := Normalize(f.Format, f.Record)
				if err != nil {
					b.Fatal(err)
				}
				// As the server does: the payload holds these two.
				ev.RawRecord, ev.Format = nil, ""
				if _, err := Marshal(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
