package server_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/internal/store"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

func TestBadInputIsRefusedPerEvent(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{MaxRecordBytes: 4096})
	good := func(id string) *stelev1.Event { return event("entra/t/audit", id, 512) }
	oversized := good("big")
	oversized.Record = record("big", 5000)
	unknownFormat := good("fmt")
	unknownFormat.Format = "entra.unknown"
	noSource := good("nosrc")
	noSource.Source = ""
	noTime := good("notime")
	noTime.EventTime = nil
	noTime.Format, noTime.Record = "json", []byte(`{"id":"notime"}`)
	badJSON := good("badjson")
	badJSON.Record = []byte(`{"id": "badjson",`)
	badSource := good("badsrc")
	badSource.Source = "entra//audit"
	future := good("future")
	future.EventTime = timestamppb.New(time.Now().Add(48 * time.Hour))
	badKind := good("badkind")
	badKind.Kind = "Directory Role"
	notObject := good("arr")
	notObject.Record = []byte(`[1,2,3]`)
	wrongID := good("wid")
	wrongID.EventId = "other"
	wrongKind := good("wkind")
	wrongKind.Kind = "user.create"

	cases := []struct {
		ev   *stelev1.Event
		code codes.Code
		msg  string
	}{
		{good("g1"), codes.OK, ""},
		{oversized, codes.ResourceExhausted, "over the limit of 4096"},
		{good("g2"), codes.OK, ""},
		{unknownFormat, codes.InvalidArgument, `unknown format "entra.unknown"`},
		{noSource, codes.InvalidArgument, "source is empty"},
		{noTime, codes.InvalidArgument, "event_time is missing"},
		{badJSON, codes.InvalidArgument, "not valid JSON"},
		{badSource, codes.InvalidArgument, "source"},
		{future, codes.InvalidArgument, "in the future"},
		{badKind, codes.InvalidArgument, "kind"},
		{notObject, codes.InvalidArgument, "must be a JSON object"},
		{wrongID, codes.InvalidArgument, `event_id "other" differs from the record's own id "wid"`},
		{wrongKind, codes.InvalidArgument, `kind "user.create" differs from "directory.role.member.add"`},
		{&stelev1.Event{}, codes.InvalidArgument, "source is empty"},
		{good("g3"), codes.OK, ""},
	}
	evs := make([]*stelev1.Event, len(cases))
	for i, c := range cases {
		evs[i] = c.ev
	}
	rs, err := ts.cli.Append(ctxT(t, time.Minute), evs)
	if err != nil {
		t.Fatal(err)
	}
	admitted := map[uint64]bool{}
	for i, c := range cases {
		r := rs[i]
		if codes.Code(r.Code) != c.code || !strings.Contains(r.Message, c.msg) {
			t.Errorf("event %d: got %v %q, want %v containing %q", i, codes.Code(r.Code), r.Message, c.code, c.msg)
		}
		if c.code == codes.OK {
			admitted[r.Index] = true
		}
	}
	if len(admitted) != 3 {
		t.Fatalf("admitted indexes %v, want 3 distinct", admitted)
	}
	// Only the three good events are in the log.
	rs2, err := ts.cli.Receipt(ctxT(t, 10*time.Second), 2)
	if err != nil || len(rs2) == 0 {
		t.Fatalf("receipt for the third good event: %v", err)
	}
	cp, err := ts.cli.Log.GetCheckpoint(ctxT(t, 10*time.Second), &stelev1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 3 {
		t.Fatalf("log size %d, want 3", cp.Size)
	}

	// Batch-level refusals: empty and too large.
	_, err = ts.cli.Log.Append(ctxT(t, time.Minute), &stelev1.AppendRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty batch: %v, want InvalidArgument", err)
	}
	big := make([]*stelev1.Event, 10001)
	for i := range big {
		big[i] = good(fmt.Sprintf("x%d", i))
	}
	_, err = ts.cli.Log.Append(ctxT(t, time.Minute), &stelev1.AppendRequest{Events: big})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized batch: %v, want ResourceExhausted", err)
	}
}

