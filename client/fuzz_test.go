package client_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/leaf"
)

// fuzzFixture is a small tree so that the fuzzer's seeds are short. Keys
// are deterministic, so every fuzz worker builds the same verifier.
func fuzzFixture(f *testing.F) *fixture {
	return newFixture(f, 5)
}

func FuzzVerifyReceipt(f *testing.F) {
	fx := fuzzFixture(f)
	for i := range fx.entries {
		f.Add(fx.receipt(i))
	}
	p := fx.proof(2)
	p.Index = 3
	f.Add(p.Marshal())
	p = fx.proof(4)
	p.ExtraData = nil
	f.Add(p.Marshal())
	f.Add(bytes.ReplaceAll(fx.receipt(1), []byte("\n"), []byte("\r\n")))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := client.VerifyReceipt(data, fx.key.verifier)
		if err != nil {
			if r != nil {
				t.Fatalf("receipt returned with error %v", err)
			}
			return
		}
		if r.Index >= r.Checkpoint.Size {
			t.Fatalf("verified receipt has index %d in a tree of size %d", r.Index, r.Checkpoint.Size)
		}
		if r.Checkpoint.Origin != testOrigin {
			t.Fatalf("verified checkpoint has origin %q", r.Checkpoint.Origin)
		}
		p, err := client.ParseReceiptProof(data)
		if err != nil {
			t.Fatalf("verified receipt does not parse: %v", err)
		}
		again := proof.TLogProof{Index: r.Index, Hashes: p.Hashes, Checkpoint: r.Checkpoint.Raw, ExtraData: r.LeafBytes}.Marshal()
		if !bytes.Equal(again, data) {
			t.Fatalf("verified receipt does not re-marshal identically:\n got %q\nwant %q", again, data)
		}
		lb, err := r.Leaf.Marshal()
		if err != nil || !bytes.Equal(lb, r.LeafBytes) {
			t.Fatalf("receipt leaf does not re-encode to its bytes: %x vs %x, %v", lb, r.LeafBytes, err)
		}
		if _, err := leaf.Unmarshal(r.LeafBytes); err != nil {
			t.Fatalf("receipt leaf does not parse: %v", err)
		}
		if err := client.VerifyInclusion(r.Checkpoint, r.Index, r.LeafBytes, p.Hashes); err != nil {
			t.Fatalf("verified receipt fails VerifyInclusion: %v", err)
		}
		// Only the real tree's material can verify.
		if r.Checkpoint.Root != fx.root || r.Checkpoint.Size != uint64(len(fx.entries)) {
			t.Fatalf("a checkpoint the test never signed verified: %+v", r.Checkpoint)
		}
		if !bytes.Equal(r.LeafBytes, fx.entries[r.Index].leafBytes) {
			t.Fatalf("leaf %d verified but is not the tree's leaf", r.Index)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	fx := fuzzFixture(f)
	witness := newLogKey(f, "witness.example", 4)
	f.Add(fx.checkpoint)
	f.Add(signNote(f, checkpointBody(testOrigin, 5, fx.root), fx.key, witness))
	f.Add(signNote(f, checkpointBody(testOrigin, 5, fx.root)+"ext\n", fx.key))
	f.Add(signNote(f, strings.Replace(checkpointBody(testOrigin, 5, fx.root), "\n5\n", "\n05\n", 1), fx.key))
	f.Add(signNote(f, checkpointBody("example.com/other", 5, fx.root), fx.key))
	f.Add([]byte(checkpointBody(testOrigin, 5, fx.root)))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := client.ParseCheckpoint(data, fx.key.verifier)
		if err != nil {
			if cp != nil {
				t.Fatalf("checkpoint returned with error %v", err)
			}
			return
		}
		if cp.Origin != fx.key.verifier.Name() {
			t.Fatalf("origin %q is not the verifier's name", cp.Origin)
		}
		if !bytes.Equal(cp.Raw, data) {
			t.Fatal("Raw is not the input")
		}
		body := string(log.Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Root[:]}.Marshal())
		if !strings.HasPrefix(cp.Note.Text, body) {
			t.Fatalf("note text %q does not start with the canonical body %q", cp.Note.Text, body)
		}
		signed := false
		for _, s := range cp.Note.Sigs {
			if s.Name == fx.key.verifier.Name() && s.Hash == fx.key.verifier.KeyHash() {
				signed = true
			}
		}
		if !signed {
			t.Fatalf("accepted without a log signature: %+v", cp.Note.Sigs)
		}
		// The fuzzer cannot forge signatures: only a body the test signed
		// can verify, so the tree's own size and root must come back.
		if cp.Size != 5 || cp.Root != fx.root {
			t.Fatalf("a checkpoint body the test never signed verified: %q", cp.Note.Text)
		}
	})
}

// FuzzParsePolicy: any bytes as a witness policy (C2SP tlog-policy) give a
// policy or an error, never a panic; a parsed policy checks a checkpoint
// without panicking, and never accepts one with no cosignature (every
// threshold is at least 1 and "quorum none" is refused).
func FuzzParsePolicy(f *testing.F) {
	fx := fuzzFixture(f)
	// Fixed cosignature (0x04) verifier keys, so every fuzz worker has the
	// same seeds.
	k1 := "w1.example+2f4fa062+BB+hb3x2UXbzj7DqmwcVUi9l83WcJbw8sbW+KiFgm+7a"
	k2 := "w2.example+72efb84b+BKv4oze4ZDCXq5FkIBHp0RHlRkbJwCDihUEUd1JYnvWE"
	f.Add([]byte("witness w1 " + k1 + " https://w1.example/\nquorum w1\n"))
	f.Add([]byte("witness w1 " + k1 + " https://w1.example/\nwitness w2 " + k2 + " https://w2.example/\ngroup g 1 w1 w2\nquorum g\n"))
	f.Add([]byte("quorum none\n"))
	f.Add([]byte("witness w1 notakey http://x/\nquorum w1\n"))
	f.Add([]byte("# spec\n  witness\tw1 " + k1 + "\nwitness w2 " + k2 + "\ngroup a any w1\ngroup b all a w2\nquorum b\n"))
	f.Add([]byte("witness w1 " + k1 + "\ngroup g 2 w1 w1\nquorum g\n"))
	f.Add([]byte{})
	cp, err := client.ParseCheckpoint(fx.checkpoint, fx.key.verifier)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := client.ParsePolicy(data)
		if err != nil {
			if p != nil {
				t.Fatalf("policy returned with error %v", err)
			}
			return
		}
		if p.Check(cp) == nil {
			t.Fatalf("policy %q accepts a checkpoint without cosignatures", data)
		}
	})
}
