package client_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/proof"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
)

const treeSize = 37

// checkErr fails unless err is non-nil and contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %q, want it to contain %q", err, want)
	}
}

func mustDecodeHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReferenceTree checks the test's own RFC 6962 code against known
// values: the empty tree and the leaf hash vector of docs/leaf-v1.md.
func TestReferenceTree(t *testing.T) {
	if got, want := refRoot(nil), mustDecodeHex(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"); !bytes.Equal(got[:], want) {
		t.Fatalf("empty tree root = %x, want %x", got, want)
	}
	l := mustDecodeHex(t, "0130656e7472612f30303030303030302d303030302d303030302d303030302d3030303030303030303030312f61756469740000000000000007002461316232633364342d303030302d343030302d383030302d303030303030303030303031196469726563746f72792e726f6c652e6d656d6265722e6164641886caf223f1ff151886caf25830fc00453c25e40e992a67f1303095180ba85e088c6a302634865d736c557f1ea88ebb0000007600")
	if got, want := refLeafHash(l), mustDecodeHex(t, "bcb427c24fd50ec5990f9a34ceeb5892bbb85d3dbb9e6688fca66d101fc47629"); !bytes.Equal(got[:], want) {
		t.Fatalf("leaf hash = %x, want %x", got, want)
	}
	if got := refRoot([][]byte{l}); got != refLeafHash(l) {
		t.Fatalf("one-leaf root = %x, want the leaf hash", got)
	}
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	want3 := refNodeHash(refNodeHash(refLeafHash(a), refLeafHash(b)), refLeafHash(c))
	if got := refRoot([][]byte{a, b, c}); got != want3 {
		t.Fatalf("three-leaf root = %x, want %x", got, want3)
	}
	if got := refPath(2, [][]byte{a, b, c}); len(got) != 1 || got[0] != refNodeHash(refLeafHash(a), refLeafHash(b)) {
		t.Fatalf("path of leaf 2 of 3 = %x", got)
	}
}

func TestVerifyReceiptEveryIndexEverySize(t *testing.T) {
	all := makeEntries(t, treeSize)
	k := newLogKey(t, testOrigin, 1)
	for n := 1; n <= treeSize; n++ {
		es := all[:n]
		root := refRoot(leafData(es))
		cp := signNote(t, checkpointBody(testOrigin, n, root), k)
		for i := range n {
			b := proof.TLogProof{Index: uint64(i), Hashes: refPath(i, leafData(es)), Checkpoint: cp, ExtraData: es[i].leafBytes}.Marshal()
			r, err := client.VerifyReceipt(b, k.verifier)
			if err != nil {
				t.Fatalf("size %d index %d: %v", n, i, err)
			}
			if r.Index != uint64(i) || !bytes.Equal(r.LeafBytes, es[i].leafBytes) {
				t.Fatalf("size %d index %d: receipt = index %d leaf %x", n, i, r.Index, r.LeafBytes)
			}
			if r.Checkpoint.Size != uint64(n) || r.Checkpoint.Root != root || r.Checkpoint.Origin != testOrigin || !bytes.Equal(r.Checkpoint.Raw, cp) {
				t.Fatalf("size %d index %d: checkpoint = %+v", n, i, r.Checkpoint)
			}
			if r.Leaf.EventID != fmt.Sprintf("event-%03d", i) || r.Leaf.SourceSeq != uint64(i) {
				t.Fatalf("size %d index %d: decoded leaf %+v", n, i, r.Leaf)
			}
			p, err := client.VerifyEvent(r, es[i].leafBytes, es[i].salt, es[i].payload)
			if err != nil {
				t.Fatalf("size %d index %d: VerifyEvent: %v", n, i, err)
			}
			if p.Format != "test.json" || string(p.Record) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("size %d index %d: payload = %+v", n, i, p)
			}
		}
	}
}

