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
