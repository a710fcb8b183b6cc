package client

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
)

// Checkpoint is a checkpoint whose log signature verified.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte
	// Note is the signed note, with every signature it carries.
	Note *note.Note
	// Raw is the checkpoint as received.
	Raw []byte
}

// ParseCheckpoint verifies a C2SP checkpoint's log signature and parses it
// strictly: the origin must be the verifier's name, the size canonical
// decimal and the root 32 bytes. logVerifier may be a *LogVerifier: then a
// signature by any of the log's keys will do (all of them after
// RequireAll), a signature by one of them that fails is refused, and
// extension lines are refused unless an Ed25519 signature, which covers
// them, verified (an ML-DSA-44 one signs only origin, size and root).
func ParseCheckpoint(raw []byte, logVerifier note.Verifier) (*Checkpoint, error) {
	lv := asLogVerifier(logVerifier)
	n, err := note.Open(raw, note.VerifierList(lv.keys...))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", explainSignature(raw, lv, fmt.Errorf("failed to verify signatures on checkpoint: %w", err)))
	}
	whole := false
	for i, k := range lv.keys {
		signed := false
		for _, s := range n.Sigs {
			if s.Name == k.Name() && s.Hash == k.KeyHash() {
				signed = true
			}
		}
		if signed && lv.wholeNote[i] {
			whole = true
		}
		if !signed && lv.requireAll {
			return nil, fmt.Errorf("checkpoint: it carries no %s signature by the log key %s+%08x, and every log key is required", algName(lv.algs[i]), k.Name(), k.KeyHash())
		}
	}
	var cp log.Checkpoint
	ext, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if cp.Origin != lv.Name() {
		return nil, fmt.Errorf("checkpoint: got Origin %q but expected %q (the log key's name)", cp.Origin, lv.Name())
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("checkpoint: root hash is %d bytes, want 32", len(cp.Hash))
	}
	if canon := string(cp.Marshal()) + string(ext); canon != n.Text {
		return nil, errors.New("checkpoint: body is not in canonical form (leading zeros or bad base64?)")
	}
	if len(ext) > 0 && !whole {
		return nil, errors.New("checkpoint: it has extension lines but only ML-DSA-44 log signatures, which do not cover them")
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: [32]byte(cp.Hash), Note: n, Raw: raw}, nil
}

