package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/store"
)

func open(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func closeStore(t *testing.T, s *store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func salt(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// ref names a payload stored by digest alone (zero admission time).
func ref(d [32]byte) store.Ref { return store.Ref{Digest: d} }

func mustGet(t *testing.T, s *store.Store, d [32]byte, wantSalt, wantData []byte) {
	t.Helper()
	mustGetRef(t, s, ref(d), wantSalt, wantData)
}

func mustGetRef(t *testing.T, s *store.Store, r store.Ref, wantSalt, wantData []byte) {
	t.Helper()
	d := r.Digest
	gotSalt, gotData, err := s.GetPayload(r)
	if err != nil {
		t.Fatalf("GetPayload(%x): %v", d[:4], err)
	}
	if !bytes.Equal(gotSalt, wantSalt) || !bytes.Equal(gotData, wantData) {
		t.Fatalf("GetPayload(%x) = salt %x data %q, want salt %x data %q", d[:4], gotSalt, gotData, wantSalt, wantData)
	}
}

func mustLookupEvent(t *testing.T, s *store.Store, source, id string, want uint64, wantOK bool) {
	t.Helper()
	got, ok, err := s.LookupEvent(source, id)
	if err != nil {
		t.Fatalf("LookupEvent(%q, %q): %v", source, id, err)
	}
	if ok != wantOK || (ok && got != want) {
		t.Fatalf("LookupEvent(%q, %q) = %d, %v; want %d, %v", source, id, got, ok, want, wantOK)
	}
}

func mustLookupLeaf(t *testing.T, s *store.Store, h [32]byte, want uint64, wantOK bool) {
	t.Helper()
	got, ok, err := s.LookupLeafHash(h)
	if err != nil {
		t.Fatalf("LookupLeafHash(%x): %v", h[:4], err)
	}
	if ok != wantOK || (ok && got != want) {
		t.Fatalf("LookupLeafHash(%x) = %d, %v; want %d, %v", h[:4], got, ok, want, wantOK)
	}
}

func mustWatermark(t *testing.T, s *store.Store, want uint64) {
	t.Helper()
	got, err := s.Watermark()
	if err != nil {
		t.Fatalf("Watermark: %v", err)
	}
	if got != want {
		t.Fatalf("Watermark = %d, want %d", got, want)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)

	ps := []store.Payload{
		{Digest: digest("a"), Salt: salt(1), Data: []byte("payload a")},
		{Digest: digest("b"), Salt: salt(2), Data: []byte{0, 1, 2, 0xff}},
		{Digest: digest("empty"), Salt: salt(3), Data: nil},
		{Digest: digest("big"), Salt: salt(4), Data: bytes.Repeat([]byte("xyz"), 1<<20)},
	}
	if err := s.PutPayloads(ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		mustGet(t, s, p.Digest, p.Salt, p.Data)
	}
	if err := s.PutPayloads(nil); err != nil {
		t.Fatalf("PutPayloads(nil): %v", err)
	}
	// A second write under the same digest replaces the first.
	if err := s.PutPayloads([]store.Payload{{Digest: digest("a"), Salt: salt(9), Data: []byte("again")}}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, digest("a"), salt(9), []byte("again"))
}

func TestGetPayloadNotFound(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	for _, d := range [][32]byte{{}, digest("nope")} {
		salt, data, err := s.GetPayload(ref(d))
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetPayload on an empty store = %v, want ErrNotFound", err)
		}
		if salt != nil || data != nil {
			t.Fatalf("GetPayload returned data with ErrNotFound")
		}
	}
	if err := s.PutPayloads([]store.Payload{{Digest: digest("x"), Salt: salt(1), Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	near := digest("x")
	near[31] ^= 1
	if _, _, err := s.GetPayload(ref(near)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPayload of a digest one bit away = %v, want ErrNotFound", err)
	}
}

// TestGetPayloadReturnsCopies checks the caller may keep and change what
// GetPayload returns, and that appending to the salt cannot run into the
// payload.
func TestGetPayloadReturnsCopies(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	d := digest("c")
	if err := s.PutPayloads([]store.Payload{{Digest: d, Salt: salt(5), Data: []byte("data")}}); err != nil {
		t.Fatal(err)
	}
	gotSalt, gotData, err := s.GetPayload(ref(d))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(gotSalt, 'X', 'X')
	if string(gotData) != "data" {
		t.Fatalf("appending to the salt changed the data: %q", gotData)
	}
	gotSalt[0] ^= 0xff
	gotData[0] = 'D'
	mustGet(t, s, d, salt(5), []byte("data"))
}

func TestPutPayloadsDoesNotKeepCallerBuffers(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	sl, data := salt(6), []byte("mutable")
	if err := s.PutPayloads([]store.Payload{{Digest: digest("m"), Salt: sl, Data: data}}); err != nil {
		t.Fatal(err)
	}
	sl[0], data[0] = 0, 'M'
	mustGet(t, s, digest("m"), salt(6), []byte("mutable"))
}

func TestIndexes(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)

	mustLookupEvent(t, s, "src/a", "e1", 0, false)
	mustLookupLeaf(t, s, digest("leaf0"), 0, false)

	es := []store.Indexed{
		{Source: "src/a", EventID: "e1", LeafHash: digest("leaf0"), Index: 0},
		{Source: "src/a", EventID: "e2", LeafHash: digest("leaf1"), Index: 1},
		{Source: "src/b", EventID: "e1", LeafHash: digest("leaf2"), Index: 2},
		{Source: "src/a", EventID: "e3", LeafHash: [32]byte{0xff, 0xff}, Index: 1<<64 - 1},
		{Source: "src/a", EventID: "ünïcode id with spaces", LeafHash: [32]byte{}, Index: 1 << 40},
	}
	if err := s.PutIndexes(es); err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		mustLookupEvent(t, s, e.Source, e.EventID, e.Index, true)
		mustLookupLeaf(t, s, e.LeafHash, e.Index, true)
	}
	mustLookupEvent(t, s, "src/a", "e4", 0, false)
	mustLookupEvent(t, s, "src/c", "e1", 0, false)
	mustLookupEvent(t, s, "src/a", "E1", 0, false)
	mustLookupEvent(t, s, "src/a", "e", 0, false)
	mustLookupEvent(t, s, "src/a", "e1 ", 0, false)
	mustLookupLeaf(t, s, digest("leaf3"), 0, false)

	if err := s.PutIndexes(nil); err != nil {
		t.Fatalf("PutIndexes(nil): %v", err)
	}
}

// TestDedupKeyBoundaries checks that (source, event_id) pairs whose
// concatenations are equal stay distinct.
func TestDedupKeyBoundaries(t *testing.T) {
	pairs := [][2]string{
		{"ab", "c"},
		{"a", "bc"},
		{"abc", ""},
		{"a/b", "c"},
		{"a", "/bc"},
		{"a/", "bc"},
		{"x", "\x00"},
		{"x\x00", ""},
		{"x", "\x01x"},
		{strings.Repeat("s", 255), "id"},
		{strings.Repeat("s", 254), "sid"},
	}
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	for i, p := range pairs {
		if err := s.PutIndexes([]store.Indexed{{Source: p[0], EventID: p[1], LeafHash: digest(fmt.Sprint(i)), Index: uint64(100 + i)}}); err != nil {
			t.Fatal(err)
		}
		// Each pair is found as itself, and no later pair is found yet.
		for j, q := range pairs {
			mustLookupEvent(t, s, q[0], q[1], uint64(100+j), j <= i)
		}
	}
	// Every key must also be unrelated to the leaf-hash namespace.
	for i := range pairs {
		mustLookupLeaf(t, s, digest(fmt.Sprint(i)), uint64(100+i), true)
	}
}

// TestStoreLongSourceKeysDoNotCollide: dedup keys hold len(source) in one
// byte, so the store must refuse sources over 255 bytes rather than let two
// pairs share a key.
func TestStoreLongSourceKeysDoNotCollide(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	long := strings.Repeat("a", 257) // length byte wraps to 1
	if err := s.PutIndexes([]store.Indexed{{Source: long, EventID: "x", LeafHash: digest("long"), Index: 7}}); err != nil {
		return // refusing the long source is a fix
	}
	idx, ok, err := s.LookupEvent("a", strings.Repeat("a", 256)+"x")
	if err == nil && ok {
		t.Fatalf(`LookupEvent("a", "a"*256+"x") found index %d, which was stored for (%d-byte source, "x")`, idx, len(long))
	}
}

// TestStoreSaltLengthChecked: salt and data are stored back to back, so a
// salt of another length must be refused.
func TestStoreSaltLengthChecked(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	for _, n := range []int{0, 16, 33} {
		d := digest(fmt.Sprint("salt", n))
		sl := bytes.Repeat([]byte{0xaa}, n)
		data := bytes.Repeat([]byte("payload-"), 8)
		if err := s.PutPayloads([]store.Payload{{Digest: d, Salt: sl, Data: data}}); err != nil {
			continue // refusing is a fix
		}
		gotSalt, gotData, err := s.GetPayload(ref(d))
		if err != nil {
			continue // reporting corruption is acceptable too
		}
		if !bytes.Equal(gotSalt, sl) || !bytes.Equal(gotData, data) {
			t.Errorf("%d-byte salt: stored salt %x data %q, got back salt %x data %q", n, sl, data, gotSalt, gotData)
		}
	}
}

func TestWatermark(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	mustWatermark(t, s, 0)
	for _, w := range []uint64{1, 37, 1 << 40, 5, 0, 1<<64 - 1} {
		if err := s.SetWatermark(w); err != nil {
			t.Fatal(err)
		}
		mustWatermark(t, s, w)
	}
	// The watermark is not an index entry.
	mustLookupEvent(t, s, "m", "/watermark", 0, false)
}

func TestResetIndexes(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ps := []store.Payload{
		{Digest: digest("p1"), Salt: salt(1), Data: []byte("one")},
		{Digest: [32]byte{}, Salt: salt(2), Data: []byte("zero digest")},
		{Digest: [32]byte{0: 0xff, 31: 0xff}, Salt: salt(3), Data: []byte("high digest")},
	}
	if err := s.PutPayloads(ps); err != nil {
		t.Fatal(err)
	}
	es := []store.Indexed{
		{Source: "src/a", EventID: "e1", LeafHash: digest("l1"), Index: 0},
		{Source: strings.Repeat("z", 255), EventID: strings.Repeat("\xff", 10), LeafHash: [32]byte{0: 0xff, 31: 0xff}, Index: 1},
		{Source: "s", EventID: "e", LeafHash: [32]byte{}, Index: 2},
	}
	if err := s.PutIndexes(es); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark(3); err != nil {
		t.Fatal(err)
	}

	if err := s.ResetIndexes(); err != nil {
		t.Fatal(err)
	}
	check := func(s *store.Store) {
		t.Helper()
		for _, e := range es {
			mustLookupEvent(t, s, e.Source, e.EventID, 0, false)
			mustLookupLeaf(t, s, e.LeafHash, 0, false)
		}
		mustWatermark(t, s, 0)
		for _, p := range ps {
			mustGet(t, s, p.Digest, p.Salt, p.Data)
		}
	}
	check(s)
	// Indexes can be rebuilt after a reset.
	if err := s.PutIndexes(es[:1]); err != nil {
		t.Fatal(err)
	}
	mustLookupEvent(t, s, "src/a", "e1", 0, true)
	if err := s.ResetIndexes(); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	// The reset survives a reopen.
	s = open(t, dir)
	defer closeStore(t, s)
	check(s)
}

func TestSurvivesCloseAndOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	p := store.Payload{Digest: digest("durable"), Salt: salt(8), Data: []byte("durable payload")}
	if err := s.PutPayloads([]store.Payload{p}); err != nil {
		t.Fatal(err)
	}
	e := store.Indexed{Source: "src/a", EventID: "e1", LeafHash: digest("leaf"), Index: 41}
	if err := s.PutIndexes([]store.Indexed{e}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark(42); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	for range 2 {
		s = open(t, dir)
		mustGet(t, s, p.Digest, p.Salt, p.Data)
		mustLookupEvent(t, s, e.Source, e.EventID, e.Index, true)
		mustLookupLeaf(t, s, e.LeafHash, e.Index, true)
		mustWatermark(t, s, 42)
		closeStore(t, s)
	}
}

func TestOpenTwiceFails(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer closeStore(t, s)
	s2, err := store.Open(dir, store.Options{})
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of a store in use succeeded")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "another stele-server") {
		t.Errorf("error %q does not name the directory and the likely cause", err)
	}
}

func TestOpenOnAFileFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(f, store.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open on a regular file succeeded")
	}
}

func TestInMemory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mem")
	s, err := store.Open(dir, store.Options{InMemory: true, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p := store.Payload{Digest: digest("m"), Salt: salt(1), Data: []byte("in memory")}
	if err := s.PutPayloads([]store.Payload{p}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, p.Digest, p.Salt, p.Data)
	closeStore(t, s)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an in-memory store touched the disk at %s: %v", dir, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	const workers, per = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				n := uint64(w*per + i)
				id := fmt.Sprint(n)
				if err := s.PutPayloads([]store.Payload{{Digest: digest(id), Salt: salt(byte(w)), Data: []byte(id)}}); err != nil {
					errs <- err
					return
				}
				if err := s.PutIndexes([]store.Indexed{{Source: "src", EventID: id, LeafHash: digest("leaf" + id), Index: n}}); err != nil {
					errs <- err
					return
				}
				got, ok, err := s.LookupEvent("src", id)
				if err != nil || !ok || got != n {
					errs <- fmt.Errorf("LookupEvent(%s) = %d, %v, %v", id, got, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for n := range uint64(workers * per) {
		id := fmt.Sprint(n)
		mustGet(t, s, digest(id), salt(byte(n/per)), []byte(id))
		mustLookupLeaf(t, s, digest("leaf"+id), n, true)
	}
}

// TestAdmissionOrderLayout: payloads stored with their admission time read
// back by it, survive a restart, and are not found under another time;
// payloads a store wrote by digest alone (before this layout) are found by
// a reference that carries a time, and erased through it.
func TestAdmissionOrderLayout(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var ps []store.Payload
	for i := range 200 {
		// Out of order within a batch, as concurrent admissions commit.
		at := base.Add(time.Duration((i*7919)%200) * time.Microsecond)
		ps = append(ps, store.Payload{Digest: digest(fmt.Sprint("ordered", i)), Admitted: at, Salt: salt(byte(i)), Data: []byte(fmt.Sprint("payload ", i))})
	}
	if err := s.PutPayloads(ps); err != nil {
		t.Fatal(err)
	}
	old := store.Payload{Digest: digest("old"), Salt: salt(3), Data: []byte("written by digest alone")}
	if err := s.PutPayloads([]store.Payload{old}); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = open(t, dir)
	defer closeStore(t, s)
	for _, p := range ps {
		mustGetRef(t, s, p.Ref(), p.Salt, p.Data)
		if _, _, err := s.GetPayload(store.Ref{Digest: p.Digest, Admitted: p.Admitted.Add(time.Nanosecond)}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("payload found under another admission time: %v", err)
		}
		if _, _, err := s.GetPayload(ref(p.Digest)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("payload stored with a time found by digest alone: %v", err)
		}
	}
	oldRef := store.Ref{Digest: old.Digest, Admitted: base}
	mustGetRef(t, s, oldRef, old.Salt, old.Data)
	if _, already, err := s.ErasePayload(context.Background(), oldRef, []byte("tomb")); err != nil || already {
		t.Fatalf("erasing a payload stored by digest alone: %v %v", already, err)
	}
	for _, r := range []store.Ref{oldRef, ref(old.Digest)} {
		if _, _, err := s.GetPayload(r); !errors.Is(err, store.ErrErased) {
			t.Fatalf("GetPayload(%v) after erasure: %v, want ErrErased", r.Admitted, err)
		}
	}
}

// TestEventElsewhere: the entries holding an event id under other sources,
// never the asking source's own, nor an id that only shares a prefix.
func TestEventElsewhere(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	es := []store.Indexed{
		{Source: "entra/t1/audit", EventID: "e1", LeafHash: digest("0"), Index: 0},
		{Source: "entra/t2/audit", EventID: "e1", LeafHash: digest("1"), Index: 1},
		{Source: "entra/t3/audit", EventID: "e1", LeafHash: digest("2"), Index: 2},
		{Source: "entra/t2/audit", EventID: "e10", LeafHash: digest("3"), Index: 3},
		{Source: "entra/t2/audit", EventID: "e", LeafHash: digest("4"), Index: 4},
	}
	if err := s.PutIndexes(es); err != nil {
		t.Fatal(err)
	}
	got, err := s.EventElsewhere("e1", "entra/t2/audit")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Located{{Source: "entra/t1/audit", Index: 0}, {Source: "entra/t3/audit", Index: 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("EventElsewhere(e1) = %v, want %v", got, want)
	}
	for _, id := range []string{"e2", "E1", ""} {
		if got, err := s.EventElsewhere(id, "x/y/z"); err != nil || len(got) != 0 {
			t.Errorf("EventElsewhere(%q) = %v, %v; want none", id, got, err)
		}
	}
	if got, _ := s.EventElsewhere("e10", "entra/t2/audit"); len(got) != 0 {
		t.Errorf("the source's own entry was returned: %v", got)
	}
	// A batch asks in any order, one key twice, and answers each in its
	// place as one lookup would.
	keys := []store.EventKey{
		{Source: "entra/t2/audit", EventID: "e10"},
		{Source: "entra/t1/audit", EventID: "e1"},
		{Source: "x/y/z", EventID: "e2"},
		{Source: "entra/t9/audit", EventID: "e"},
		{Source: "entra/t2/audit", EventID: "e1"},
		{Source: "x/y/z", EventID: strings.Repeat("l", 0x10000)},
		{Source: "entra/t1/audit", EventID: "e1"},
	}
	all, err := s.EventsElsewhere(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(keys) {
		t.Fatalf("EventsElsewhere answered %d keys, want %d", len(all), len(keys))
	}
	for i, k := range keys {
		one, err := s.EventElsewhere(k.EventID, k.Source)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(all[i], one) {
			t.Errorf("EventsElsewhere key %d (%q under %q) = %v, alone %v", i, k.EventID, k.Source, all[i], one)
		}
	}
	wantAll := [][]store.Located{nil, {{Source: "entra/t2/audit", Index: 1}, {Source: "entra/t3/audit", Index: 2}}, nil, {{Source: "entra/t2/audit", Index: 4}}, want, nil, {{Source: "entra/t2/audit", Index: 1}, {Source: "entra/t3/audit", Index: 2}}}
	for i := range wantAll {
		if !slices.Equal(all[i], wantAll[i]) {
			t.Errorf("EventsElsewhere key %d = %v, want %v", i, all[i], wantAll[i])
		}
	}
	if err := s.ResetIndexes(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.EventElsewhere("e1", "entra/t2/audit"); len(got) != 0 {
		t.Errorf("after ResetIndexes: %v", got)
	}
}

// cpuTime is this process's user+system CPU time, which moves less with
// other processes' load than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var indexFill = flag.Int("bench-index-fill", 50000, "BenchmarkDedupIndex: entries in the index before the measured ones")

// BenchmarkDedupIndex measures what admission does to the dedup index per
// event — one lookup of a new (absent) key, then its PutIndexes — with
// event ids that sort in admission order ("s0-1234", as stele-bench's) and
// random ones (GUIDs, as Entra, Okta and CloudTrail ids are), on a store
// already holding -bench-index-fill entries (docs/decisions.md, "The dedup
// key stays (source, event_id)", for the hashed key it was compared with):
// go test ./internal/store -run '^$' -bench DedupIndex -benchtime 20000x
func BenchmarkDedupIndex(b *testing.B) {
	for _, ids := range []string{"ordered", "guid"} {
		b.Run(ids, func(b *testing.B) {
			s, err := store.Open(b.TempDir(), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			id := func(i int) string {
				if ids == "ordered" {
					return fmt.Sprintf("s0-%d", i)
				}
				h := sha256.Sum256(fmt.Appendf(nil, "%d", i))
				return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
			}
			const batch = 250
			n := 0
			put := func(count int) {
				for count > 0 {
					es := make([]store.Indexed, 0, batch)
					for range min(batch, count) {
						e := store.Indexed{Source: "entra/bench/audit", EventID: id(n), LeafHash: sha256.Sum256(fmt.Appendf(nil, "l%d", n)), Index: uint64(n)}
						if _, ok, err := s.LookupEvent(e.Source, e.EventID); err != nil || ok {
							b.Fatal(ok, err)
						}
						es = append(es, e)
						n++
					}
					if err := s.PutIndexes(es); err != nil {
						b.Fatal(err)
					}
					count -= len(es)
				}
			}
			put(*indexFill)
			b.ResetTimer()
			cpu0 := cpuTime()
			put(b.N)
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestIndexVersion1Migrates: a store written by index version 1 — dedup
// entries under 'd' only (written before the event-id keys existed) and
// under both — is migrated on Open: every entry is found by LookupEvent
// and EventsElsewhere, the 'd' keys are gone, and opening again changes
// nothing. A read-only Open cannot migrate and still finds every entry.
func TestIndexVersion1Migrates(t *testing.T) {
	dir := t.TempDir()
	old := []store.Indexed{
		{Source: "entra/t1/audit", EventID: "old-1", LeafHash: digest("o1"), Index: 0},
		{Source: "entra/t2/audit", EventID: "old-1", LeafHash: digest("o2"), Index: 1},
	}
	both := []store.Indexed{
		{Source: "entra/t1/audit", EventID: "new-1", LeafHash: digest("n1"), Index: 2},
		{Source: "okta/o1/system", EventID: "new-2", LeafHash: digest("n2"), Index: 3},
	}
	s := open(t, dir)
	if err := store.PutVersion1Indexes(s, old, false); err != nil {
		t.Fatal(err)
	}
	if err := store.PutVersion1Indexes(s, both, true); err != nil {
		t.Fatal(err)
	}
	if err := store.SetVersion1Watermark(s, 4); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)

	check := func(s *store.Store, what string) {
		t.Helper()
		for _, e := range append(slices.Clone(old), both...) {
			idx, ok, err := s.LookupEvent(e.Source, e.EventID)
			if err != nil || !ok || idx != e.Index {
				t.Errorf("%s: LookupEvent(%s, %s) = %d %v %v, want %d", what, e.Source, e.EventID, idx, ok, err, e.Index)
			}
			if idx, ok, err := s.LookupLeafHash(e.LeafHash); err != nil || !ok || idx != e.Index {
				t.Errorf("%s: LookupLeafHash(entry %d) = %d %v %v", what, e.Index, idx, ok, err)
			}
		}
		if _, ok, _ := s.LookupEvent("entra/t3/audit", "old-1"); ok {
			t.Errorf("%s: an event id under a source that never held it was found", what)
		}
		if w, err := s.Watermark(); err != nil || w != 4 {
			t.Errorf("%s: watermark %d %v, want 4", what, w, err)
		}
	}

	ro, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check(ro, "read-only, not migrated")
	if n, err := store.IndexKeys(ro, 'd'); err != nil || n != 4 {
		t.Errorf("read-only Open touched the 'd' keys: %d left, %v", n, err)
	}
	closeStore(t, ro)

	for round := range 2 {
		s := open(t, dir)
		check(s, fmt.Sprintf("migrated, open %d", round+1))
		got, err := s.EventsElsewhere([]store.EventKey{{Source: "entra/t1/audit", EventID: "old-1"}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []store.Located{{Source: "entra/t2/audit", Index: 1}}; !slices.Equal(got[0], want) {
			t.Errorf("EventsElsewhere(old-1) after migration = %v, want %v", got[0], want)
		}
		if n, err := store.IndexKeys(s, 'd'); err != nil || n != 0 {
			t.Errorf("%d 'd' keys left after migration (%v)", n, err)
		}
		if n, err := store.IndexKeys(s, 'e'); err != nil || n != 4 {
			t.Errorf("%d 'e' keys after migration (%v), want 4", n, err)
		}
		// A version 1 binary opened on the migrated store must find no
		// watermark of its own, so that it rebuilds its 'd' keys from the
		// log instead of admitting duplicates of what they no longer hold.
		if ok, err := store.HasVersion1Watermark(s); err != nil || ok {
			t.Errorf("version 1's watermark key is still there after migration (%v)", err)
		}
		closeStore(t, s)
	}

	// A downgrade and back: a version 1 binary finds no watermark of its
	// own, rebuilds its keys from the log and admits one more entry; this
	// version, opened again, migrates what it wrote.
	s = open(t, dir)
	later := store.Indexed{Source: "entra/t1/audit", EventID: "during-downgrade", LeafHash: digest("d1"), Index: 4}
	if err := store.PutAsVersion1Binary(s, append(append(slices.Clone(old), both...), later)); err != nil {
		t.Fatal(err)
	}
	if err := store.SetVersion1Watermark(s, 5); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = open(t, dir)
	if idx, ok, err := s.LookupEvent(later.Source, later.EventID); err != nil || !ok || idx != later.Index {
		t.Errorf("an entry a version 1 binary indexed is not found after coming back: %d %v %v", idx, ok, err)
	}
	if w, err := s.Watermark(); err != nil || w != 5 {
		t.Errorf("watermark after coming back %d %v, want 5 (version 1's)", w, err)
	}
	if n, err := store.IndexKeys(s, 'd'); err != nil || n != 0 {
		t.Errorf("%d 'd' keys left after coming back (%v)", n, err)
	}
	closeStore(t, s)
}

// TestPutIndexesKeys: each entry costs two index keys, its dedup key and
// its leaf hash.
func TestPutIndexesKeys(t *testing.T) {
	s := open(t, t.TempDir())
	defer closeStore(t, s)
	es := []store.Indexed{
		{Source: "entra/t1/audit", EventID: "a", LeafHash: digest("a"), Index: 0},
		{Source: "entra/t1/audit", EventID: "b", LeafHash: digest("b"), Index: 1},
	}
	if err := s.PutIndexes(es); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[byte]int{'d': 0, 'e': 2, 'h': 2} {
		if n, err := store.IndexKeys(s, p); err != nil || n != want {
			t.Errorf("%d %q keys (%v), want %d", n, p, err, want)
		}
	}
}
