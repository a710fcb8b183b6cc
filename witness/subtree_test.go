package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
)

// mth is MTH(D[start:end]) of leaf hashes, by RFC 9162's recursive
// definition (largest power of two smaller than the size).
func mth(leaves [][32]byte, start, end uint64) [32]byte {
	if end-start == 1 {
		return leaves[start]
	}
	k := uint64(1)
	for k*2 < end-start {
		k *= 2
	}
	return hashChildren(mth(leaves, start, start+k), mth(leaves, start+k, end))
}

// subtreeProof is SUBTREE_PROOF(start, end, D_n) written from its
// recursive definition (draft-ietf-plants-merkle-tree-certs-03 §4.4.1),
// independently of the verifier, over leaves[lo:lo+n].
func subtreeProof(leaves [][32]byte, lo, start, end, n uint64, known bool) [][32]byte {
	if start == 0 && end == n {
		if known {
			return nil
		}
		return [][32]byte{mth(leaves, lo, lo+n)}
	}
	k := uint64(1)
	for k*2 < n {
		k *= 2
	}
	switch {
	case end <= k:
		return append(subtreeProof(leaves, lo, start, end, k, known), mth(leaves, lo+k, lo+n))
	case k <= start:
		return append(subtreeProof(leaves, lo+k, start-k, end-k, n-k, known), mth(leaves, lo, lo+k))
	default: // start == 0 < k < end
		return append(subtreeProof(leaves, lo+k, 0, end-k, n-k, false), mth(leaves, lo, lo+k))
	}
}

func testLeaves(n uint64) [][32]byte {
	var out [][32]byte
	for i := range n {
		out = append(out, [32]byte(rfc6962.DefaultHasher.HashLeaf(fmt.Appendf(nil, "leaf %d", i))))
	}
	return out
}

func TestValidSubtree(t *testing.T) {
	for _, c := range []struct {
		start, end uint64
		ok         bool
	}{
		{0, 1, true}, {0, 14, true}, {4, 8, true}, {8, 13, true}, {8, 14, true}, {4, 7, true}, {3, 4, true},
		{12, 14, true}, {1<<63 + 0, 1<<63 + 1, true}, {0, 1<<64 - 1, true},
		{2, 5, false}, {5, 5, false}, {6, 5, false}, {4, 9, false}, {1, 3, false}, {1, 1<<64 - 1, false},
	} {
		if got := validSubtree(c.start, c.end); got != c.ok {
			t.Errorf("[%d, %d): valid %v, want %v", c.start, c.end, got, c.ok)
		}
	}
}

// TestSubtreeProofExamples: the draft's worked examples (§4.4.2) are what
// the generator gives and what the verifier accepts.
func TestSubtreeProofExamples(t *testing.T) {
	l := testLeaves(14)
	for _, c := range []struct {
		start, end uint64
		want       [][32]byte
	}{
		{4, 8, [][32]byte{mth(l, 0, 4), mth(l, 8, 14)}},
		{8, 13, [][32]byte{mth(l, 12, 13), mth(l, 13, 14), mth(l, 8, 12), mth(l, 0, 8)}},
	} {
		p := subtreeProof(l, 0, c.start, c.end, 14, true)
		if fmt.Sprint(p) != fmt.Sprint(c.want) {
			t.Errorf("[%d, %d) in 14: proof has %d hashes, not the draft's %d", c.start, c.end, len(p), len(c.want))
		}
		if !verifySubtreeConsistency(c.start, c.end, 14, c.want, mth(l, c.start, c.end), mth(l, 0, 14)) {
			t.Errorf("[%d, %d) in 14: the draft's example proof does not verify", c.start, c.end)
		}
	}
}