func TestDedupConcurrentAndInBatch(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	ev := event("entra/t/audit", "same", 700)
	const copies = 16
	idx := make([]uint64, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			rs := mustAppend(t, ts.cli, []*stelev1.Event{ev, ev})
			if rs[0].Index != rs[1].Index || !rs[1].Duplicate {
				t.Errorf("copies in one batch got %d and %d (dup %v)", rs[0].Index, rs[1].Index, rs[1].Duplicate)
			}
			idx[i] = rs[0].Index
		})
	}
	wg.Wait()
	for _, i := range idx {
		if i != idx[0] {
			t.Fatalf("concurrent copies got different indexes: %v", idx)
		}
	}
	// Same event_id in another source is another event.
	other := event("entra/t/signin", "same", 700)
	rs := mustAppend(t, ts.cli, []*stelev1.Event{other})
	if rs[0].Duplicate || rs[0].Index == idx[0] {
		t.Fatalf("same event_id in another source was deduplicated")
	}
	if _, err := ts.cli.Receipt(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	cp, err := ts.cli.Log.GetCheckpoint(ctxT(t, 10*time.Second), &stelev1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 2 {
		t.Fatalf("log holds %d entries, want 2", cp.Size)
	}
}

func TestRestartKeepsTreeDedupAndPayloads(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	evs := make([]*stelev1.Event, 300)
	for i := range evs {
		evs[i] = event("entra/t/audit", fmt.Sprintf("r%d", i), 900)
	}
	first := mustAppend(t, ts.cli, evs)
	cp1, err := ts.cli.Receipt(ctxT(t, 10*time.Second), 299)
	if err != nil {
		t.Fatal(err)
	}
	_ = cp1
	ts.stop(t)

	ts2 := startServer(t, dir, server.Config{})
	again := mustAppend(t, ts2.cli, evs)
	for i := range evs {
		if !again[i].Duplicate || again[i].Index != first[i].Index {
			t.Fatalf("after restart event %d: index %d dup %v, want %d dup", i, again[i].Index, again[i].Duplicate, first[i].Index)
		}
	}
	for _, i := range []int{0, 150, 299} {
		ev, err := ts2.cli.Event(ctxT(t, 10*time.Second), first[i].Index)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ev.Record, evs[i].Record) {
			t.Fatalf("payload %d changed across restart", i)
		}
	}
	cp, err := ts2.cli.Log.GetCheckpoint(ctxT(t, 10*time.Second), &stelev1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 300 {
		t.Fatalf("size after restart %d, want 300", cp.Size)
	}
	// A new event continues the log.
	rs := mustAppend(t, ts2.cli, []*stelev1.Event{event("entra/t/audit", "after", 100)})
	if rs[0].Index != 300 {
		t.Fatalf("first event after restart got index %d, want 300", rs[0].Index)
	}
}

// TestDedupIndexRebuildsFromLog loses the whole dedup index and shows that
// the log alone restores it.
func TestDedupIndexRebuildsFromLog(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	evs := make([]*stelev1.Event, 600)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("entra/t%d/audit", i%3), fmt.Sprintf("d%d", i), 300)
	}
	first := mustAppend(t, ts.cli, evs)
	ts.stop(t)

	st, err := store.Open(filepath.Join(dir, "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ResetIndexes(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.LookupEvent(evs[5].Source, evs[5].EventId); ok {
		t.Fatal("index still has the event after reset")
	}
	st.Close()

	ts2 := startServer(t, dir, server.Config{})
	again := mustAppend(t, ts2.cli, evs)
	for i := range evs {
		if !again[i].Duplicate || again[i].Index != first[i].Index {
			t.Fatalf("event %d after rebuild: index %d dup %v, want %d", i, again[i].Index, again[i].Duplicate, first[i].Index)
		}
	}
	ts2.stop(t)

	// The explicit rebuild option gives the same answers.
	ts3 := startServer(t, dir, server.Config{RebuildIndexes: true})
	rs := mustAppend(t, ts3.cli, evs[:10])
	for i := range rs {
		if !rs[i].Duplicate || rs[i].Index != first[i].Index {
			t.Fatalf("event %d after --rebuild-index: index %d dup %v", i, rs[i].Index, rs[i].Duplicate)
		}
	}
}

