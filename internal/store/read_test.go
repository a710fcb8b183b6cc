package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/store"
)

// TestGetPayloads: the batched read answers every ref exactly as
// GetPayload does, whatever the refs' order, neighbours and gaps: stored
// by admission time (in memtable and in tables), by digest alone, erased,
// missing, under a wrong admission time, twice in one call; and what it
// returns is the caller's to keep.
func TestGetPayloads(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	base := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	var ps []store.Payload
	for i := range 300 {
		at := base.Add(time.Duration((i*7919)%300) * time.Microsecond)
		ps = append(ps, store.Payload{Digest: digest(fmt.Sprint("batched", i)), Admitted: at, Salt: salt(byte(i)),
			Data: bytes.Repeat([]byte{byte(i)}, 1+(i*37)%5000)})
	}
	if err := s.PutPayloads(ps[:200]); err != nil {
		t.Fatal(err)
	}
	old := store.Payload{Digest: digest("old"), Salt: salt(3), Data: []byte("by digest alone")}
	if err := s.PutPayloads([]store.Payload{old}); err != nil {
		t.Fatal(err)
	}
	// The first 200 in tables, the rest in the memtable.
	closeStore(t, s)
	s = open(t, dir)
	defer closeStore(t, s)
	if err := s.PutPayloads(ps[200:]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ErasePayload(context.Background(), ps[17].Ref(), []byte("tomb")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ErasePayload(context.Background(), ps[250].Ref(), []byte("tomb")); err != nil {
		t.Fatal(err)
	}
	var refs []store.Ref
	for i := 0; i < len(ps); i += 1 + i%3 {
		refs = append(refs, ps[i].Ref())
	}
	wrongTime := ps[5].Ref()
	wrongTime.Admitted = wrongTime.Admitted.Add(time.Nanosecond)
	refs = append(refs,
		store.Ref{Digest: old.Digest, Admitted: base}, store.Ref{Digest: old.Digest}, // digest alone
		store.Ref{Digest: digest("never"), Admitted: base}, store.Ref{Digest: digest("never")}, // missing
		store.Ref{Digest: digest("late"), Admitted: base.Add(time.Hour)}, // past every key
		store.Ref{Digest: digest("early"), Admitted: base.Add(-time.Hour)},
		wrongTime, ps[40].Ref(), ps[40].Ref(), ps[17].Ref(), ps[250].Ref(), // twice; erased (in a table, in the memtable)
	)
	// Reversed as well as in order: GetPayloads sorts.
	for _, order := range []string{"as given", "reversed"} {
		rs := refs
		if order == "reversed" {
			rs = make([]store.Ref, len(refs))
			for i, r := range refs {
				rs[len(refs)-1-i] = r
			}
		}
		got, err := s.GetPayloads(rs)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rs) {
			t.Fatalf("%s: %d answers for %d refs", order, len(got), len(rs))
		}
		var found, erased, missing int
		for i, r := range rs {
			salt, data, err := s.GetPayload(r)
			g := got[i]
			if !errors.Is(g.Err, err) || (err == nil && g.Err != nil) {
				t.Fatalf("%s: ref %d (%x): GetPayloads error %v, GetPayload %v", order, i, r.Digest[:4], g.Err, err)
			}
			if !bytes.Equal(g.Salt, salt) || !bytes.Equal(g.Data, data) {
				t.Fatalf("%s: ref %d (%x): GetPayloads and GetPayload differ", order, i, r.Digest[:4])
			}
			switch {
			case err == nil:
				found++
			case errors.Is(err, store.ErrErased):
				erased++
			case errors.Is(err, store.ErrNotFound):
				missing++
			}
		}
		// The test must have covered every outcome.
		if found < 100 || erased < 2 || missing != 5 {
			t.Fatalf("%s: %d found, %d erased, %d missing: the refs do not cover what they should", order, found, erased, missing)
		}
		// The caller may keep and change the answers.
		for i := range got {
			if got[i].Err == nil {
				_ = append(got[i].Salt, 'X')
				got[i].Data[0] ^= 0xff
			}
		}
		for i, r := range rs {
			if got[i].Err == nil {
				mustGetRef(t, s, r, got[i].Salt, append([]byte{got[i].Data[0] ^ 0xff}, got[i].Data[1:]...))
			}
		}
	}
	if got, err := s.GetPayloads(nil); err != nil || len(got) != 0 {
		t.Fatalf("GetPayloads(nil) = %v, %v", got, err)
	}
}
