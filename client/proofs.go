package client

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// VerifiedCheckpoint fetches the latest checkpoint over gRPC and verifies
// its log signature and, when policy is not nil, its witness quorum.
func (c *Client) VerifiedCheckpoint(ctx context.Context, logVerifier note.Verifier, policy *Policy) (*Checkpoint, error) {
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint(raw, logVerifier)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	if policy != nil {
		if err := policy.Check(cp); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrVerification, err)
		}
	}
	return cp, nil
}

// ConsistencyProof fetches a consistency proof over gRPC; it is a
// ConsistencyProver for NewStateStore. The proof is not verified here
// (CheckConsistent and StateStore.Update do). An Unavailable or
// DeadlineExceeded status is returned as an *UnreachableError.
func (c *Client) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	resp, err := c.Log.GetConsistencyProof(ctx, &stelev1.GetConsistencyProofRequest{FromSize: from, ToSize: to})
	if err != nil {
		if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
			return nil, &UnreachableError{URL: c.conn.Target(), Err: err}
		}
		return nil, fmt.Errorf("get consistency proof %d -> %d: %w", from, to, err)
	}
	if resp.FromSize != from || resp.ToSize != to {
		return nil, fmt.Errorf("get consistency proof %d -> %d: the server answered for %d -> %d", from, to, resp.FromSize, resp.ToSize)
	}
	return resp.Hashes, nil
}

// inclusionProofsPerCall is the server's limit on the indexes of one
// GetInclusionProofs call (server.MaxInclusionProofsPerCall).
const inclusionProofsPerCall = 1000

// VerifiedInclusionProofs fetches over gRPC the inclusion proofs of many
// entries in the tree cp commits to (GetInclusionProofs, in calls of at
// most 1,000 indexes) and verifies each against cp's root: leaves[i] must
// be the bytes of the entry at indexes[i], and cp a verified checkpoint
// (VerifiedCheckpoint, ParseCheckpoint). proofs[i] is the audit path of
// indexes[i]. A proof that does not lead to cp's root, or an answer for
// other indexes or another tree, is an ErrVerification naming the entry.
func (c *Client) VerifiedInclusionProofs(ctx context.Context, cp *Checkpoint, indexes []uint64, leaves [][]byte) (proofs [][][32]byte, err error) {
	if len(indexes) != len(leaves) {
		return nil, fmt.Errorf("inclusion proofs: %d indexes but %d leaves", len(indexes), len(leaves))
	}
	proofs = make([][][32]byte, 0, len(indexes))
	for start := 0; start < len(indexes); start += inclusionProofsPerCall {
		end := min(start+inclusionProofsPerCall, len(indexes))
		resp, err := c.Log.GetInclusionProofs(ctx, &stelev1.GetInclusionProofsRequest{Indexes: indexes[start:end], TreeSize: cp.Size})
		if err != nil {
			return nil, fmt.Errorf("get inclusion proofs of %d entries in a tree of %d: %w", end-start, cp.Size, err)
		}
		if resp.TreeSize != cp.Size || len(resp.Proofs) != end-start {
			return nil, fmt.Errorf("%w: asked for %d inclusion proofs in a tree of %d, the server answered %d in a tree of %d", ErrVerification, end-start, cp.Size, len(resp.Proofs), resp.TreeSize)
		}
		for i, p := range resp.Proofs {
			idx := indexes[start+i]
			if p.GetIndex() != idx || p.GetTreeSize() != cp.Size {
				return nil, fmt.Errorf("%w: asked for the inclusion proof of entry %d in a tree of %d, got entry %d's in a tree of %d", ErrVerification, idx, cp.Size, p.GetIndex(), p.GetTreeSize())
			}
			hs, err := toHashes(p.Hashes)
			if err != nil {
				return nil, fmt.Errorf("%w: inclusion proof of entry %d: %v", ErrVerification, idx, err)
			}
			if err := VerifyInclusion(cp, idx, leaves[start+i], hs); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrVerification, err)
			}
			proofs = append(proofs, hs)
		}
	}
	return proofs, nil
}
