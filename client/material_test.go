package client_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
)

// This file builds real receipt material: a log key, a tree of valid v1
// leaves, signed checkpoints and C2SP tlog-proofs. The Merkle tree is a
// small reference implementation of RFC 6962 section 2.1, written from the
// RFC and independent of the code under test.

const testOrigin = "example.com/stele-test"

// detReader yields a fixed byte stream, so keys are the same in every run
// and in every fuzz worker.
type detReader struct{ b byte }

func (r *detReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
		r.b++
	}
	return len(p), nil
}

type logKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newLogKey(t testing.TB, name string, seed byte) logKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(&detReader{b: seed}, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return logKey{signer: s, verifier: v, vkey: vkey}
}

// entry is one leaf of the test tree with the payload it commits to.
type entry struct {
	leafBytes []byte
	salt      []byte
	payload   []byte
}

func makeEntry(t testing.TB, i int) entry {
	t.Helper()
	pb, err := (&payload.Payload{
		Format: "test.json",
		Record: fmt.Appendf(nil, `{"n":%d}`, i),
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	salt := bytes.Repeat([]byte{byte(i + 1)}, leaf.SaltSize)
	d, err := leaf.Digest(salt, pb)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lb, err := (&leaf.Leaf{
		Source:        "test/src",
		SourceSeq:     uint64(i),
		EventID:       fmt.Sprintf("event-%03d", i),
		Kind:          "test.kind",
		EventTime:     base.Add(time.Duration(i) * time.Second),
		AdmittedTime:  base.Add(time.Duration(i)*time.Second + time.Millisecond),
		PayloadDigest: d,
		PayloadSize:   uint32(len(pb)),
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return entry{leafBytes: lb, salt: salt, payload: pb}
}

func makeEntries(t testing.TB, n int) []entry {
	es := make([]entry, n)
	for i := range es {
		es[i] = makeEntry(t, i)
	}
	return es
}

func leafData(es []entry) [][]byte {
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.leafBytes
	}
	return out
}

// --- reference RFC 6962 Merkle tree ---

func refLeafHash(d []byte) [32]byte {
	return sha256.Sum256(append([]byte{0x00}, d...))
}

func refNodeHash(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

// splitPoint is the largest power of two smaller than n (n > 1).
func splitPoint(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// refRoot is MTH(D[n]).
func refRoot(d [][]byte) [32]byte {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return refLeafHash(d[0])
	}
	k := splitPoint(len(d))
	return refNodeHash(refRoot(d[:k]), refRoot(d[k:]))
}

// refPath is PATH(m, D[n]).
func refPath(m int, d [][]byte) [][32]byte {
	if len(d) <= 1 {
		return nil
	}
	k := splitPoint(len(d))
	if m < k {
		return append(refPath(m, d[:k]), refRoot(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refRoot(d[:k]))
}

// --- checkpoints and receipts ---

// signNote signs body (which must end in "\n") with the given keys.
func signNote(t testing.TB, body string, keys ...logKey) []byte {
	t.Helper()
	var signers []note.Signer
	for _, k := range keys {
		signers = append(signers, k.signer)
	}
	b, err := note.Sign(&note.Note{Text: body}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkpointBody(origin string, size int, root [32]byte) string {
	return string(log.Checkpoint{Origin: origin, Size: uint64(size), Hash: root[:]}.Marshal())
}

// fixture is a tree with a signed checkpoint over all of it.
type fixture struct {
	key        logKey
	entries    []entry
	root       [32]byte
	checkpoint []byte
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	k := newLogKey(t, testOrigin, 1)
	es := makeEntries(t, n)
	root := refRoot(leafData(es))
	return &fixture{
		key:        k,
		entries:    es,
		root:       root,
		checkpoint: signNote(t, checkpointBody(testOrigin, n, root), k),
	}
}

func (f *fixture) proof(i int) proof.TLogProof {
	return proof.TLogProof{
		Index:      uint64(i),
		Hashes:     refPath(i, leafData(f.entries)),
		Checkpoint: f.checkpoint,
		ExtraData:  f.entries[i].leafBytes,
	}
}

func (f *fixture) receipt(i int) []byte {
	return f.proof(i).Marshal()
}