// TestSubtreeProofs: for every tree up to 33 leaves and every subtree in
// it, the proof verifies; it is RFC 6962's consistency proof when start is
// 0 and the inclusion proof when the subtree is one leaf (as the draft
// says, checked against transparency-dev/merkle); and any changed hash,
// a missing or extra hash, or another tree size fails.
func TestSubtreeProofs(t *testing.T) {
	const max = 33
	leaves := testLeaves(max)
	l := newTestLog(t, "example.com/subtree")
	for i := range uint64(max) {
		l.tree.Append(leaves[i][:])
	}
	flip := func(h [32]byte) [32]byte { h[0] ^= 1; return h }
	for n := uint64(1); n <= max; n++ {
		root := mth(leaves, 0, n)
		for start := uint64(0); start < n; start++ {
			for end := start + 1; end <= n; end++ {
				if !validSubtree(start, end) {
					continue
				}
				node := mth(leaves, start, end)
				p := subtreeProof(leaves, 0, start, end, n, true)
				name := fmt.Sprintf("[%d, %d) in %d", start, end, n)
				if !verifySubtreeConsistency(start, end, n, p, node, root) {
					t.Fatalf("%s: the proof does not verify", name)
				}
				var ref [][]byte
				var err error
				if start == 0 && end < n {
					ref, err = l.tree.ConsistencyProof(end, n)
				} else if end == start+1 {
					ref, err = l.tree.InclusionProof(start, n)
				}
				if err != nil {
					t.Fatal(err)
				}
				if ref != nil && len(ref) != len(p) {
					t.Fatalf("%s: %d hashes, transparency-dev/merkle gives %d", name, len(p), len(ref))
				}
				for i := range ref {
					if !bytes.Equal(ref[i], p[i][:]) {
						t.Fatalf("%s: hash %d differs from transparency-dev/merkle's", name, i)
					}
				}
				if verifySubtreeConsistency(start, end, n, p, flip(node), root) || verifySubtreeConsistency(start, end, n, p, node, flip(root)) {
					t.Fatalf("%s: verifies with a wrong subtree or root hash", name)
				}
				for i := range p {
					q := append([][32]byte(nil), p...)
					q[i] = flip(q[i])
					if verifySubtreeConsistency(start, end, n, q, node, root) {
						t.Fatalf("%s: verifies with proof hash %d changed", name, i)
					}
				}
				if len(p) > 0 && verifySubtreeConsistency(start, end, n, p[:len(p)-1], node, root) {
					t.Fatalf("%s: verifies without its last hash", name)
				}
				if verifySubtreeConsistency(start, end, n, append(append([][32]byte(nil), p...), root), node, root) {
					t.Fatalf("%s: verifies with an extra hash", name)
				}
				if end <= n-1 && verifySubtreeConsistency(start, end, n-1, p, node, mth(leaves, 0, n-1)) && len(p) > 0 {
					// A proof for n is, in general, not one for n-1.
					if fmt.Sprint(subtreeProof(leaves, 0, start, end, n-1, true)) != fmt.Sprint(p) {
						t.Fatalf("%s: verifies for size %d too", name, n-1)
					}
				}
			}
		}
	}
	if verifySubtreeConsistency(2, 5, 8, nil, [32]byte{}, [32]byte{}) || verifySubtreeConsistency(0, 9, 8, nil, [32]byte{}, [32]byte{}) {
		t.Fatal("an invalid subtree or one past the tree verified")
	}
}

// postSubtree posts a sign-subtree request.
func postSubtree(t *testing.T, url string, body []byte) response {
	t.Helper()
	return postTo(t, url+"/sign-subtree", body)
}

// subtreeBody builds a sign-subtree request.
func subtreeBody(start, end uint64, hash [32]byte, proof [][32]byte, cp []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "subtree %d %d\n%s\n", start, end, base64.StdEncoding.EncodeToString(hash[:]))
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.Bytes()
}

