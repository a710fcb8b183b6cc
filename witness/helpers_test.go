package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/testlog"
)

// testLog is a small in-test RFC 6962 log that signs checkpoints.
type testLog struct {
	origin string
	vkey   string
	signer note.Signer
	tree   *testonly.Tree
	tag    string // makes a fork's entries differ
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	k := testlog.NewKey(t, origin)
	return &testLog{origin: origin, vkey: k.VKey, signer: k.Signer, tree: testonly.New(rfc6962.DefaultHasher)}
}

// grow appends entries until the tree has size n.
func (l *testLog) grow(n uint64) *testLog {
	for l.tree.Size() < n {
		l.tree.AppendData(fmt.Appendf(nil, "entry %d%s", l.tree.Size(), l.tag))
	}
	return l
}

// fork returns a log with the same key and the first n entries, whose later
// entries differ.
func (l *testLog) fork(n uint64, tag string) *testLog {
	f := &testLog{origin: l.origin, vkey: l.vkey, signer: l.signer, tree: testonly.New(rfc6962.DefaultHasher)}
	for i := uint64(0); i < n; i++ {
		f.tree.Append(l.tree.LeafHash(i))
	}
	f.tag = tag
	return f
}

func (l *testLog) root(size uint64) [32]byte {
	var r [32]byte
	copy(r[:], l.tree.HashAt(size))
	return r
}

// checkpoint signs the checkpoint for size (growing the tree if needed).
func (l *testLog) checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	l.grow(size)
	return l.signBody(t, checkpointBody{Origin: l.origin, Size: size, Root: l.root(size)}.Marshal())
}

func (l *testLog) signBody(t testing.TB, body []byte) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// request builds an add-checkpoint body from old to size with a real proof.
func (l *testLog) request(t testing.TB, old, size uint64) []byte {
	t.Helper()
	l.grow(size)
	r := &request{Old: old, Checkpoint: l.checkpoint(t, size)}
	if old > 0 && old < size {
		p, err := l.tree.ConsistencyProof(old, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p {
			r.Proof = append(r.Proof, [32]byte(h))
		}
	}
	return r.Marshal()
}

func (l *testLog) config() LogConfig {
	return LogConfig{Origin: l.origin, Keys: []string{l.vkey}}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testWitness is a witness served over HTTP on loopback.
type testWitness struct {
	*Witness
	dir string
	srv *httptest.Server
}

func newTestWitness(t testing.TB, logs ...*testLog) *testWitness {
	t.Helper()
	var cfgs []LogConfig
	for _, l := range logs {
		cfgs = append(cfgs, l.config())
	}
	return newTestWitnessCfg(t, cfgs...)
}

func newTestWitnessCfg(t testing.TB, cfgs ...LogConfig) *testWitness {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, Options{Name: "test.example/w1", Logs: cfgs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() {
		srv.Close()
		w.Close()
	})
	return &testWitness{Witness: w, dir: dir, srv: srv}
}

type response struct {
	status int
	ctype  []string
	body   []byte
}

// post posts an add-checkpoint request.
func post(t testing.TB, url string, body []byte) response {
	t.Helper()
	return postTo(t, url+"/add-checkpoint", body)
}

// postTo posts body to url.
func postTo(t testing.TB, url string, body []byte) response {
	t.Helper()
	resp, err := http.Post(url, "", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header["Content-Type"], b}
}

// mustCosign posts and checks for a 200 with one valid cosignature line.
func mustCosign(t testing.TB, w *testWitness, l *testLog, old, size uint64) {
	t.Helper()
	body := l.request(t, old, size)
	r := post(t, w.srv.URL, body)
	if r.status != http.StatusOK {
		t.Fatalf("old %d size %d: status %d: %s", old, size, r.status, r.body)
	}
	checkCosignature(t, w.VerifierKey(), w.MLDSAVerifierKey(), l, l.checkpoint(t, size), r.body)
}

// checkCosignature verifies that cosig is exactly two tlog-cosignature
// v1.1 lines over cp, as Tessera's witness client checks them: the Ed25519
// one by vkey (type 0x04), then the ML-DSA-44 one by mvkey (type 0x06),
// both with the same non-zero timestamp.
func checkCosignature(t testing.TB, vkey, mvkey string, l *testLog, cp, cosig []byte) {
	t.Helper()
	if bytes.Count(cosig, []byte("\n")) != 2 || !bytes.HasPrefix(cosig, []byte("— ")) {
		t.Fatalf("response is not two signature lines: %.300q", cosig)
	}
	wv, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	mv, err := fnote.NewVerifierForCosignatureV1(mvkey)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(append(append([]byte{}, cp...), cosig...), note.VerifierList(lv, wv, mv))
	if err != nil {
		t.Fatalf("cosigned checkpoint does not verify: %v\n%s%.300s", err, cp, cosig)
	}
	if len(n.Sigs) != 3 || n.Sigs[1].Hash != wv.KeyHash() || n.Sigs[2].Hash != mv.KeyHash() || n.Sigs[1].Name != wv.Name() || n.Sigs[2].Name != wv.Name() {
		t.Fatalf("want log signature, Ed25519 and ML-DSA-44 cosignatures, got %d signatures", len(n.Sigs))
	}
	for i, size := range map[int]int{1: 4 + 8 + 64, 2: 4 + 8 + 2420} {
		raw, _ := base64.StdEncoding.DecodeString(n.Sigs[i].Base64)
		if len(raw) != size {
			t.Fatalf("cosignature %d is %d bytes, want %d", i, len(raw), size)
		}
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[1])
	mts, merr := fnote.CoSigV1Timestamp(n.Sigs[2])
	if err != nil || merr != nil || ts.Unix() <= 0 || mts.Unix() < ts.Unix() || mts.Unix() > ts.Unix()+1 {
		t.Fatalf("cosignature timestamps %v, %v (%v, %v)", ts, mts, err, merr)
	}
}

func ctx(t testing.TB) context.Context { return t.Context() }
