package mysqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/awstest"
	"github.com/stele-dev/stele/internal/mysqlstore"
	"github.com/stele-dev/stele/internal/store"
)

func open(t *testing.T, dsn string, lease time.Duration) *mysqlstore.Store {
	t.Helper()
	s, err := mysqlstore.Open(context.Background(), dsn, mysqlstore.Options{ClaimLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func noNext(context.Context) (uint64, error) { return 0, errors.New("nextIndex must not be called") }

func TestPayloadsAndErasure(t *testing.T) {
	env := awstest.New(t)
	s := open(t, env.DSN, 0)
	var ps []store.Payload
	for i := range 50 {
		p := store.Payload{Salt: bytes.Repeat([]byte{byte(i)}, 32), Data: bytes.Repeat([]byte{'x', byte(i)}, 100_000)}
		p.Digest[0], p.Digest[1] = byte(i), 7
		ps = append(ps, p)
	}
	// 50 payloads of 200 kB: more than one statement's worth.
	if err := s.PutPayloads(ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		salt, data, err := s.GetPayload(store.Ref{Digest: p.Digest})
		if err != nil || !bytes.Equal(salt, p.Salt) || !bytes.Equal(data, p.Data) {
			t.Fatalf("payload %x: %v", p.Digest[:2], err)
		}
	}
	if _, _, err := s.GetPayload(store.Ref{Digest: [32]byte{9, 9}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("absent payload: %v", err)
	}
	if err := s.PutPayloads([]store.Payload{{Salt: []byte{1}}}); err == nil {
		t.Fatal("a short salt was accepted")
	}
	d := ps[3].Digest
	if _, err := s.Tombstone(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tombstone before erasure: %v", err)
	}
	got, already, err := s.ErasePayload(context.Background(), store.Ref{Digest: d}, []byte(`{"index":3}`))
	if err != nil || already || string(got) != `{"index":3}` {
		t.Fatalf("erase: %q %v %v", got, already, err)
	}
	if _, _, err := s.GetPayload(store.Ref{Digest: d}); !errors.Is(err, store.ErrErased) {
		t.Fatalf("erased payload: %v", err)
	}
	got, already, err = s.ErasePayload(context.Background(), store.Ref{Digest: d}, []byte(`{"index":"other"}`))
	if err != nil || !already || string(got) != `{"index":3}` {
		t.Fatalf("second erase: %q %v %v", got, already, err)
	}
	// The bytes are gone from the row, not just hidden.
	db, err := sql.Open("mysql", env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM stele_payloads WHERE digest = ? AND (data IS NOT NULL OR salt IS NOT NULL)`, d[:]).Scan(&n); err != nil || n != 0 {
		t.Fatalf("erased row still holds data: %d %v", n, err)
	}
}

func TestSchemaVersion(t *testing.T) {
	env := awstest.New(t)
	open(t, env.DSN, 0)
	open(t, env.DSN, 0) // a second open migrates nothing and works
	db, err := sql.Open("mysql", env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT version FROM stele_schema_version WHERE id = 0`).Scan(&v); err != nil || v != mysqlstore.SchemaVersion {
		t.Fatalf("schema version %d %v", v, err)
	}
	if _, err := db.Exec(`UPDATE stele_schema_version SET version = ? WHERE id = 0`, mysqlstore.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err = mysqlstore.Open(context.Background(), env.DSN, mysqlstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "upgrade stele-server") {
		t.Fatalf("a newer schema was accepted: %v", err)
	}
	if _, err := mysqlstore.Open(context.Background(), "stele:x@tcp(127.0.0.1:1)/", mysqlstore.Options{}); err == nil || !strings.Contains(err.Error(), "names no database") {
		t.Fatalf("DSN without database: %v", err)
	}
}

func TestLogKeyBinding(t *testing.T) {
	env := awstest.New(t)
	s := open(t, env.DSN, 0)
	if err := s.BindLogKey(context.Background(), "log+1+A"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindLogKey(context.Background(), "log+1+A"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindLogKey(context.Background(), "log+2+B"); err == nil || !strings.Contains(err.Error(), "same log.key") {
		t.Fatalf("another key was accepted: %v", err)
	}
}

// TestClaimsRace has several "replicas" (stores on one database) claim the
// same keys at once: each key is claimed by exactly one.
func TestClaimsRace(t *testing.T) {
	env := awstest.New(t)
	stores := []*mysqlstore.Store{open(t, env.DSN, time.Minute), open(t, env.DSN, time.Minute), open(t, env.DSN, time.Minute)}
	keys := make([]mysqlstore.Key, 200)
	for i := range keys {
		keys[i] = mysqlstore.Key{Source: "entra/t/audit", EventID: fmt.Sprintf("ev-%d", i)}
	}
	won := make([]atomic.Int32, len(keys))
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for i, r := range s.NewClaims().Claim(ctx, keys, noNext) {
				switch {
				case errors.Is(r.Err, mysqlstore.ErrBusy):
				case r.Err != nil:
					t.Error(r.Err)
				case r.Admitted:
					t.Errorf("key %d admitted though nothing was indexed", i)
				default:
					won[i].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range won {
		if n := won[i].Load(); n != 1 {
			t.Fatalf("key %d claimed %d times", i, n)
		}
	}
	// Once indexed, every claimer learns the index.
	var es []store.Indexed
	for i, k := range keys {
		es = append(es, store.Indexed{Source: k.Source, EventID: k.EventID, LeafHash: [32]byte{byte(i), byte(i >> 8)}, Index: uint64(1000 + i)})
	}
	if err := stores[0].PutIndexes(es); err != nil {
		t.Fatal(err)
	}
	for i, r := range stores[1].NewClaims().Claim(context.Background(), keys, noNext) {
		if r.Err != nil || !r.Admitted || r.Index != uint64(1000+i) {
			t.Fatalf("key %d after indexing: %+v", i, r)
		}
	}
	// The first index stays: a later copy does not move it.
	es[0].Index = 5000
	if err := stores[0].PutIndexes(es[:1]); err != nil {
		t.Fatal(err)
	}
	if idx, ok, err := stores[2].LookupEvent(keys[0].Source, keys[0].EventID); err != nil || !ok || idx != 1000 {
		t.Fatalf("LookupEvent after a second copy: %d %v %v", idx, ok, err)
	}
	if idx, ok, err := stores[2].LookupLeafHash([32]byte{1, 0}); err != nil || !ok || idx != 1001 {
		t.Fatalf("LookupLeafHash: %d %v %v", idx, ok, err)
	}
}

// TestStaleClaim: a claim whose replica died is taken over after its lease,
// but only once the indexes cover every index its replica could have used;
// if its leaf did reach the log, the claim resolves to that index instead.
func TestStaleClaim(t *testing.T) {
	env := awstest.New(t)
	const lease = 300 * time.Millisecond
	dead, live := open(t, env.DSN, lease), open(t, env.DSN, lease)
	k := []mysqlstore.Key{{Source: "s", EventID: "never-sequenced"}, {Source: "s", EventID: "sequenced"}}
	if r := dead.NewClaims().Claim(context.Background(), k, noNext); r[0].Err != nil || r[0].Admitted || r[1].Err != nil {
		t.Fatalf("first claim: %+v", r)
	}
	// Within the lease, another replica waits and gives up with ErrBusy.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	r := live.NewClaims().Claim(ctx, k[:1], noNext)
	cancel()
	if !errors.Is(r[0].Err, mysqlstore.ErrBusy) {
		t.Fatalf("claim within the lease: %+v", r[0])
	}
	// Past the lease the log's next index is 10 and the watermark 0: the
	// takeover waits for the followers to index up to 10.
	next := func(context.Context) (uint64, error) { return 10, nil }
	done := make(chan []mysqlstore.ClaimResult)
	go func() { done <- live.NewClaims().Claim(context.Background(), k, next) }()
	time.Sleep(2 * lease)
	select {
	case r := <-done:
		t.Fatalf("took over before the watermark covered the log: %+v", r)
	default:
	}
	// A follower finds the dead replica's "sequenced" leaf at 7 and moves the
	// watermark.
	if err := live.PutIndexes([]store.Indexed{{Source: "s", EventID: "sequenced", Index: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := live.SetWatermark(10); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r[0].Err != nil || r[0].Admitted {
			t.Fatalf("never-sequenced: %+v, want taken over", r[0])
		}
		if r[1].Err != nil || !r[1].Admitted || r[1].Index != 7 {
			t.Fatalf("sequenced: %+v, want admitted at 7", r[1])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stale claim not taken over")
	}
	// The watermark never goes back.
	if err := live.SetWatermark(3); err != nil {
		t.Fatal(err)
	}
	if w, err := live.Watermark(); err != nil || w != 10 {
		t.Fatalf("watermark %d %v", w, err)
	}
	// A released claim is free at once.
	c := live.NewClaims()
	k2 := []mysqlstore.Key{{Source: "s", EventID: "released"}}
	c.Claim(context.Background(), k2, noNext)
	if err := c.Release(k2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if r := dead.NewClaims().Claim(ctx, k2, noNext); r[0].Err != nil || r[0].Admitted {
		t.Fatalf("claim after release: %+v", r[0])
	}
}

// TestEventElsewhere: the indexed entries holding an event id under other
// sources, as the posix store answers (internal/store TestEventElsewhere).
func TestEventElsewhere(t *testing.T) {
	env := awstest.New(t)
	s := open(t, env.DSN, 0)
	es := []store.Indexed{
		{Source: "entra/t1/audit", EventID: "e1", Index: 0},
		{Source: "entra/t2/audit", EventID: "e1", Index: 1},
		{Source: "entra/t3/audit", EventID: "e1", Index: 2},
		{Source: "entra/t2/audit", EventID: "e10", Index: 3},
	}
	for i := range es {
		es[i].LeafHash[0] = byte(i + 1)
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
	if got, err := s.EventElsewhere("e10", "entra/t2/audit"); err != nil || len(got) != 0 {
		t.Errorf("the source's own entry: %v %v", got, err)
	}
	if got, err := s.EventElsewhere("e2", "x"); err != nil || len(got) != 0 {
		t.Errorf("an unknown id: %v %v", got, err)
	}
}