// TestSignSubtree: over HTTP, a subtree of a checkpoint this witness
// cosigned gets one ML-DSA-44 subtree/v1 cosignature with timestamp 0,
// which transparency-dev/formats (over filippo.io/mldsa) verifies; each
// refusal gets the status C2SP tlog-witness assigns, and is counted.
func TestSignSubtree(t *testing.T) {
	l := newTestLog(t, "example.com/subtree-log")
	other := newTestLog(t, "example.com/not-witnessed")
	w := newTestWitness(t, l)
	mustCosign(t, w, l, 0, 14)
	st, ok, err := w.state(l.origin)
	if err != nil || !ok {
		t.Fatal(err)
	}
	cosigned := st.Checkpoint // log signature and both cosignatures
	leaves := make([][32]byte, 14)
	for i := range leaves {
		leaves[i] = [32]byte(l.tree.LeafHash(uint64(i)))
	}
	node := mth(leaves, 8, 13)
	proof := subtreeProof(leaves, 0, 8, 13, 14, true)

	r := postSubtree(t, w.srv.URL, subtreeBody(8, 13, node, proof, cosigned))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	line := strings.TrimSuffix(string(r.body), "\n")
	if strings.Count(string(r.body), "\n") != 1 || !strings.HasPrefix(line, "— "+w.Name()+" ") {
		t.Fatalf("answer is not one signature line by %s: %q", w.Name(), r.body)
	}
	raw, err := base64.StdEncoding.DecodeString(line[strings.LastIndexByte(line, ' ')+1:])
	if err != nil || len(raw) != 4+8+2420 {
		t.Fatalf("signature: %d bytes, %v", len(raw), err)
	}
	v, err := fnote.NewMLDSAVerifier(w.MLDSAVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if [4]byte(raw[:4]) != [4]byte{byte(v.KeyHash() >> 24), byte(v.KeyHash() >> 16), byte(v.KeyHash() >> 8), byte(v.KeyHash())} {
		t.Fatal("key ID is not the ML-DSA-44 key's")
	}
	if !bytes.Equal(raw[4:12], make([]byte, 8)) {
		t.Fatalf("timestamp %x, want 0 for a subtree", raw[4:12])
	}
	if !v.VerifySubtree(0, l.origin, 8, 13, node[:], raw[4:]) {
		t.Fatal("transparency-dev/formats does not verify the subtree cosignature")
	}
	if v.VerifySubtree(0, l.origin, 8, 12, node[:], raw[4:]) {
		t.Fatal("the cosignature verifies for another subtree")
	}

	bad := proof
	bad = append([][32]byte{}, bad...)
	bad[1][0] ^= 1
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"leading zero", bytes.Replace(subtreeBody(8, 13, node, proof, cosigned), []byte("subtree 8 13"), []byte("subtree 08 13"), 1), 400, "malformed"},
		{"no range", []byte("old 0\n\n" + string(cosigned)), 400, "malformed"},
		{"not a subtree", subtreeBody(2, 5, node, proof, cosigned), 400, "bad_subtree"},
		{"past the checkpoint", subtreeBody(8, 16, node, proof, cosigned), 400, "bad_subtree"},
		{"bad proof", subtreeBody(8, 13, node, bad, cosigned), 422, "bad_subtree_proof"},
		{"wrong hash", subtreeBody(8, 13, mth(leaves, 8, 12), proof, cosigned), 422, "bad_subtree_proof"},
		{"unknown log", subtreeBody(0, 1, [32]byte(other.grow(1).tree.LeafHash(0)), nil, other.checkpoint(t, 1)), 404, "unknown_origin"},
		{"log signature only", subtreeBody(8, 13, node, proof, l.checkpoint(t, 14)), 403, "not_cosigned"},
	} {
		r := postSubtree(t, w.srv.URL, c.body)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
		if m := get(t, w.srv.URL+"/metrics"); !strings.Contains(m, fmt.Sprintf(`stele_witness_sign_subtree_requests_total{reason=%q,status="%d"}`, c.reason, c.status)) {
			t.Errorf("%s: no metric for reason %s", c.name, c.reason)
		}
	}
}

func TestParseSubtreeRequest(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, c := range []struct {
		body string
		err  string
	}{
		{"subtree 8 13\n" + h + "\n\ncp\n", ""},
		{"subtree 0 1\n" + h + "\n" + h + "\n\ncp\n", ""},
		{"subtree 8\n" + h + "\n\ncp\n", `"subtree <start> <end>"`},
		{"subtree 8 13 2\n" + h + "\n\ncp\n", "subtree end"},
		{"subtree -1 13\n" + h + "\n\ncp\n", "subtree start"},
		{"subtree 8 13\n\ncp\n", "subtree hash"},
		{"subtree 8 13\n" + h + "\nxx\n\ncp\n", "proof line 1"},
		{"subtree 8 13\n" + h + "\n", "no empty line"},
		{"subtree 8 13\n" + h + "\n\n", "no checkpoint"},
		{"subtree 8 13", "must start"},
		{"subtree 8 13\n" + h + "\n" + strings.Repeat(h+"\n", 64) + "\ncp\n", "more than 63"},
	} {
		_, err := parseSubtreeRequest([]byte(c.body))
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%.40q: error %v, want %q", c.body, err, c.err)
		}
	}
}

// FuzzSignSubtreeRequest: the parser never panics, and what it accepts
// re-encodes to the same body.
func FuzzSignSubtreeRequest(f *testing.F) {
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	f.Add([]byte("subtree 8 13\n" + h + "\n" + h + "\n\nexample.com/log\n14\n" + h + "\n\n— x AAAA\n"))
	f.Add([]byte("subtree 0 1\n" + h + "\n\ncp\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSubtreeRequest(b)
		if err != nil {
			return
		}
		if got := subtreeBody(r.start, r.end, r.hash, r.proof, r.checkpoint); !bytes.Equal(got, b) {
			t.Fatalf("%q re-encodes as %q", b, got)
		}
	})
}
