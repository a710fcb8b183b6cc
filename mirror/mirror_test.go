package mirror_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/mirror"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newMirror(t *testing.T, lg *client.TileLog, dir string) *mirror.Mirror {
	t.Helper()
	m, err := mirror.New(ctxFor(t), mirror.Config{Log: lg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestMirrorLiveLog mirrors a log while events are appended, across full
// and partial tiles, and checks the copy byte for byte, with stele audit
// and with Tessera's own client over the copy served by internal/tiles.
func TestMirrorLiveLog(t *testing.T) {
	ctx := ctxFor(t)
	src := startSource(t)
	lg := src.tileLog(t)
	dir := t.TempDir()
	m := newMirror(t, lg, dir)

	// An empty log mirrors to its size-0 checkpoint.
	if cp, err := m.Sync(ctx); err != nil || cp.Size != 0 {
		t.Fatalf("empty log: %v %v", cp, err)
	}
	sizes := map[uint64]bool{}
	var first []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, n := range []int{5, 120, 200, 3, 256, 100, 47} { // 731 entries: 2 full tiles, then partial
			src.submit(t, n)
		}
	}()
	for caughtUp := false; !caughtUp; {
		select {
		case <-done:
			caughtUp = true
		case <-time.After(30 * time.Millisecond):
		}
		cp, err := m.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size > 0 {
			if first == nil {
				first = cp.Raw
			}
			sizes[cp.Size] = true
			// Mid-way too, the copy is exactly the source for its checkpoint.
			sameFiles(t, src.logDir(), dir, cp.Size)
		}
	}
	cp, err := m.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 731 {
		t.Fatalf("mirrored size %d, want 731", cp.Size)
	}
	srcCP, _ := os.ReadFile(filepath.Join(src.logDir(), "checkpoint"))
	localCP, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if !bytes.Equal(srcCP, localCP) {
		t.Fatalf("checkpoint differs:\n%s\n%s", srcCP, localCP)
	}
	n := sameFiles(t, src.logDir(), dir, cp.Size)
	t.Logf("mirrored %d distinct sizes, %d files at size %d", len(sizes), n, cp.Size)
	if len(sizes) < 3 {
		t.Fatalf("only %d sizes mirrored while the log grew", len(sizes))
	}
	if fi, err := os.Stat(filepath.Join(dir, "tile", "entries")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("tile/entries: %v %v, want a 0755 directory", fi.Mode(), err)
	}
	// Nothing but tlog-tiles files is in the copy.
	for p := range listFiles(t, dir) {
		if p != "checkpoint" && !strings.HasPrefix(p, "tile/") || strings.HasSuffix(p, ".tmp") {
			t.Fatalf("stray file %s in the copy", p)
		}
	}

	srv := httptest.NewServer(tiles.NewHandler(tiles.DirReader(dir)))
	defer srv.Close()

	// stele audit over the copy.
	v, err := logkey.ReadVerifier(src.keyPath())
	if err != nil {
		t.Fatal(err)
	}
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: srv.URL + "/", Verifier: v})
	if err != nil || !rep.Verified || rep.EntriesRead != 731 {
		t.Fatalf("audit of the copy: %v, verified %v, %d entries", err, rep.Verified, rep.EntriesRead)
	}

	// Tessera's client over the copy: the tracker proves the first mirrored
	// checkpoint consistent with the last, and every entry is included.
	u, _ := url.Parse(srv.URL + "/")
	f, err := tclient.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	lst, err := tclient.NewLogStateTracker(ctx, f.ReadTile, first, v, v.Name(), tclient.UnilateralConsensus(f.ReadCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := lst.Update(ctx); err != nil {
		t.Fatalf("tessera tracker over the copy: %v", err)
	}
	if got := lst.Latest(); got.Size != 731 || !bytes.Equal(got.Hash, cp.Root[:]) {
		t.Fatalf("tessera tracker sees size %d root %x", got.Size, got.Hash)
	}
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for bi := uint64(0); bi*layout.EntryBundleWidth < cp.Size; bi++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range b.Entries {
			idx := bi*layout.EntryBundleWidth + uint64(i)
			p, err := pb.InclusionProof(ctx, idx)
			if err != nil {
				t.Fatal(err)
			}
			if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, rfc6962.DefaultHasher.HashLeaf(e), p, cp.Root[:]); err != nil {
				t.Fatalf("entry %d: %v", idx, err)
			}
		}
	}

	// The directory is locked while a Mirror has it open.
	if _, err := mirror.New(ctx, mirror.Config{Log: lg, Dir: dir}); err == nil || !strings.Contains(err.Error(), "another stele mirror is writing") {
		t.Fatalf("a second Mirror on the same directory: %v", err)
	}
	m.Close()
	// A new Mirror on the same directory resumes from it.
	m2 := newMirror(t, lg, dir)
	if m2.Checkpoint() == nil || m2.Checkpoint().Size != 731 {
		t.Fatalf("resumed at %v", m2.Checkpoint())
	}
}

