package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// maxProofLines is the most consistency-proof lines a request may carry
// (C2SP tlog-witness: a proof for a tree of up to 2^63 entries).
const maxProofLines = 63

// request is a C2SP tlog-witness add-checkpoint request.
type request struct {
	// Old is the size of the checkpoint the client believes this witness
	// last cosigned for the origin (0 if none).
	Old uint64
	// Proof is the RFC 6962 consistency proof from Old to the checkpoint's
	// size, empty when Old is 0 or equal to the size.
	Proof [][32]byte
	// Checkpoint is the signed checkpoint note, as sent.
	Checkpoint []byte
}

// Marshal encodes the request as its HTTP body.
func (r *request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.Old)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// parseRequest parses an add-checkpoint request body: "old <N>\n", 0 to 63
// base64 proof lines, an empty line, then the checkpoint note. Numbers and
// hashes must be canonical, so an accepted body re-encodes to itself. The
// checkpoint itself is not parsed here (see parseSignedCheckpoint).
func parseRequest(body []byte) (*request, error) {
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, errors.New(`request must start with a line "old <size>"`)
	}
	num, found := bytes.CutPrefix(line, []byte("old "))
	if !found {
		return nil, fmt.Errorf(`request must start with "old <size>", got %q`, truncate(string(line)))
	}
	old, err := parseDecimal(string(num))
	if err != nil {
		return nil, fmt.Errorf("old size: %w", err)
	}
	r := &request{Old: old}
	if r.Proof, r.Checkpoint, err = parseProofAndCheckpoint(rest); err != nil {
		return nil, err
	}
	return r, nil
}

// parseProofAndCheckpoint reads what add-checkpoint and sign-subtree
// requests end with: consistency proof lines (at most maxProofLines), an
// empty line, and the checkpoint.
func parseProofAndCheckpoint(rest []byte) (proof [][32]byte, checkpoint []byte, err error) {
	for {
		var line []byte
		var ok bool
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, nil, errors.New("request has no empty line between the consistency proof and the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(proof) == maxProofLines {
			return nil, nil, fmt.Errorf("consistency proof has more than %d lines", maxProofLines)
		}
		h, err := decodeHash(string(line))
		if err != nil {
			return nil, nil, fmt.Errorf("consistency proof line %d: %w", len(proof)+1, err)
		}
		proof = append(proof, h)
	}
	if len(rest) == 0 {
		return nil, nil, errors.New("request has no checkpoint after the empty line")
	}
	return proof, rest, nil
}