func TestParseCheckpoint(t *testing.T) {
	f := newFixture(t, treeSize)
	rootB64 := base64.StdEncoding.EncodeToString(f.root[:])
	other := newLogKey(t, testOrigin, 2)
	otherName := newLogKey(t, "example.com/other", 3)
	witness := newLogKey(t, "witness.example", 4)

	t.Run("valid", func(t *testing.T) {
		cp, err := client.ParseCheckpoint(f.checkpoint, f.key.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Origin != testOrigin || cp.Size != treeSize || cp.Root != f.root || !bytes.Equal(cp.Raw, f.checkpoint) {
			t.Fatalf("checkpoint = %+v", cp)
		}
		if len(cp.Note.Sigs) != 1 || cp.Note.Sigs[0].Hash != f.key.verifier.KeyHash() {
			t.Fatalf("verified signatures = %+v", cp.Note.Sigs)
		}
	})
	t.Run("cosigned by an unknown witness", func(t *testing.T) {
		raw := signNote(t, checkpointBody(testOrigin, treeSize, f.root), f.key, witness)
		cp, err := client.ParseCheckpoint(raw, f.key.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if len(cp.Note.Sigs) != 1 || len(cp.Note.UnverifiedSigs) != 1 || cp.Note.UnverifiedSigs[0].Name != "witness.example" {
			t.Fatalf("sigs = %+v, unverified = %+v", cp.Note.Sigs, cp.Note.UnverifiedSigs)
		}
	})
	t.Run("extension lines kept", func(t *testing.T) {
		raw := signNote(t, checkpointBody(testOrigin, treeSize, f.root)+"ext one\n", f.key)
		cp, err := client.ParseCheckpoint(raw, f.key.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != treeSize || !strings.HasSuffix(cp.Note.Text, "\next one\n") {
			t.Fatalf("checkpoint = %+v", cp)
		}
	})
	t.Run("size zero", func(t *testing.T) {
		root := refRoot(nil)
		cp, err := client.ParseCheckpoint(signNote(t, checkpointBody(testOrigin, 0, root), f.key), f.key.verifier)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != 0 || cp.Root != root {
			t.Fatalf("checkpoint = %+v", cp)
		}
	})

	rejects := []struct {
		name string
		raw  []byte
		want string
	}{
		{"signed by another key with the same name", signNote(t, checkpointBody(testOrigin, treeSize, f.root), other), "is signed by key example.com/stele-test+e20bf7fe, but the key given is example.com/stele-test+7d4b13b0"},
		{"signed by another key with another name", signNote(t, checkpointBody(testOrigin, treeSize, f.root), otherName), "is signed by key example.com/other+874b5cf1, but the key given is example.com/stele-test+7d4b13b0"},
		{"signed only by a witness", signNote(t, checkpointBody(testOrigin, treeSize, f.root), witness), "is signed by key witness.example+5e5755e4, but the key given"},
		{"body altered after signing", bytes.Replace(f.checkpoint, []byte("\n37\n"), []byte("\n38\n"), 1), "checkpoint: failed to verify signatures"},
		{"signature stripped", []byte(checkpointBody(testOrigin, treeSize, f.root) + "\n"), "checkpoint: failed to verify signatures"},
		{"empty", nil, "checkpoint: failed to verify signatures"},
		{"other origin signed by the log key", signNote(t, checkpointBody("example.com/other", treeSize, f.root), f.key), `got Origin "example.com/other"`},
		{"size with leading zero", signNote(t, testOrigin+"\n037\n"+rootB64+"\n", f.key), "not in canonical form"},
		{"size zero with leading zero", signNote(t, testOrigin+"\n00\n"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n", f.key), "not in canonical form"},
		{"size with plus sign", signNote(t, testOrigin+"\n+37\n"+rootB64+"\n", f.key), "size invalid"},
		{"size negative", signNote(t, testOrigin+"\n-1\n"+rootB64+"\n", f.key), "size invalid"},
		{"size empty", signNote(t, testOrigin+"\n\n"+rootB64+"\n", f.key), "checkpoint"},
		{"size with space", signNote(t, testOrigin+"\n37 \n"+rootB64+"\n", f.key), "size invalid"},
		{"size overflows", signNote(t, testOrigin+"\n18446744073709551616\n"+rootB64+"\n", f.key), "size invalid"},
		{"root 31 bytes", signNote(t, testOrigin+"\n37\n"+base64.StdEncoding.EncodeToString(f.root[:31])+"\n", f.key), "root hash is 31 bytes, want 32"},
		{"root 33 bytes", signNote(t, testOrigin+"\n37\n"+base64.StdEncoding.EncodeToString(append(f.root[:], 0))+"\n", f.key), "root hash is 33 bytes, want 32"},
		{"root empty", signNote(t, testOrigin+"\n37\n\n", f.key), "root hash is 0 bytes"},
		{"root not base64", signNote(t, testOrigin+"\n37\n!!!!\n", f.key), "invalid hash"},
		{"root unpadded", signNote(t, testOrigin+"\n37\n"+strings.TrimRight(rootB64, "=")+"\n", f.key), "invalid hash"},
		{"root with non-zero padding bits", signNote(t, testOrigin+"\n37\n"+nonCanonicalB64(t, f.root[:])+"\n", f.key), "not in canonical form"},
		{"too few lines", signNote(t, testOrigin+"\n37\n", f.key), "too few newlines"},
	}
	for _, tt := range rejects {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := client.ParseCheckpoint(tt.raw, f.key.verifier)
			if cp != nil {
				t.Errorf("got a checkpoint with the error: %+v", cp)
			}
			checkErr(t, err, tt.want)
		})
	}
}

// nonCanonicalB64 returns a base64 text of b that a lenient decoder reads as
// b but that is not what an encoder writes: the unused low bits of the last
// character are set.
func nonCanonicalB64(t *testing.T, b []byte) string {
	t.Helper()
	if len(b)%3 == 0 {
		t.Fatal("needs a length with padding")
	}
	s := []byte(base64.StdEncoding.EncodeToString(b))
	last := bytes.LastIndexFunc(s, func(r rune) bool { return r != '=' })
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	s[last] = alphabet[strings.IndexByte(alphabet, s[last])|1]
	dec, err := base64.StdEncoding.DecodeString(string(s))
	if err != nil || !bytes.Equal(dec, b) {
		t.Fatalf("non-canonical base64 %q does not decode to the input: %x, %v", s, dec, err)
	}
	return string(s)
}

func TestParseReceiptProof(t *testing.T) {
	f := newFixture(t, treeSize)
	good := f.receipt(13)
	p, err := client.ParseReceiptProof(good)
	if err != nil {
		t.Fatal(err)
	}
	want := f.proof(13)
	if p.Index != 13 || len(p.Hashes) != len(want.Hashes) || !bytes.Equal(p.ExtraData, want.ExtraData) || !bytes.Equal(p.Checkpoint, f.checkpoint) {
		t.Fatalf("parsed = %+v", p)
	}
	for i := range p.Hashes {
		if p.Hashes[i] != want.Hashes[i] {
			t.Fatalf("hash %d = %x, want %x", i, p.Hashes[i], want.Hashes[i])
		}
	}
	noExtra := want
	noExtra.ExtraData = nil
	if p, err := client.ParseReceiptProof(noExtra.Marshal()); err != nil || p.ExtraData != nil {
		t.Fatalf("proof without extra: %+v, %v", p, err)
	}

	for _, tt := range textTampers(t, f) {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(bytes.Clone(good))
			if bytes.Equal(b, good) {
				t.Fatal("the edit changed nothing")
			}
			p, err := client.ParseReceiptProof(b)
			if tt.parseErr == "" {
				if err != nil {
					t.Fatalf("ParseReceiptProof: %v", err)
				}
				return
			}
			if p != nil {
				t.Errorf("got a proof with the error")
			}
			checkErr(t, err, tt.parseErr)
		})
	}
}

type textTamper struct {
	name string
	edit func([]byte) []byte
	// parseErr is what ParseReceiptProof says; "" if it accepts the text.
	parseErr string
	// verifyErr is what VerifyReceipt says.
	verifyErr string
}

const (
	errNotProof     = "receipt is not a c2sp.org/tlog-proof@v1"
	errNotCanonical = "receipt is not in canonical tlog-proof form"
	errCheckpoint   = "receipt checkpoint: "
)

// replaceLine replaces line number n (0-based) of b.
func replaceLine(n int, with func(string) string) func([]byte) []byte {
	return func(b []byte) []byte {
		lines := strings.Split(string(b), "\n")
		lines[n] = with(lines[n])
		return []byte(strings.Join(lines, "\n"))
	}
}

func textTampers(t *testing.T, f *fixture) []textTamper {
	// Line layout of a receipt for index 13 in a tree of 37:
	// 0 header, 1 extra, 2 index, 3..8 hashes, 9 blank, 10.. checkpoint.
	if n := len(f.proof(13).Hashes); n != 6 {
		t.Fatalf("index 13 of %d has %d hashes; the line numbers below assume 6", treeSize, n)
	}
	appendS := func(s string) func(string) string { return func(l string) string { return l + s } }
	return []textTamper{
		{"trailing space after header", replaceLine(0, appendS(" ")), errNotProof, errNotProof},
		{"other header version", replaceLine(0, func(string) string { return "c2sp.org/tlog-proof@v2" }), errNotProof, errNotProof},
		{"trailing space after extra", replaceLine(1, appendS(" ")), errNotProof, errNotProof},
		{"trailing space after index", replaceLine(2, appendS(" ")), errNotProof, errNotProof},
		{"trailing space after a hash", replaceLine(4, appendS(" ")), errNotProof, errNotProof},
		{"trailing space on the blank line", replaceLine(9, appendS(" ")), errNotProof, errNotProof},
		{"trailing space in the checkpoint", replaceLine(10, appendS(" ")), "", errCheckpoint},
		{"missing final newline", func(b []byte) []byte { return b[:len(b)-1] }, errNotCanonical, errNotCanonical},
		{"CRLF line endings", func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }, errNotCanonical, errNotCanonical},
		{"CR on one hash line", replaceLine(5, appendS("\r")), errNotCanonical, errNotCanonical},
		{"CR on the checkpoint's last line", func(b []byte) []byte { return append(b[:len(b)-1], '\r', '\n') }, errNotCanonical, errNotCanonical},
		{"index with leading zero", replaceLine(2, func(string) string { return "index 013" }), errNotCanonical, errNotCanonical},
		{"index with plus sign", replaceLine(2, func(string) string { return "index +13" }), errNotProof, errNotProof},
		{"index negative", replaceLine(2, func(string) string { return "index -13" }), errNotProof, errNotProof},
		{"index two spaces", replaceLine(2, func(string) string { return "index  13" }), errNotProof, errNotProof},
		{"index missing", replaceLine(2, func(string) string { return "" }), errNotProof, errNotProof},
		{"hash unpadded", replaceLine(3, func(l string) string { return strings.TrimRight(l, "=") }), errNotProof, errNotProof},
		{"hash 31 bytes", replaceLine(3, func(string) string { return base64.StdEncoding.EncodeToString(make([]byte, 31)) }), "hash length was 31", "hash length was 31"},
		{"hash with non-zero padding bits", replaceLine(3, func(l string) string {
			raw, _ := base64.StdEncoding.DecodeString(l)
			return nonCanonicalB64(t, raw)
		}), errNotCanonical, errNotCanonical},
		{"extra with non-zero padding bits", replaceLine(1, func(l string) string {
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "extra "))
			if len(raw)%3 == 0 {
				t.Fatal("leaf length has no base64 padding; pick another test leaf")
			}
			return "extra " + nonCanonicalB64(t, raw)
		}), errNotCanonical, errNotCanonical},
		{"extra not base64", replaceLine(1, func(string) string { return "extra !!!!" }), errNotProof, errNotProof},
		{"extra after index", func(b []byte) []byte {
			lines := strings.Split(string(b), "\n")
			lines[1], lines[2] = lines[2], lines[1]
			return []byte(strings.Join(lines, "\n"))
		}, errNotProof, errNotProof},
		{"blank separator missing", func(b []byte) []byte {
			lines := strings.Split(string(b), "\n")
			return []byte(strings.Join(append(lines[:9:9], lines[10:]...), "\n"))
		}, errNotProof, errNotProof},
		{"two blank lines before the checkpoint", replaceLine(9, appendS("\n")), "", errCheckpoint},
		{"blank line after the checkpoint", func(b []byte) []byte { return append(b, '\n') }, "", errCheckpoint},
		{"text after the checkpoint", func(b []byte) []byte { return append(b, "more\n"...) }, "", errCheckpoint},
		{"checkpoint missing", func(b []byte) []byte {
			i := bytes.Index(b, []byte("\n\n"))
			return b[:i+2]
		}, "", errCheckpoint},
		{"empty", func([]byte) []byte { return nil }, errNotProof, errNotProof},
		{"header only", func([]byte) []byte { return []byte("c2sp.org/tlog-proof@v1\n") }, errNotProof, errNotProof},
		{"NUL appended", func(b []byte) []byte { return append(b, 0) }, errNotCanonical, errNotCanonical},
	}
}

