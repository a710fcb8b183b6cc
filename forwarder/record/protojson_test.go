package record

import (
	"bytes"
	"encoding/base64"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/jsonappend"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// protoJSONWant is what appendProtoJSON must give: protojson's encoding
// with proto names, compacted; ok false when protojson refuses m.
func protoJSONWant(m proto.Message) ([]byte, bool) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, false
	}
	return jsonappend.Compact(nil, j, false), true
}

func checkProtoJSON(t *testing.T, name string, m proto.Message) {
	t.Helper()
	want, ok := protoJSONWant(m)
	got, err := appendProtoJSON([]byte("prefix"), m)
	switch {
	case !ok && err == nil:
		t.Fatalf("%s: protojson refuses the message, appendProtoJSON gave %s", name, got)
	case ok && err != nil:
		t.Fatalf("%s: appendProtoJSON: %v (protojson gave %s)", name, err, want)
	case !ok:
		if string(got) != "prefix" {
			t.Fatalf("%s: a refused message left %q behind", name, got)
		}
	case !bytes.Equal(got, append([]byte("prefix"), want...)):
		t.Fatalf("%s: appendProtoJSON gave\n%s\nprotojson (compacted)\n%s", name, got[len("prefix"):], want)
	}
}

// protoJSONEdges are views holding what the golden records do not: every
// escaped character, unknown enum numbers, the float forms, timestamps of
// each precision and out of range, set optional zeros, an empty nested
// message.
func protoJSONEdges() map[string]*stelev1.IdentityEvent {
	ts := func(s int64, n int32) *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: s, Nanos: n} }
	var ctl strings.Builder
	for c := range 0x80 {
		ctl.WriteByte(byte(c))
	}
	ctl.WriteString("\u2028\u2029<>&é\U0001F600\ufffd")
	f, tr := false, true
	edges := map[string]*stelev1.IdentityEvent{
		"empty":          {},
		"escapes":        {NativeId: ctl.String(), Flags: []string{"", `"\`, "\x00\x1f\x7f"}},
		"invalid utf-8":  {NativeId: "a\xffb"},
		"unknown enum":   {EventClass: stelev1.EventClass(99), Outcome: &stelev1.Outcome{Status: stelev1.OutcomeStatus(-3)}},
		"known enum":     {EventClass: stelev1.EventClass(1)},
		"raw record":     {RawRecord: []byte{0, 1, 2, 0xff, 0xfe}, Format: "x"},
		"empty message":  {Outcome: &stelev1.Outcome{}, Client: &stelev1.Client{Device: &stelev1.Device{}}},
		"optional false": {Client: &stelev1.Client{Device: &stelev1.Device{Compliant: &f, Managed: &tr}}},
		"whole seconds":  {EventTime: ts(1700000000, 0)},
		"millis":         {EventTime: ts(1700000000, 123000000)},
		"micros":         {EventTime: ts(1700000000, 123456000)},
		"nanos":          {EventTime: ts(1700000000, 123456789), EnvelopeTime: ts(-1, 1)},
		"first second":   {EventTime: ts(-62135596800, 0)},
		"last second":    {EventTime: ts(253402300799, 999999999)},
		"before year 1":  {EventTime: ts(-62135596801, 0)},
		"after 9999":     {EventTime: ts(253402300800, 0)},
		"negative nanos": {EventTime: ts(0, -1)},
		"nanos over":     {EventTime: ts(0, 1e9)},
		"ocsf":           {Ocsf: &stelev1.OcsfClass{Version: "1.3.0", ClassUid: -7, ActivityId: math.MaxInt32, TypeUid: math.MinInt64}},
	}
	for i, v := range []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 9.99e-7, 1e20, 1e21, 123456789.123, math.MaxFloat64,
		math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 5e-324, 1e-7} {
		lat, lon := v, -v
		edges["float "+string(rune('a'+i))] = &stelev1.IdentityEvent{Client: &stelev1.Client{Location: &stelev1.Location{Latitude: &lat, Longitude: &lon}}}
	}
	return edges
}

// TestProtoJSONSame: for every golden record of every format the identity
// package has (normalised, and decoded back from its committed bytes as
// the forwarder does) and for the edge cases, appendProtoJSON gives
// protojson's bytes, compacted.
func TestProtoJSONSame(t *testing.T) {
	n := 0
	for _, g := range goldenRecords(t) {
		name, format, ev := g.name, g.format, g.ev
		checkProtoJSON(t, name, ev)
		pb, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := identity.Unmarshal(pb, format, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkProtoJSON(t, name+" (decoded)", dec)
		n++
	}
	if n < 80 {
		t.Fatalf("only %d golden records normalised: the differential covers too little", n)
	}
	for name, ev := range protoJSONEdges() {
		checkProtoJSON(t, name, ev)
	}
}

// FuzzProtoJSON: any IdentityEvent the protobuf decoder accepts encodes
// to protojson's bytes, compacted, or is refused by both.
func FuzzProtoJSON(f *testing.F) {
	for _, ev := range protoJSONEdges() {
		if b, err := proto.Marshal(ev); err == nil {
			f.Add(b)
		}
	}
	for _, g := range goldenRecords(f) {
		g.ev.RawRecord = nil
		if b, err := proto.Marshal(g.ev); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev stelev1.IdentityEvent
		if proto.Unmarshal(b, &ev) != nil {
			return
		}
		checkProtoJSON(t, "fuzzed", &ev)
	})
}

// BenchmarkProtoJSON compares appendProtoJSON with what it replaced
// (protojson, then compacting) on the normalised views of the golden
// records, decoded from their committed bytes as the forwarder does; run
// both in one go for their ratio:
//
//	go test ./forwarder/record -run '^$' -bench BenchmarkProtoJSON -benchmem
func BenchmarkProtoJSON(b *testing.B) {
	var evs []*stelev1.IdentityEvent
	size := 0
	for _, g := range goldenRecords(b) {
		ev, format := g.ev, g.format
		pb, _ := proto.Marshal(ev)
		ev, err := identity.Unmarshal(pb, format, nil)
		if err != nil {
			b.Fatal(err)
		}
		evs = append(evs, ev)
		size += len(pb)
	}
	buf := make([]byte, 0, 64<<10)
	b.Run("append", func(b *testing.B) {
		for i := range b.N {
			var err error
			if buf, err = appendProtoJSON(buf[:0], evs[i%len(evs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson", func(b *testing.B) {
		for i := range b.N {
			j, err := protojson.MarshalOptions{UseProtoNames: true}.MarshalAppend(buf[:0], evs[i%len(evs)])
			if err != nil {
				b.Fatal(err)
			}
			buf = jsonappend.Compact(j[:0], j, false)
		}
	})
}

// TestMarshalSized: Marshal sizes its buffer for real documents (every
// golden record, its views, a receipt of a large log) so that it
// allocates once, never regrowing and copying the buffer.
func TestMarshalSized(t *testing.T) {
	var receipt strings.Builder
	receipt.WriteString("c2sp.org/tlog-proof@v1\nextra " + strings.Repeat("QUJD", 90) + "\nindex 123456789\n")
	for range 30 {
		receipt.WriteString(base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n")
	}
	receipt.WriteString("\nlog.example.com/stele\n123456790\n" + strings.Repeat("A", 44) + "\n\n")
	for range 3 {
		receipt.WriteString("— witness.example.com/w" + strings.Repeat("B", 100) + "\n")
	}
	n := 0
	for _, g := range goldenRecords(t) {
		name, format, raw, ev := g.name, g.format, g.raw, g.ev
		if !utf8.Valid(raw) {
			continue
		}
		pb, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev.RawRecord = nil
		norm, err := appendProtoJSON(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		rec := string(raw)
		d := &Document{Schema: Schema, Type: TypeEvent, Origin: "log.example.com/stele", Index: 123456789,
			LeafHash: strings.Repeat("ab", 32), Source: "entra/00000000-0000-0000-0000-000000000000/audit", SourceSeq: 42,
			EventID: ev.NativeId, Kind: ev.Kind, EventTime: "2026-12-06T05:00:00.123456789Z", AdmittedTime: "2026-12-06T05:00:01.123456789Z",
			Format: format, Record: &rec, Salt: strings.Repeat("S", 44), NormalizedPB: base64.StdEncoding.EncodeToString(pb),
			Normalized: norm, OCSF: norm, Receipt: receipt.String(), compactViews: true}
		if a := testing.AllocsPerRun(5, func() { d.Marshal() }); a != 1 {
			t.Errorf("%s: Marshal allocates %v times, want once", name, a)
		}
		n++
	}
	if n < 80 {
		t.Fatalf("only %d golden records: too few", n)
	}
}