// tamperedCase checks that Sync fails with a verification error naming
// want, and that the directory is exactly as before.
func refused(t *testing.T, m *mirror.Mirror, dir, want string) {
	t.Helper()
	defer m.Close()
	before := listFiles(t, dir)
	_, err := m.Sync(ctxFor(t))
	if err == nil || !errors.Is(err, mirror.ErrVerification) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Sync: %v, want a verification error with %q", err, want)
	}
	t.Logf("refused: %v", err)
	after := listFiles(t, dir)
	if len(after) != len(before) {
		t.Fatalf("the refused sync changed the copy: %d files before, %d after", len(before), len(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Fatalf("the refused sync changed %s", p)
		}
	}
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// forgingProxy serves the source, except for its checkpoint, which is cp.
func forgingProxy(t *testing.T, src *source, cp func() []byte) *client.TileLog {
	t.Helper()
	u, _ := url.Parse(src.url())
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			w.Write(cp())
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	v, _ := logkey.ReadVerifier(src.keyPath())
	lg, err := client.NewTileLog(srv.URL+"/", v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

func signCheckpoint(t *testing.T, signer note.Signer, size uint64, root []byte) []byte {
	t.Helper()
	body := log.Checkpoint{Origin: signer.Name(), Size: size, Hash: root}.Marshal()
	raw, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestMirrorRefusesTamperedSource shows the mirror a checkpoint signed by
// another key, checkpoints inconsistent with the one it holds, an altered
// tile and an altered entry bundle: each is refused with a verification
// error, and nothing of it is written.
func TestMirrorRefusesTamperedSource(t *testing.T) {
	ctx := ctxFor(t)
	src := startSource(t)
	src.submit(t, 300)
	lg := src.tileLog(t)
	key, err := logkey.Load(filepath.Join(src.Dir, logkey.PrivateFile), "")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("other key", func(t *testing.T) {
		skey, vkey, err := note.GenerateKey(rand.Reader, key.Signer.Name())
		if err != nil {
			t.Fatal(err)
		}
		_ = skey
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		other, err := client.NewTileLog(src.url(), v, nil)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		refused(t, newMirror(t, other, dir), dir, "no verifiable signatures")
		if len(listFiles(t, dir)) != 0 {
			t.Fatal("files written")
		}
	})

	dir := t.TempDir()
	m := newMirror(t, lg, dir)
	good, err := m.Sync(ctx)
	if err != nil || good.Size != 300 {
		t.Fatalf("%v %v", good, err)
	}
	m.Close()

	t.Run("same size, other root", func(t *testing.T) {
		forged := signCheckpoint(t, key.Signer, 300, bytes.Repeat([]byte{7}, 32))
		refused(t, newMirror(t, forgingProxy(t, src, func() []byte { return forged }), dir), dir, "fork")
	})
	t.Run("rollback", func(t *testing.T) {
		real, _ := lg.RootAt(ctx, 200)
		forged := signCheckpoint(t, key.Signer, 200, real[:])
		refused(t, newMirror(t, forgingProxy(t, src, func() []byte { return forged }), dir), dir, "rollback")
	})

	src.submit(t, 300) // 600: completes tile 0/001 and bundle 001
	t.Run("larger, inconsistent", func(t *testing.T) {
		forged := signCheckpoint(t, key.Signer, 600, bytes.Repeat([]byte{9}, 32))
		refused(t, newMirror(t, forgingProxy(t, src, func() []byte { return forged }), dir), dir, "consistency proof does not verify")
	})
	t.Run("altered entry bundle", func(t *testing.T) {
		p := filepath.Join(src.logDir(), filepath.FromSlash(layout.EntriesPath(2, layout.PartialTileSize(0, 2, 600))))
		flipByte(t, p, 10) // inside the first entry, past its length prefix
		defer flipByte(t, p, 10)
		refused(t, newMirror(t, lg, dir), dir, "root computed from the source's entry bundles")
	})
	t.Run("altered tile", func(t *testing.T) {
		// A fresh mirror needs no consistency proof, so it is the tile
		// check itself that catches the change.
		fresh := t.TempDir()
		p := filepath.Join(src.logDir(), filepath.FromSlash(layout.TilePath(0, 1, 0)))
		flipByte(t, p, 100)
		defer flipByte(t, p, 100)
		refused(t, newMirror(t, lg, fresh), fresh, "source tile/0/001 does not match the hashes of the entries it covers")
		// And the mirror at 300 is refused too (its consistency proof reads the tile).
		refused(t, newMirror(t, lg, dir), dir, "fork")
	})
	// Untampered again, the mirror catches up.
	m = newMirror(t, lg, dir)
	cp, err := m.Sync(ctx)
	if err != nil || cp.Size != 600 {
		t.Fatalf("%v %v", cp, err)
	}
	m.Close()
	sameFiles(t, src.logDir(), dir, 600)

	t.Run("altered local copy", func(t *testing.T) {
		flipByte(t, filepath.Join(dir, filepath.FromSlash(layout.TilePath(0, 0, 0))), 5)
		_, err := mirror.New(ctx, mirror.Config{Log: lg, Dir: dir})
		if err == nil || !errors.Is(err, mirror.ErrVerification) {
			t.Fatalf("New over an altered copy: %v", err)
		}
		t.Logf("refused: %v", err)
	})
	_ = fmt.Sprint
}