// explainSignature turns "note has no verifiable signatures" into which
// origin and keys the checkpoint is signed by and which keys were given.
func explainSignature(raw []byte, lv *LogVerifier, err error) error {
	var ue *note.UnverifiedNoteError
	if _, oerr := note.Open(raw, note.VerifierList(lv.keys...)); !errors.As(oerr, &ue) {
		return err
	}
	var by, given []string
	for _, s := range ue.Note.UnverifiedSigs {
		by = append(by, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	for _, k := range lv.keys {
		given = append(given, fmt.Sprintf("%s+%08x", k.Name(), k.KeyHash()))
	}
	origin, _, _ := strings.Cut(ue.Note.Text, "\n")
	signed, what := "key", "the key given is"
	if len(by) > 1 {
		signed = "keys"
	}
	if len(given) > 1 {
		what = "the keys given are"
	}
	return fmt.Errorf("the checkpoint of origin %q is signed by %s %s, but %s %s: is it this log's log.pub? (%w)",
		origin, signed, strings.Join(by, ", "), what, strings.Join(given, ", "), err)
}

// Receipt is a verified receipt: a leaf proven to be in a signed checkpoint.
type Receipt struct {
	Index      uint64
	Leaf       *leaf.Leaf
	LeafBytes  []byte
	Checkpoint *Checkpoint
}

// ParseReceiptProof parses a C2SP tlog-proof strictly: it must be exactly
// what a canonical encoder would produce.
func ParseReceiptProof(b []byte) (*proof.TLogProof, error) {
	var p proof.TLogProof
	if err := p.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("receipt is not a c2sp.org/tlog-proof@v1: %w", err)
	}
	if !bytes.Equal(p.Marshal(), b) {
		return nil, errors.New("receipt is not in canonical tlog-proof form (stray whitespace, missing final newline or extra lines)")
	}
	return &p, nil
}

// VerifyReceipt checks a Stele receipt: a C2SP tlog-proof whose extra data
// is the leaf. It checks, in order, that the leaf parses as leaf v1, that
// the checkpoint carries a valid log signature, and that the inclusion proof
// leads from the leaf hash to the checkpoint's root.
func VerifyReceipt(b []byte, logVerifier note.Verifier) (*Receipt, error) {
	p, err := ParseReceiptProof(b)
	if err != nil {
		return nil, err
	}
	if len(p.ExtraData) == 0 {
		return nil, errors.New("receipt carries no leaf (its extra line is missing)")
	}
	l, err := leaf.Unmarshal(p.ExtraData)
	if err != nil {
		return nil, fmt.Errorf("receipt leaf: %w", err)
	}
	cp, err := ParseCheckpoint(p.Checkpoint, logVerifier)
	if err != nil {
		return nil, fmt.Errorf("receipt %w", err)
	}
	if err := VerifyInclusion(cp, p.Index, p.ExtraData, p.Hashes); err != nil {
		return nil, err
	}
	return &Receipt{Index: p.Index, Leaf: l, LeafBytes: p.ExtraData, Checkpoint: cp}, nil
}

// VerifyInclusion checks that leafBytes sit at index in the tree cp commits to.
func VerifyInclusion(cp *Checkpoint, index uint64, leafBytes []byte, hashes [][32]byte) error {
	if index >= cp.Size {
		return fmt.Errorf("inclusion: index %d is not in a tree of size %d", index, cp.Size)
	}
	path := make([][]byte, len(hashes))
	for i := range hashes {
		path[i] = hashes[i][:]
	}
	lh := rfc6962.DefaultHasher.HashLeaf(leafBytes)
	root, err := mproof.RootFromInclusionProof(rfc6962.DefaultHasher, index, cp.Size, lh, path)
	if err != nil {
		return fmt.Errorf("inclusion: the proof does not lead from leaf %d to the checkpoint's root: it does not fit a tree of size %d (%v)", index, cp.Size, err)
	}
	if !bytes.Equal(root, cp.Root[:]) {
		return fmt.Errorf("inclusion: the proof does not lead from leaf %d to the checkpoint's root: it leads to %x, the checkpoint says %x", index, root, cp.Root)
	}
	return nil
}

// VerifyEvent checks that an event's payload is the one the receipt's leaf
// commits to: same leaf, salted digest and size match, payload parses; and,
// when the leaf carries a producer signature, that it verifies over the
// leaf's fields and the payload's format and record (Signer then names
// the key).
func VerifyEvent(r *Receipt, leafBytes, salt, payloadBytes []byte) (*payload.Payload, error) {
	if !bytes.Equal(leafBytes, r.LeafBytes) {
		return nil, errors.New("event: its leaf is not the receipt's leaf")
	}
	if err := r.Leaf.VerifyPayload(salt, payloadBytes); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	p, err := payload.Unmarshal(payloadBytes)
	if err != nil {
		return nil, fmt.Errorf("event payload: %w", err)
	}
	if r.Leaf.Signature != nil {
		if err := r.Leaf.VerifySignature(p.Format, p.Record); err != nil {
			return nil, fmt.Errorf("event: producer signature by key %s: %w", r.Leaf.Signature.KeyID(), err)
		}
	}
	return p, nil
}

// Signer is the key id (leaf.Signature.KeyID: the base64 public key) of the
// producer signature in the receipt's leaf, or "" when it has none. It says
// who signed only once VerifyEvent has checked the signature.
func (r *Receipt) Signer() string {
	if r.Leaf.Signature == nil {
		return ""
	}
	return r.Leaf.Signature.KeyID()
}
