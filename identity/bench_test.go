package identity

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is this process's user+system CPU time: on a shared machine it
// moves far less with other processes' load than the wall clock does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNormalize measures the normaliser on each golden fixture,
// including the stored encoding the server writes:
// go test ./identity -run '^$' -bench Normalize -benchmem
func BenchmarkNormalize(b *testing.B) {
	for _, f := range fixtures(b) {
		b.Run(f.Format+"/"+f.Name, func(b *testing.B) {
			b.SetBytes(int64(len(f.Record)))
			b.ReportAllocs()
			cpu0 := cpuTime()
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
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkNormalizeOnly is BenchmarkNormalize without the stored
// encoding: identity.Normalize alone, the normaliser's share of ingest:
// go test ./identity -run '^$' -bench NormalizeOnly -benchmem
func BenchmarkNormalizeOnly(b *testing.B) {
	for _, f := range fixtures(b) {
		b.Run(f.Format+"/"+f.Name, func(b *testing.B) {
			b.SetBytes(int64(len(f.Record)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := Normalize(f.Format, f.Record); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkDecode compares, on each golden fixture, the single-pass fast
// path (what Normalize uses) with the jsontext decoder it is held to:
// go test ./identity -run '^$' -bench Decode -benchmem
func BenchmarkDecode(b *testing.B) {
	for _, f := range fixtures(b) {
		for _, d := range []struct {
			name   string
			decode func([]byte) (any, error)
		}{{"fast", func(r []byte) (any, error) { return decodeValue(r) }}, {"jsontext", decodeJSONText}} {
			b.Run(f.Format+"/"+f.Name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(f.Record)))
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if _, err := d.decode(f.Record); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
