package witness

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"net/http"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// sign-subtree (C2SP tlog-witness, optional API): a client sends a subtree
// [start, end) of a log, its hash, a subtree consistency proof
// (draft-ietf-plants-merkle-tree-certs-03 §4.4) and a checkpoint this
// witness cosigned; if the proof shows the subtree inside that checkpoint's
// tree, the witness answers with an ML-DSA-44 subtree cosignature
// (tlog-cosignature subtree/v1) with timestamp 0. Ed25519 cosignature/v1
// cannot sign subtrees, so the answer has the ML-DSA-44 line alone. The
// witness's own cosignature on the checkpoint is what it checks, not its
// state: it cosigned only checkpoints consistent with everything it saw.
//
// Request body:
//
//	subtree <start> <end>
//	<base64 subtree hash>
//	<0 to 63 base64 proof lines>
//	<empty line>
//	<checkpoint signed by this witness>

// subtreeRequest is a parsed sign-subtree request.
type subtreeRequest struct {
	start, end uint64
	hash       [32]byte
	proof      [][32]byte
	checkpoint []byte
}

// parseSubtreeRequest parses a sign-subtree body; numbers and hashes must
// be canonical, as in add-checkpoint.
func parseSubtreeRequest(body []byte) (*subtreeRequest, error) {
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, errors.New(`request must start with a line "subtree <start> <end>"`)
	}
	rng, found := bytes.CutPrefix(line, []byte("subtree "))
	a, b, two := bytes.Cut(rng, []byte(" "))
	if !found || !two {
		return nil, fmt.Errorf(`request must start with "subtree <start> <end>", got %q`, truncate(string(line)))
	}
	r := &subtreeRequest{}
	var err error
	if r.start, err = parseDecimal(string(a)); err != nil {
		return nil, fmt.Errorf("subtree start: %w", err)
	}
	if r.end, err = parseDecimal(string(b)); err != nil {
		return nil, fmt.Errorf("subtree end: %w", err)
	}
	if line, rest, ok = bytes.Cut(rest, []byte("\n")); !ok {
		return nil, errors.New("request has no subtree hash line")
	}
	if r.hash, err = decodeHash(string(line)); err != nil {
		return nil, fmt.Errorf("subtree hash: %w", err)
	}
	if r.proof, r.checkpoint, err = parseProofAndCheckpoint(rest); err != nil {
		return nil, err
	}
	return r, nil
}

// validSubtree reports whether [start, end) is a subtree
// (draft-ietf-plants-merkle-tree-certs-03 §4.1): start < end and start a
// multiple of BIT_CEIL(end - start).
func validSubtree(start, end uint64) bool {
	if start >= end {
		return false
	}
	size := end - start
	if size > 1<<63 { // BIT_CEIL(size) is 2^64: only 0 is a multiple below it
		return start == 0
	}
	return start%(uint64(1)<<bits.Len64(size-1)) == 0 // BIT_CEIL(size)
}

// verifySubtreeConsistency checks a subtree consistency proof that the
// subtree [start, end) with hash nodeHash is in the tree of size n with
// root rootHash, by the procedure of draft-ietf-plants-merkle-tree-certs-03
// §4.4.3, step by step.
func verifySubtreeConsistency(start, end, n uint64, proof [][32]byte, nodeHash, rootHash [32]byte) bool {
	if !validSubtree(start, end) || end > n {
		return false
	}
	fn, sn, tn := start, end-1, n-1
	if sn == tn {
		for fn != sn {
			fn, sn, tn = fn>>1, sn>>1, tn>>1
		}
	} else {
		for fn != sn && sn&1 == 1 {
			fn, sn, tn = fn>>1, sn>>1, tn>>1
		}
	}
	var fr, sr [32]byte
	if fn == sn {
		fr, sr = nodeHash, nodeHash
	} else {
		if len(proof) == 0 {
			return false
		}
		fr, sr = proof[0], proof[0]
		proof = proof[1:]
	}
	for _, c := range proof {
		if tn == 0 {
			return false
		}
		if sn&1 == 1 || sn == tn {
			if fn < sn {
				fr = hashChildren(c, fr)
			}
			sr = hashChildren(c, sr)
			for sn&1 == 0 {
				fn, sn, tn = fn>>1, sn>>1, tn>>1
			}
		} else {
			sr = hashChildren(sr, c)
		}
		fn, sn, tn = fn>>1, sn>>1, tn>>1
	}
	return tn == 0 && fr == nodeHash && sr == rootHash
}

