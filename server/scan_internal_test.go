package server

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// split cuts b into buffers of at most size bytes, as gRPC hands over a
// message in its HTTP/2 frames.
func split(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out, b = append(out, b[:size]), b[size:]
	}
	return append(out, b)
}

func TestScanBatch(t *testing.T) {
	ev := &stelev1.Event{Source: "entra/t/audit", EventId: "e1", Kind: "k", EventTime: timestamppb.Now(), Format: "json", Record: bytes.Repeat([]byte("x"), 300), SourceSeq: 1 << 40}
	stream, _ := proto.Marshal(&stelev1.AppendStreamRequest{BatchId: 1<<63 + 5, Events: []*stelev1.Event{ev, {}, ev}})
	unary, _ := proto.Marshal(&stelev1.AppendRequest{Events: []*stelev1.Event{ev, ev, {}, {}}})
	cases := []struct {
		name  string
		b     []byte
		field protowire.Number
		n     int
		id    uint64
		bad   bool
	}{
		{"stream", stream, streamEventsField, 3, 1<<63 + 5, false},
		{"unary", unary, appendEventsField, 4, 0, false},
		{"empty", nil, appendEventsField, 0, 0, false},
		{"empty events", bytes.Repeat([]byte{0x0a, 0}, 1000), appendEventsField, 1000, 0, false},
		{"truncated length", []byte{0x0a, 0x05, 1, 2}, appendEventsField, 0, 0, true},
		{"truncated varint", []byte{0x0a, 0x80}, appendEventsField, 0, 0, true},
		{"field 0", []byte{0x02, 0}, appendEventsField, 0, 0, true},
		{"group", []byte{0x0b}, appendEventsField, 0, 0, true},
		{"overlong varint", append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 11)...), streamEventsField, 0, 0, true},
	}
	for _, c := range cases {
		for _, size := range []int{1, 2, 3, 7, 16384} {
			n, id, err := scanBatch(&chunks{bufs: split(c.b, size)}, c.field)
			if (err != nil) != c.bad || (!c.bad && (n != c.n || id != c.id)) {
				t.Errorf("%s in buffers of %d: got %d events, id %d, err %v; want %d, %d, bad %v", c.name, size, n, id, err, c.n, c.id, c.bad)
			}
		}
	}
}

// FuzzScanBatch checks that scanBatch counts what proto.Unmarshal decodes,
// however the message is split into buffers.
func FuzzScanBatch(f *testing.F) {
	b, _ := proto.Marshal(&stelev1.AppendStreamRequest{BatchId: 7, Events: []*stelev1.Event{{Source: "a/b/c", Record: []byte("{}")}, {}}})
	f.Add(b, 3)
	f.Add([]byte{0x12, 0, 0x12, 0}, 1)
	f.Fuzz(func(t *testing.T, b []byte, size int) {
		size = max(1, size%64)
		n, id, err := scanBatch(&chunks{bufs: split(b, size)}, streamEventsField)
		n2, id2, err2 := scanBatch(&chunks{bufs: [][]byte{b}}, streamEventsField)
		if n != n2 || id != id2 || (err == nil) != (err2 == nil) {
			t.Fatalf("split in %d: %d %d %v; whole: %d %d %v", size, n, id, err, n2, id2, err2)
		}
		var req stelev1.AppendStreamRequest
		if proto.Unmarshal(b, &req) == nil && err == nil && (len(req.Events) != n || req.BatchId != id) {
			t.Fatalf("scanBatch: %d events, batch %d; proto: %d events, batch %d", n, id, len(req.Events), req.BatchId)
		}
	})
}
