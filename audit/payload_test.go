package audit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/leaf"
)

// committed is an entry with a real salted payload commitment.
type committed struct {
	leaf          []byte
	salt, payload []byte
}

func mkCommitted(t *testing.T, e ev, body string) committed {
	t.Helper()
	salt, err := leaf.NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	d, err := leaf.Digest(salt, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	l := &leaf.Leaf{Source: e.source, EventID: e.id, Kind: "user.signin", EventTime: e.event,
		AdmittedTime: e.admitted, PayloadDigest: d, PayloadSize: uint32(len(body))}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return committed{b, salt, []byte(body)}
}

// TestPayloadCheck: with a PayloadFetcher the audit checks every payload
// against its leaf: a matching payload counts as checked, a changed one,
// a missing one and a tombstone without an erasure event naming the entry
// are findings, and a tombstone backed by an erasure event is fine.
func TestPayloadCheck(t *testing.T) {
	k := newKey(t)
	dir := t.TempDir()
	at := func(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Minute) }
	var cs []committed
	for i := range 6 {
		cs = append(cs, mkCommitted(t, ev{"entra/t1/audit", 0, fmt.Sprintf("e%d", i), at(i), at(i)}, fmt.Sprintf(`{"n":%d}`, i)))
	}
	// 6 erases 1; nothing erases 3.
	cs = append(cs, mkCommitted(t, ev{"stele/erasure", 0, "erase/1", at(6), at(6)}, `{"erase":1}`))
	entries := make([][]byte, len(cs))
	for i, c := range cs {
		entries[i] = c.leaf
	}
	appendEntries(t, dir, k, entries)

	var mu sync.Mutex
	asked := map[uint64]int{}
	fetch := func(_ context.Context, i uint64) (*audit.StoredPayload, error) {
		mu.Lock()
		asked[i]++
		mu.Unlock()
		c := cs[i]
		switch i {
		case 1:
			return &audit.StoredPayload{Erased: true, ErasureIndex: 6}, nil
		case 2: // the operator changed the payload
			return &audit.StoredPayload{Salt: c.salt, Payload: []byte(`{"n":99}`)}, nil
		case 3: // erased without an erasure event
			return &audit.StoredPayload{Erased: true, ErasureIndex: 5}, nil
		case 4:
			return nil, errors.New("rpc error: code = NotFound desc = no payload")
		}
		return &audit.StoredPayload{Salt: c.salt, Payload: c.payload}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: serve(t, dir), Verifier: k.verifier, Workers: 2, Payloads: fetch})
	if err != nil || !rep.Verified {
		t.Fatalf("want a verified log: %v", err)
	}
	for i := range cs {
		if asked[uint64(i)] != 1 {
			t.Errorf("entry %d fetched %d times, want once", i, asked[uint64(i)])
		}
	}
	if rep.PayloadsChecked != 3 || rep.PayloadsErased != 2 {
		t.Errorf("checked %d, erased %d; want 3 (entries 0, 5, 6) and 2 (entries 1, 3)", rep.PayloadsChecked, rep.PayloadsErased)
	}
	got := map[string][]uint64{}
	for _, f := range rep.Findings {
		got[f.Kind] = append(got[f.Kind], f.Index)
	}
	want := map[string][]uint64{audit.FindPayloadMismatch: {2}, audit.FindErasedWithoutEvent: {3}, audit.FindPayloadUnavailable: {4}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("findings %v, want %v (%+v)", got, want, rep.Findings)
	}
	for _, f := range rep.Findings {
		if f.Kind == audit.FindPayloadMismatch {
			mustContain(t, f.Message, "payload_size mismatch")
		}
	}
}

// TestPayloadCheckOff: without a fetcher nothing is fetched or counted.
func TestPayloadCheckOff(t *testing.T) {
	dir, k := cleanLog(t)
	rep, _, err := run(t, serve(t, dir), k.verifier, nil)
	if err != nil || !rep.OK() || rep.PayloadsChecked != 0 || rep.PayloadsErased != 0 {
		t.Fatalf("err %v ok %v checked %d erased %d", err, rep.OK(), rep.PayloadsChecked, rep.PayloadsErased)
	}
}