func TestReadAPIErrors(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	mustAppend(t, ts.cli, []*stelev1.Event{event("entra/t/audit", "one", 100)})
	ctx := ctxT(t, 10*time.Second)
	if _, err := ts.cli.Receipt(ctx, 0); err != nil {
		t.Fatal(err)
	}
	check := func(name string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	_, err := ts.cli.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: 5})
	check("receipt past the end", err, codes.NotFound)
	_, err = ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: 1}})
	check("inclusion past the end", err, codes.OutOfRange)
	_, err = ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_LeafHash{LeafHash: []byte("short")}})
	check("short leaf hash", err, codes.InvalidArgument)
	_, err = ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_LeafHash{LeafHash: make([]byte, 32)}})
	check("unknown leaf hash", err, codes.NotFound)
	_, err = ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{})
	check("no leaf", err, codes.InvalidArgument)
	_, err = ts.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: 0}, TreeSize: 9})
	check("tree size past checkpoint", err, codes.OutOfRange)
	_, err = ts.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: 2, ToSize: 1})
	check("consistency backwards", err, codes.InvalidArgument)
	_, err = ts.cli.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: 3})
	check("event past the end", err, codes.NotFound)
	stream, err := ts.cli.Log.GetEntries(ctx, &stelev1.GetEntriesRequest{Start: 7})
	if err == nil {
		_, err = stream.Recv()
	}
	check("entries past the end", err, codes.OutOfRange)
}

// TestResubmissionWithOtherContentIsRefused: a copy of (source, event_id)
// that differs from what was admitted is not silently taken as a duplicate.
// The records are of the generic json format, whose kind is the producer's
// (an Entra record's kind is the normaliser's, and a different one is
// refused before dedup).
func TestResubmissionWithOtherContentIsRefused(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	jsonEvent := func(size int) *stelev1.Event {
		e := event("entra/t/audit", "x1", size)
		e.Format = "json"
		return e
	}
	orig := jsonEvent(900)
	rs := mustAppend(t, ts.cli, []*stelev1.Event{orig})
	idx := rs[0].Index

	otherRecord := jsonEvent(901)
	otherKind := jsonEvent(900)
	otherKind.Kind = "directory.role.member.remove"
	otherTime := jsonEvent(900)
	otherTime.EventTime = timestamppb.New(orig.EventTime.AsTime().Add(time.Second))
	otherSeq := jsonEvent(900)
	otherSeq.SourceSeq = 9
	same := jsonEvent(900)
	got, err := ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{otherRecord, otherKind, otherTime, otherSeq, same})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"another format or record", "kind", "event_time", "source_seq"} {
		r := got[i]
		if codes.Code(r.Code) != codes.AlreadyExists || r.Index != idx || !strings.Contains(r.Message, want) || !strings.Contains(r.Message, fmt.Sprint("index ", idx)) {
			t.Errorf("copy %d: %v %d %q, want AlreadyExists at %d mentioning %q", i, codes.Code(r.Code), r.Index, r.Message, idx, want)
		}
	}
	if r := got[4]; r.Code != 0 || !r.Duplicate || r.Index != idx {
		t.Errorf("identical copy: %+v, want duplicate of %d", r, idx)
	}

	// Two different copies arriving at once: one is admitted, the other
	// refused with the first's index.
	a, b := event("entra/t/audit", "race", 900), event("entra/t/audit", "race", 1000)
	got, err = ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Code != 0 || got[0].Duplicate {
		t.Fatalf("first copy: %+v", got[0])
	}
	if codes.Code(got[1].Code) != codes.AlreadyExists || got[1].Index != got[0].Index {
		t.Fatalf("second copy with other content: %+v", got[1])
	}
	// Nothing of the refused copies reached the log.
	ev, err := ts.cli.Event(ctxT(t, 10*time.Second), idx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Record, orig.Record) {
		t.Fatal("the admitted record changed")
	}
	cp, err := ts.cli.Log.GetCheckpoint(ctxT(t, 10*time.Second), &stelev1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size > 2 {
		t.Fatalf("log holds %d entries, want 2", cp.Size)
	}
}
