package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/leaf"
)

// exampleKey is a fixed log key, so that the examples' output is stable.
func exampleKey() (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(&detReader{b: 7}, "example.com/stele")
	if err != nil {
		panic(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v
}

func exampleLeaf(id string) []byte {
	l := &leaf.Leaf{Source: "entra/t1/audit", EventID: id, Kind: "directory.role.member.add",
		EventTime: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), AdmittedTime: time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)}
	b, err := l.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// exampleReceipt makes the receipt a Stele server would hand out for the
// second entry of a two-entry log: a C2SP tlog-proof with the leaf as its
// extra data.
func exampleReceipt(signer note.Signer) []byte {
	l0, l1 := exampleLeaf("e0"), exampleLeaf("e1")
	h0, h1 := rfc6962.DefaultHasher.HashLeaf(l0), rfc6962.DefaultHasher.HashLeaf(l1)
	root := rfc6962.DefaultHasher.HashChildren(h0, h1)
	cp, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: "example.com/stele", Size: 2, Hash: root}.Marshal())}, signer)
	if err != nil {
		panic(err)
	}
	return (&proof.TLogProof{Index: 1, Hashes: [][32]byte{[32]byte(h0)}, Checkpoint: cp, ExtraData: l1}).Marshal()
}

// A receipt proves an event is in the log. It verifies offline, with
// nothing but the log's verifier key.
func ExampleVerifyReceipt() {
	signer, verifier := exampleKey()
	receipt := exampleReceipt(signer) // as written by `stele receipt`

	r, err := client.VerifyReceipt(receipt, verifier)
	if err != nil {
		fmt.Println("receipt does not verify:", err)
		return
	}
	fmt.Printf("entry %d of %s (size %d): %s %s from %s\n", r.Index, r.Checkpoint.Origin, r.Checkpoint.Size,
		r.Leaf.Kind, r.Leaf.EventID, r.Leaf.Source)

	// One changed byte anywhere and it no longer verifies.
	receipt[len(receipt)-200] ^= 1
	_, err = client.VerifyReceipt(receipt, verifier)
	fmt.Println("tampered receipt verifies:", err == nil)
	// Output:
	// entry 1 of example.com/stele (size 2): directory.role.member.add e1 from entra/t1/audit
	// tampered receipt verifies: false
}

// exampleAppend appends entries to the Tessera POSIX log in dir and waits
// for a checkpoint that covers them (what stele-server does for real).
func exampleAppend(dir string, signer note.Signer, entries ...[]byte) {
	ctx := context.Background()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		panic(err)
	}
	a, shutdown, _, err := tessera.NewAppender(ctx, d, tessera.NewAppendOptions().WithCheckpointSigner(signer).
		WithCheckpointInterval(100*time.Millisecond).WithBatching(64, 10*time.Millisecond))
	if err != nil {
		panic(err)
	}
	var last tessera.IndexFuture
	for _, e := range entries {
		last = a.Add(ctx, tessera.NewEntry(e))
	}
	idx, err := last()
	if err != nil {
		panic(err)
	}
	for checkpointSizeIn(dir) <= idx.Index {
		time.Sleep(10 * time.Millisecond)
	}
	if err := shutdown(ctx); err != nil {
		panic(err)
	}
}

// A monitor or auditor keeps the latest checkpoint it verified. Each new
// checkpoint must be proven consistent with it before it replaces it; a
// log that goes back in time, or shows another history, is caught.
func ExampleStateStore() {
	signer, verifier := exampleKey()
	logDir, _ := os.MkdirTemp("", "stele-example-log")
	defer os.RemoveAll(logDir)
	stateDir, _ := os.MkdirTemp("", "stele-example-state")
	defer os.RemoveAll(stateDir)
	srv := httptest.NewServer(tiles.NewHandler(tiles.DirReader(logDir)))
	defer srv.Close()
	ctx := context.Background()

	// The log's public tlog-tiles API: no credentials needed.
	lg, err := client.NewTileLog(srv.URL, verifier, nil)
	if err != nil {
		panic(err)
	}
	state, err := client.NewStateStore(stateDir, verifier, lg.ConsistencyProof)
	if err != nil {
		panic(err)
	}

	exampleAppend(logDir, signer, exampleLeaf("e0"), exampleLeaf("e1"))
	first, err := lg.Checkpoint(ctx) // signature verified
	if err != nil {
		panic(err)
	}
	if _, err := state.Update(ctx, first); err != nil {
		panic(err)
	}

	exampleAppend(logDir, signer, exampleLeaf("e2"), exampleLeaf("e3"), exampleLeaf("e4"))
	latest, err := lg.Checkpoint(ctx)
	if err != nil {
		panic(err)
	}
	prev, err := state.Update(ctx, latest) // proves 2 -> 5 consistent
	if err != nil {
		panic(err)
	}
	fmt.Printf("trusted size %d -> %d\n", prev.Size, latest.Size)

	// Someone replays the old checkpoint.
	_, err = state.Update(ctx, first)
	var rollback *client.RollbackError
	fmt.Println("rollback detected:", errors.As(err, &rollback), rollback.SeenSize, "<", rollback.TrustedSize)
	trusted, _ := state.Trusted()
	fmt.Println("still trusted:", trusted.Size)
	// Output:
	// trusted size 2 -> 5
	// rollback detected: true 2 < 5
	// still trusted: 5
}