type proofTamper struct {
	name string
	edit func(p *proof.TLogProof)
	want string
}

func TestVerifyReceiptTampering(t *testing.T) {
	f := newFixture(t, treeSize)
	const idx = 13
	good := f.receipt(idx)
	if _, err := client.VerifyReceipt(good, f.key.verifier); err != nil {
		t.Fatalf("the untampered receipt does not verify: %v", err)
	}

	other := newLogKey(t, testOrigin, 2)
	otherName := newLogKey(t, "example.com/other", 3)
	rootB64 := base64.StdEncoding.EncodeToString(f.root[:])
	other20 := f.proof(20)
	if other20.Hashes[0] == f.proof(idx).Hashes[0] {
		t.Fatal("proofs for 13 and 20 share their first hash; pick other indexes")
	}
	smaller := refRoot(leafData(f.entries[:treeSize-1]))

	// A tree whose leaf 13 is not a valid leaf, with a correct proof.
	badLeafEntries := append([]entry(nil), f.entries...)
	badLeafEntries[idx] = entry{leafBytes: []byte("this is not a leaf v1")}
	badLeafRoot := refRoot(leafData(badLeafEntries))
	badLeafCP := signNote(t, checkpointBody(testOrigin, treeSize, badLeafRoot), f.key)

	flip := func(off func([]byte) int, bit byte) func(p *proof.TLogProof) {
		return func(p *proof.TLogProof) {
			p.ExtraData = bytes.Clone(p.ExtraData)
			p.ExtraData[off(p.ExtraData)] ^= bit
		}
	}
	const errInclusion = "inclusion: the proof does not lead from leaf "
	tampers := []proofTamper{
		{"bit flipped in leaf payload digest", flip(func(b []byte) int { return len(b) - 20 }, 0x01), errInclusion + "13 "},
		{"bit flipped in leaf event_id", flip(func(b []byte) int { return bytes.Index(b, []byte("event-013")) + 8 }, 0x01), errInclusion + "13 "},
		{"bit flipped in leaf version", flip(func([]byte) int { return 0 }, 0x02), "receipt leaf:"},
		{"bit flipped in leaf signature type", flip(func(b []byte) int { return len(b) - 1 }, 0x04), "receipt leaf:"},
		{"byte appended to leaf", func(p *proof.TLogProof) { p.ExtraData = append(bytes.Clone(p.ExtraData), 0) }, "receipt leaf:"},
		{"leaf truncated", func(p *proof.TLogProof) { p.ExtraData = p.ExtraData[:len(p.ExtraData)-1] }, "receipt leaf:"},
		{"leaf of the next entry", func(p *proof.TLogProof) { p.ExtraData = f.entries[idx+1].leafBytes }, errInclusion + "13 "},
		{"missing extra line", func(p *proof.TLogProof) { p.ExtraData = nil }, "receipt carries no leaf"},
		{"empty extra line", func(p *proof.TLogProof) { p.ExtraData = []byte{} }, "receipt carries no leaf"},
		{"leaf that does not parse, proof valid", func(p *proof.TLogProof) {
			p.ExtraData = badLeafEntries[idx].leafBytes
			p.Hashes = refPath(idx, leafData(badLeafEntries))
			p.Checkpoint = badLeafCP
		}, "receipt leaf:"},
		{"index plus one", func(p *proof.TLogProof) { p.Index++ }, errInclusion + "14 "},
		{"index minus one", func(p *proof.TLogProof) { p.Index-- }, errInclusion + "12 "},
		{"index zero", func(p *proof.TLogProof) { p.Index = 0 }, errInclusion + "0 "},
		{"index equal to size", func(p *proof.TLogProof) { p.Index = treeSize }, "inclusion: index 37 is not in a tree of size 37"},
		{"index huge", func(p *proof.TLogProof) { p.Index = 1 << 63 }, "is not in a tree of size 37"},
		{"index max uint64", func(p *proof.TLogProof) { p.Index = ^uint64(0) }, "is not in a tree of size 37"},
		{"path truncated", func(p *proof.TLogProof) { p.Hashes = p.Hashes[:len(p.Hashes)-1] }, errInclusion + "13 "},
		{"path empty", func(p *proof.TLogProof) { p.Hashes = nil }, errInclusion + "13 "},
		{"extra hash line", func(p *proof.TLogProof) { p.Hashes = append(p.Hashes, [32]byte{}) }, errInclusion + "13 "},
		{"last hash repeated", func(p *proof.TLogProof) { p.Hashes = append(p.Hashes, p.Hashes[len(p.Hashes)-1]) }, errInclusion + "13 "},
		{"hash from another proof", func(p *proof.TLogProof) { p.Hashes[0] = other20.Hashes[0] }, errInclusion + "13 "},
		{"path of another index", func(p *proof.TLogProof) { p.Hashes = other20.Hashes }, errInclusion + "13 "},
		{"two hashes swapped", func(p *proof.TLogProof) { p.Hashes[1], p.Hashes[2] = p.Hashes[2], p.Hashes[1] }, errInclusion + "13 "},
		{"bit flipped in a hash", func(p *proof.TLogProof) { p.Hashes[3][31] ^= 0x80 }, errInclusion + "13 "},
		{"checkpoint signed by another key", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, checkpointBody(testOrigin, treeSize, f.root), other)
		}, errCheckpoint + "the checkpoint of origin \"example.com/stele-test\" is signed by key example.com/stele-test+e20bf7fe, but the key given is example.com/stele-test+7d4b13b0"},
		{"checkpoint signed by another log", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, checkpointBody(testOrigin, treeSize, f.root), otherName)
		}, errCheckpoint + "the checkpoint of origin \"example.com/stele-test\" is signed by key example.com/other+874b5cf1"},
		{"checkpoint with other origin", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, checkpointBody("example.com/other", treeSize, f.root), f.key)
		}, `receipt checkpoint: got Origin "example.com/other"`},
		{"checkpoint size with leading zero", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, testOrigin+"\n037\n"+rootB64+"\n", f.key)
		}, "receipt checkpoint: body is not in canonical form"},
		{"checkpoint of a smaller tree", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, checkpointBody(testOrigin, treeSize-1, smaller), f.key)
		}, errInclusion + "13 "},
		{"checkpoint with the right size and another root", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, checkpointBody(testOrigin, treeSize, smaller), f.key)
		}, errInclusion + "13 "},
		// (A checkpoint for size 38 with the root of size 37 is not listed:
		// leaf 13's path has the same shape in both trees, so inclusion
		// alone cannot tell; binding size to root is the log signature's job.)
		{"checkpoint with a larger size, same root, last leaf", func(p *proof.TLogProof) {
			last := f.proof(treeSize - 1)
			p.Index, p.Hashes, p.ExtraData = last.Index, last.Hashes, last.ExtraData
			p.Checkpoint = signNote(t, checkpointBody(testOrigin, treeSize+1, f.root), f.key)
		}, errInclusion + "36 "},
		{"checkpoint too small for the index", func(p *proof.TLogProof) {
			p.Checkpoint = signNote(t, checkpointBody(testOrigin, idx, refRoot(leafData(f.entries[:idx]))), f.key)
		}, "inclusion: index 13 is not in a tree of size 13"},
		{"checkpoint of another tree's receipt", func(p *proof.TLogProof) { p.Checkpoint = badLeafCP }, errInclusion + "13 "},
	}
	for _, tt := range tampers {
		t.Run(tt.name, func(t *testing.T) {
			p := f.proof(idx)
			tt.edit(&p)
			b := p.Marshal()
			if bytes.Equal(b, good) {
				t.Fatal("the edit changed nothing")
			}
			r, err := client.VerifyReceipt(b, f.key.verifier)
			if r != nil {
				t.Errorf("got a receipt with the error")
			}
			checkErr(t, err, tt.want)
		})
	}
	for _, tt := range textTampers(t, f) {
		t.Run("text/"+tt.name, func(t *testing.T) {
			b := tt.edit(bytes.Clone(good))
			r, err := client.VerifyReceipt(b, f.key.verifier)
			if r != nil {
				t.Errorf("got a receipt with the error")
			}
			checkErr(t, err, tt.verifyErr)
		})
	}
}