// hashChildren is RFC 6962's interior node hash: SHA-256(0x01 || l || r).
func hashChildren(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// Refusal reasons of sign-subtree (the reason label of
// stele_witness_sign_subtree_requests_total); reasonMalformed,
// reasonTooLarge, reasonUnknownOrigin and reasonInternal are shared with
// add-checkpoint.
const (
	reasonBadSubtree      = "bad_subtree"       // 400: not a subtree, or it ends past the checkpoint
	reasonBadSubtreeProof = "bad_subtree_proof" // 422
	reasonNotCosigned     = "not_cosigned"      // 403: no valid cosignature by this witness
)

// SignSubtree handles a sign-subtree request body (C2SP tlog-witness). On
// success it returns the subtree cosignature line; otherwise an *Error
// with the status the spec assigns.
func (w *Witness) SignSubtree(body []byte) ([]byte, error) {
	sig, err := w.signSubtree(body)
	var e *Error
	if err != nil && !errors.As(err, &e) {
		e = refuse(http.StatusInternalServerError, reasonInternal, "%v", err)
		err = e
		w.log.Error("sign-subtree failed", "err", e.Msg)
	}
	w.m.observeSubtree(e)
	return sig, err
}

func (w *Witness) signSubtree(body []byte) ([]byte, error) {
	// 400: the request, the subtree and the checkpoint's form.
	req, err := parseSubtreeRequest(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	cp, err := parseSignedCheckpoint(req.checkpoint)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	if !validSubtree(req.start, req.end) {
		return nil, refuse(http.StatusBadRequest, reasonBadSubtree, "[%d, %d) is not a subtree: start must be below end and a multiple of the smallest power of two at least end-start", req.start, req.end)
	}
	if req.end > cp.Size {
		return nil, refuse(http.StatusBadRequest, reasonBadSubtree, "the subtree ends at %d, past the checkpoint's size %d", req.end, cp.Size)
	}
	// 422: the proof.
	if !verifySubtreeConsistency(req.start, req.end, cp.Size, req.proof, req.hash, cp.Root) {
		return nil, refuse(http.StatusUnprocessableEntity, reasonBadSubtreeProof, "the subtree consistency proof does not show [%d, %d) with that hash in the checkpoint's tree of size %d", req.start, req.end, cp.Size)
	}
	// 404: the origin.
	if w.verifiers(cp.Origin) == nil {
		return nil, refuse(http.StatusNotFound, reasonUnknownOrigin, "this witness does not witness the log %q", cp.Origin)
	}
	// 403: this witness's own cosignature on the checkpoint.
	own, err := w.key.verifiers()
	if err != nil {
		return nil, err
	}
	if _, err := cp.verify(own); err != nil {
		return nil, refuse(http.StatusForbidden, reasonNotCosigned, "the checkpoint carries no valid cosignature by this witness (%s): send one it returned from add-checkpoint: %v", w.Name(), err)
	}
	if w.key.mldsa == nil {
		return nil, errors.New("no ML-DSA-44 key to sign subtrees with")
	}
	sig, err := w.key.mldsa.signSubtree(0, cp.Origin, req.start, req.end, req.hash)
	if err != nil {
		return nil, err
	}
	return appendSignatureLine(nil, w.key.mldsa.name, w.key.mldsa.id, sig), nil
}

// verifiers are the witness's own cosignature verifiers (Ed25519 and
// ML-DSA-44), built once.
func (k *witnessKey) verifiers() (note.Verifiers, error) {
	k.ownOnce.Do(func() {
		var vs []note.Verifier
		for _, vkey := range []string{k.vkey, k.mvkey} {
			if vkey == "" {
				continue
			}
			v, err := fnote.NewVerifierForCosignatureV1(vkey)
			if err != nil {
				k.ownErr = fmt.Errorf("witness verifier key %s: %w", vkey, err)
				return
			}
			vs = append(vs, v)
		}
		k.own = note.VerifierList(vs...)
	})
	return k.own, k.ownErr
}

func (w *Witness) serveSignSubtree(rw http.ResponseWriter, r *http.Request) {
	body, e := readBody(rw, r)
	if e != nil {
		w.m.observeSubtree(e)
		writeError(rw, e)
		return
	}
	sig, err := w.SignSubtree(body)
	writeResult(rw, sig, err)
}
