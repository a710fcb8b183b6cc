package server_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestSelfCheckRefusesDamagedProofs damages one hash in a full level-0 tile
// of a real stele-server's log (as a bad disk, a bad restore or a tampering
// operator would) and checks that the restarted binary refuses every proof
// the damaged hash would enter — inclusion, receipt, consistency — with
// Internal, counts it in stele_self_check_failures_total and logs an ERROR,
// while proofs that do not touch the damaged hash are still served.
func TestSelfCheckRefusesDamagedProofs(t *testing.T) {
	dir := t.TempDir()
	p := startProcess(t, dir)
	const n = 600 // two full tiles and a partial one
	evs := make([]*stelev1.Event, n)
	for i := range evs {
		evs[i] = event("entra/selfcheck/audit", fmt.Sprintf("sc-%d", i), 300)
	}
	for i := 0; i < n; i += 200 {
		mustAppend(t, p.cli, evs[i:i+200])
	}
	ctx := ctxT(t, time.Minute)
	for {
		cp, err := p.cli.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{})
		if err == nil && cp.Size >= n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no checkpoint covers %d entries: %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Before the damage every proof is served.
	for _, size := range []uint64{0, 300} {
		// At size 300 the partial tiles of that size were replaced by wider
		// ones: the proof is read from the latest tiles.
		if _, err := p.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: 6}, TreeSize: size}); err != nil {
			t.Fatalf("inclusion of 6 at size %d before the damage: %v", size, err)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.logs)
	}

	// Flip one bit of leaf 5's hash in the first level-0 tile.
	tile := filepath.Join(dir, "log", "tile", "0", "000")
	raw, err := os.ReadFile(tile)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 256*32 {
		t.Fatalf("tile 0/000 is %d bytes, want a full tile", len(raw))
	}
	raw[5*32] ^= 1
	if err := os.Chmod(tile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tile, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	p = startProcess(t, dir)
	ctx = ctxT(t, time.Minute)
	refused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "does not verify against the signed checkpoint") {
			t.Fatalf("%s from a damaged tile: got %v, want Internal naming the failed self-check", what, err)
		}
	}
	inclusion := func(idx, size uint64) error {
		_, err := p.cli.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: idx}, TreeSize: size})
		return err
	}
	// Leaf 6's path holds leaf 5's hash; leaf 5's own hash is damaged.
	refused("inclusion of 6", inclusion(6, 0))
	refused("inclusion of 5", inclusion(5, 0))
	// At an older tree size, whose root is derived from the damaged tiles.
	refused("inclusion of 6 at size 300", inclusion(6, 300))
	_, err = p.cli.Log.GetInclusionProofs(ctx, &stelev1.GetInclusionProofsRequest{Indexes: []uint64{300, 6}})
	refused("batched inclusion", err)
	_, err = p.cli.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: 6})
	refused("receipt of 6", err)
	_, err = p.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: 7})
	refused("consistency from 7", err)

	// What the damaged hash does not enter is still served: the second
	// tile's leaves reach the first tile through the level-1 tile, and the
	// root of size 512 is built from the second tile and the level-1 tile.
	if err := inclusion(300, 0); err != nil {
		t.Fatalf("inclusion of 300 does not use the damaged hash, yet: %v", err)
	}
	if _, err := p.cli.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: 512}); err != nil {
		t.Fatalf("consistency from 512 does not use the damaged hash, yet: %v", err)
	}

	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	total := 0
	for _, m := range regexp.MustCompile(`(?m)^stele_self_check_failures_total\{proof="\w+"\} (\d+)$`).FindAllSubmatch(body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		total += v
	}
	if total < 6 {
		t.Fatalf("stele_self_check_failures_total adds up to %d, want at least 6 refusals:\n%s", total, body)
	}
	// The logs are read once the process has exited (its stderr is copied
	// by another goroutine while it runs).
	stopProcess(t, p)
	if !strings.Contains(p.logs.String(), "self-check failed") {
		t.Fatalf("no ERROR log names the failed self-check:\n%s", p.logs)
	}
}