func TestVerifyReceiptCosignedCheckpoint(t *testing.T) {
	f := newFixture(t, treeSize)
	witness := newLogKey(t, "witness.example", 4)
	p := f.proof(36)
	p.Checkpoint = signNote(t, checkpointBody(testOrigin, treeSize, f.root), witness, f.key)
	r, err := client.VerifyReceipt(p.Marshal(), f.key.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if r.Index != 36 || len(r.Checkpoint.Note.UnverifiedSigs) != 1 {
		t.Fatalf("receipt = %+v, note = %+v", r, r.Checkpoint.Note)
	}
}

func TestVerifyInclusion(t *testing.T) {
	f := newFixture(t, treeSize)
	cp, err := client.ParseCheckpoint(f.checkpoint, f.key.verifier)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 13, 31, 32, 36} {
		p := f.proof(i)
		if err := client.VerifyInclusion(cp, uint64(i), p.ExtraData, p.Hashes); err != nil {
			t.Errorf("index %d: %v", i, err)
		}
		// The leaf is hashed as given: the leaf hash in its place fails.
		h := refLeafHash(p.ExtraData)
		checkErr(t, client.VerifyInclusion(cp, uint64(i), h[:], p.Hashes), "inclusion: the proof does not lead")
	}
	p := f.proof(5)
	checkErr(t, client.VerifyInclusion(cp, treeSize, p.ExtraData, p.Hashes), "index 37 is not in a tree of size 37")
	checkErr(t, client.VerifyInclusion(cp, 6, p.ExtraData, p.Hashes), "inclusion: the proof does not lead from leaf 6")
	checkErr(t, client.VerifyInclusion(cp, 5, nil, p.Hashes), "inclusion: the proof does not lead from leaf 5")

	empty := &client.Checkpoint{Origin: testOrigin, Size: 0, Root: refRoot(nil)}
	checkErr(t, client.VerifyInclusion(empty, 0, p.ExtraData, nil), "index 0 is not in a tree of size 0")

	one := &client.Checkpoint{Origin: testOrigin, Size: 1, Root: refLeafHash(p.ExtraData)}
	if err := client.VerifyInclusion(one, 0, p.ExtraData, nil); err != nil {
		t.Errorf("single-leaf tree: %v", err)
	}
	checkErr(t, client.VerifyInclusion(one, 0, p.ExtraData, [][32]byte{{}}), "inclusion: the proof does not lead from leaf 0")
}

