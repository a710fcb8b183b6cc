package client

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/payload"
)

// VerifiedEvent fetches the entry at index with its receipt and payload (the
// payload needs the reader role) and verifies all of it: the receipt's log
// signature and inclusion proof, the witness policy when one is given, and
// that the payload is the one the leaf commits to (salted digest and size).
// For an erased payload it returns the verified receipt and an *ErasedError.
func (c *Client) VerifiedEvent(ctx context.Context, index uint64, logVerifier note.Verifier, policy *Policy) (*Receipt, *payload.Payload, error) {
	raw, err := c.Receipt(ctx, index)
	if err != nil {
		return nil, nil, err
	}
	r, err := VerifyReceipt(raw, logVerifier)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	if r.Index != index {
		return nil, nil, fmt.Errorf("%w: asked for the receipt of entry %d, got entry %d's", ErrVerification, index, r.Index)
	}
	if policy != nil {
		if err := policy.Check(r.Checkpoint); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrVerification, err)
		}
	}
	ev, err := c.Event(ctx, index)
	if err != nil {
		return nil, nil, err
	}
	if ev.Index != index {
		return nil, nil, fmt.Errorf("%w: asked for event %d, got %d", ErrVerification, index, ev.Index)
	}
	if ev.Tombstone != nil {
		// The receipt verified; the payload is gone by an erasure.
		return r, nil, &ErasedError{Index: index, Tombstone: ev.Tombstone}
	}
	p, err := VerifyEvent(r, ev.Leaf, ev.Salt, ev.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	return r, p, nil
}
