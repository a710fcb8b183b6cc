package server_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/awstest"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/tiles"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
	awsbackend "github.com/stele-dev/stele/server/backend/aws"
)

// TestMigratePOSIXToAWS migrates a posix log (with an erased entry) to the
// aws backend, checks that the migrated tree has the source's root at every
// size (a consistency proof from the aws tiles to the source's root at each
// size), that payloads, tombstones and dedup came along, and that the
// server appends on.
func TestMigratePOSIXToAWS(t *testing.T) {
	env := awstest.New(t)
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	var evs []*stelev1.Event
	for i := range 600 {
		evs = append(evs, event(fmt.Sprintf("entra/m%d/audit", i%3), fmt.Sprintf("m-%d", i), 300))
	}
	for i := 0; i < len(evs); i += 200 {
		mustAppend(t, ts.cli, evs[i:i+200])
	}
	ctx := ctxT(t, 3*time.Minute)
	if _, err := ts.cli.Erase(ctx, 5, "GDPR Art. 17", "REQ-MIG"); err != nil {
		t.Fatal(err)
	}
	ts.stop(t)

	dst := awsConfig(env).Backend.(*awsbackend.Backend)
	opts := awsbackend.MigrateOptions{SrcDir: dir, Workers: 4, Logger: quietLogger()}
	n, err := dst.Migrate(ctx, opts)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if n != 601 {
		t.Fatalf("migrated %d entries, want 601", n)
	}
	// Again: resumes, changes nothing.
	if n2, err := dst.Migrate(ctx, opts); err != nil || n2 != n {
		t.Fatalf("second migrate: %d %v", n2, err)
	}

	// The source's root at every size, from its own entry bundles.
	src := tiles.DirReader(filepath.Join(dir, "log"))
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	roots := [][]byte{nil}
	var leaves [][]byte
	for bi := uint64(0); bi*layout.EntryBundleWidth < n; bi++ {
		raw, err := src.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, n))
		if err != nil {
			t.Fatal(err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			r.Append(rfc6962.DefaultHasher.HashLeaf(e), nil)
			root, _ := r.GetRootHash(nil)
			roots = append(roots, root)
			leaves = append(leaves, e)
		}
	}

	cfg2 := awsConfig(env)
	cfg2.LogKeyFile = filepath.Join(dir, logkey.PrivateFile)
	aws := startServer(t, t.TempDir(), cfg2)
	var raw []byte
	for {
		// The first checkpoint on aws comes within a second or two.
		raw, err = aws.cli.Checkpoint(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(raw, ts.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != n || !bytes.Equal(cp.Root[:], roots[n]) {
		t.Fatalf("aws checkpoint %d %x, source %d %x", cp.Size, cp.Root, n, roots[n])
	}
	for size := uint64(1); size < n; size++ {
		c, err := aws.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: size, ToSize: n})
		if err != nil {
			t.Fatal(err)
		}
		if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, size, n, c.Hashes, roots[size], cp.Root[:]); err != nil {
			t.Fatalf("size %d: the migrated tree is not the source's: %v", size, err)
		}
	}
	// Payloads, tombstones and dedup came along; the log goes on.
	if ev, err := aws.cli.Event(ctx, 7); err != nil || !bytes.Equal(ev.Leaf, leaves[7]) || !bytes.Equal(ev.Record, evs[7].Record) {
		t.Fatalf("event 7 after migration: %v", err)
	}
	if ev, err := aws.cli.Event(ctx, 5); err != nil || ev.Tombstone == nil || ev.Tombstone.RequestReference != "REQ-MIG" {
		t.Fatalf("erased event 5 after migration: %+v %v", ev, err)
	}
	rs := mustAppend(t, aws.cli, []*stelev1.Event{evs[42], event("entra/m0/audit", "after-migration", 300)})
	if !rs[0].Duplicate || rs[0].Index != 42 || rs[1].Duplicate || rs[1].Index != n {
		t.Fatalf("after migration: %+v", rs)
	}
	rc, err := aws.cli.Receipt(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.VerifyReceipt(rc, ts.verifier); err != nil {
		t.Fatalf("receipt after migration: %v", err)
	}
}