func TestVerifyEvent(t *testing.T) {
	f := newFixture(t, treeSize)
	const idx = 13
	r, err := client.VerifyReceipt(f.receipt(idx), f.key.verifier)
	if err != nil {
		t.Fatal(err)
	}
	e := f.entries[idx]
	p, err := client.VerifyEvent(r, e.leafBytes, e.salt, e.payload)
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != "test.json" || string(p.Record) != `{"n":13}` || p.Normalized != nil {
		t.Fatalf("payload = %+v", p)
	}

	flipped := bytes.Clone(e.payload)
	flipped[len(flipped)-6] ^= 0x01 // inside the record, same length
	otherSalt := bytes.Clone(e.salt)
	otherSalt[0] ^= 0xff
	next := f.entries[idx+1]
	if len(next.payload) != len(e.payload) {
		t.Fatal("entries 13 and 14 should have payloads of the same size")
	}
	tests := []struct {
		name                   string
		leafBytes, salt, pload []byte
		want                   string
	}{
		{"wrong salt", e.leafBytes, otherSalt, e.payload, "event: leaf: payload_digest mismatch"},
		{"salt of another entry", e.leafBytes, next.salt, e.payload, "payload_digest mismatch"},
		{"salt too short", e.leafBytes, e.salt[:31], e.payload, "salt is 31 bytes, want 32"},
		{"salt missing", e.leafBytes, nil, e.payload, "salt is 0 bytes, want 32"},
		{"altered payload same size", e.leafBytes, e.salt, flipped, "event: leaf: payload_digest mismatch"},
		{"payload of another entry with its salt", e.leafBytes, next.salt, next.payload, "payload_digest mismatch"},
		{"payload with a byte appended", e.leafBytes, e.salt, append(bytes.Clone(e.payload), 0), "payload_size mismatch"},
		{"payload truncated", e.leafBytes, e.salt, e.payload[:len(e.payload)-1], "payload_size mismatch"},
		{"payload missing", e.leafBytes, e.salt, nil, "payload_size mismatch"},
		{"other leaf", next.leafBytes, e.salt, e.payload, "event: its leaf is not the receipt's leaf"},
		{"other leaf with its own payload", next.leafBytes, next.salt, next.payload, "event: its leaf is not the receipt's leaf"},
		{"leaf missing", nil, e.salt, e.payload, "event: its leaf is not the receipt's leaf"},
		{"leaf with a byte appended", append(bytes.Clone(e.leafBytes), 0), e.salt, e.payload, "event: its leaf is not the receipt's leaf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := client.VerifyEvent(r, tt.leafBytes, tt.salt, tt.pload)
			if p != nil {
				t.Errorf("got a payload with the error")
			}
			checkErr(t, err, tt.want)
		})
	}
}

