package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/testlog"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/ledger"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// logOf builds a real Tessera log of n events (golden Entra records, the
// last one's payload erased) and a payload source for it.
func logOf(t *testing.T, n int) (*client.TileLog, *client.Checkpoint, map[uint64]*stelev1.GetEventResponse) {
	t.Helper()
	rec, err := os.ReadFile(filepath.Join("..", "identity", "testdata", "golden", "entra.directoryAudit", "role-member-add-direct.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := identity.Normalize("entra.directoryAudit", rec)
	if err != nil {
		t.Fatal(err)
	}
	norm, err := identity.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := (&payload.Payload{Format: "entra.directoryAudit", Record: rec, Normalized: norm}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	key := testlog.NewKey(t, "example.com/ledger")
	dir := t.TempDir()
	payloads := map[uint64]*stelev1.GetEventResponse{}
	var entries [][]byte
	for i := range n {
		salt, err := leaf.NewSalt()
		if err != nil {
			t.Fatal(err)
		}
		d, err := leaf.Digest(salt, pb)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 2, 9, 0, i, 0, time.UTC)
		l := &leaf.Leaf{Source: "entra/t1/audit", EventID: fmt.Sprintf("e%d", i), Kind: "directory.role.member.add", EventTime: at, AdmittedTime: at,
			PayloadDigest: d, PayloadSize: uint32(len(pb))}
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, b)
		payloads[uint64(i)] = &stelev1.GetEventResponse{Index: uint64(i), Leaf: b, Payload: pb, Salt: salt}
	}
	payloads[uint64(n-1)] = &stelev1.GetEventResponse{Index: uint64(n - 1), Leaf: entries[n-1], Tombstone: &stelev1.EraseTombstone{Index: uint64(n - 1), Reason: "test"}}
	testlog.Append(t, dir, key.Signer, entries, nil)
	lg, err := client.NewTileLog(testlog.Serve(t, dir), key.Verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := lg.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return lg, cp, payloads
}

func source(m map[uint64]*stelev1.GetEventResponse) ledger.PayloadFunc {
	return func(_ context.Context, i uint64) (*stelev1.GetEventResponse, error) {
		r, ok := m[i]
		if !ok {
			return nil, errors.New("no such entry")
		}
		return r, nil
	}
}

func TestWalk(t *testing.T) {
	const n = 300 // more than one entry bundle
	lg, cp, payloads := logOf(t, n)
	ctx := context.Background()
	r := &ledger.Reader{Log: lg, Payloads: source(payloads), Workers: 3}
	var got []uint64
	var erased int
	root, err := r.Walk(ctx, cp, 0, cp.Size, func(en *ledger.Entry) error {
		got = append(got, en.Index)
		switch {
		case en.Problem == "erased":
			erased++
		case en.Event == nil || en.Event.GetPrivilege().GetRoleName() != "Global Administrator":
			t.Errorf("entry %d: %q %v", en.Index, en.Problem, en.Event)
		}
		return nil
	})
	if err != nil || root != cp.Root || len(got) != n || erased != 1 || got[n-1] != n-1 {
		t.Fatalf("walk: %v, %d entries, %d erased", err, len(got), erased)
	}
	// A prefix is proven against the checkpoint; an extension must start
	// from the prefix's root.
	prefix, err := r.Walk(ctx, cp, 0, 123, func(*ledger.Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var rest int
	if _, err := r.Extend(ctx, cp, 123, prefix, func(*ledger.Entry) error { rest++; return nil }); err != nil || rest != n-123 {
		t.Fatalf("extend: %v, %d entries", err, rest)
	}
	other := prefix
	other[0] ^= 1
	if _, err := r.Extend(ctx, cp, 123, other, func(*ledger.Entry) error { return nil }); !errors.Is(err, client.ErrVerification) {
		t.Errorf("extending from another root: %v", err)
	}

	// A server that changes a payload is caught.
	bad := map[uint64]*stelev1.GetEventResponse{}
	for k, v := range payloads {
		bad[k] = v
	}
	tampered := proto.CloneOf(payloads[7])
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	bad[7] = tampered
	br := &ledger.Reader{Log: lg, Payloads: source(bad)}
	if _, err := br.Walk(ctx, cp, 0, cp.Size, func(*ledger.Entry) error { return nil }); !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "entry 7") {
		t.Errorf("tampered payload: %v", err)
	}

	// Proofs verify, and carry a receipt stele verify accepts.
	pr, err := ledger.NewProver(ctx, lg, cp)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pr.Prove(ctx, 42, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := client.VerifyReceipt([]byte(p.Receipt), lg.Verifier())
	if err != nil || rc.Index != 42 || rc.Leaf.EventID != "e42" {
		t.Errorf("receipt: %v %+v", err, rc)
	}
	if _, err := pr.Prove(ctx, 42, payloads[43].Leaf); !errors.Is(err, client.ErrVerification) {
		t.Errorf("proof with the wrong leaf: %v", err)
	}
}