// TestVerifyEventPayloadDoesNotParse covers a leaf that commits to bytes
// that are not a payload v1: digest and size match, parsing fails.
func TestVerifyEventPayloadDoesNotParse(t *testing.T) {
	es := makeEntries(t, 3)
	junk := []byte("not a payload")
	salt := bytes.Repeat([]byte{7}, leaf.SaltSize)
	d, err := leaf.Digest(salt, junk)
	if err != nil {
		t.Fatal(err)
	}
	l, err := leaf.Unmarshal(es[1].leafBytes)
	if err != nil {
		t.Fatal(err)
	}
	l.PayloadDigest, l.PayloadSize = d, uint32(len(junk))
	if es[1].leafBytes, err = l.Marshal(); err != nil {
		t.Fatal(err)
	}
	es[1].salt, es[1].payload = salt, junk
	if _, err := payload.Unmarshal(junk); err == nil {
		t.Fatal("junk parses as a payload")
	}
	k := newLogKey(t, testOrigin, 1)
	fx := &fixture{key: k, entries: es, root: refRoot(leafData(es))}
	fx.checkpoint = signNote(t, checkpointBody(testOrigin, len(es), fx.root), k)
	r, err := client.VerifyReceipt(fx.receipt(1), k.verifier)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.VerifyEvent(r, es[1].leafBytes, salt, junk)
	if p != nil {
		t.Errorf("got a payload with the error")
	}
	checkErr(t, err, "event payload:")
}
