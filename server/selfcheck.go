package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The server checks every proof it hands out against the root of a signed
// checkpoint before it leaves: a tile corrupted on disk, in the object store
// or in the tile cache must make the server refuse, never answer with a
// proof that a client would reject (or, worse, one it cannot check).
//
// The signed root is the latest published checkpoint's. A proof for an
// older tree size is checked against that size's root, which is first
// derived from the tiles (the inclusion path of its last leaf) and then
// proven consistent with the signed root by a consistency proof built from
// the same tiles: every node of a consistency proof enters the new root, so
// a corrupted node cannot leave both roots right. Roots proven this way are
// kept (a root of a size never changes), so a size is proven once.

// selfCheckFailure is a proof, built from the tiles, that does not verify
// against the signed checkpoint.
type selfCheckFailure struct {
	proof string // inclusion, consistency or root: the metric's label
	err   error
}

func (f *selfCheckFailure) Error() string { return f.err.Error() }

// checked turns a failed self-check into an Internal status, counted and
// logged at ERROR (it means the server's copy of the log is damaged), and
// any other error from building the proof into Internal naming what.
func (s *Server) checked(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var f *selfCheckFailure
	if !errors.As(err, &f) {
		return status.Errorf(codes.Internal, "building %s: %v", what, err)
	}
	s.m.selfCheck.WithLabelValues(f.proof).Inc()
	s.log.Error("self-check failed: refusing to hand out a proof that does not verify against the signed checkpoint; the log's tiles or the tile cache are damaged",
		"proof", what, "err", f.err)
	return status.Errorf(codes.Internal, "%s does not verify against the signed checkpoint (the server's copy of the log is damaged; it was not handed out): %v", what, f.err)
}

// trustedRoot returns the root hash of the tree of the given size, proven
// consistent with the signed checkpoint cp (size ≤ cp.size).
func (c *cachingReader) trustedRoot(ctx context.Context, size uint64, cp *published) ([]byte, error) {
	switch {
	case size == cp.size:
		return cp.root, nil
	case size == 0:
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	if r, ok := c.roots.Get(size); ok {
		return r, nil
	}
	// The root of size from the tiles: the inclusion path of its last leaf
	// folded with that leaf's hash.
	last, err := c.node(ctx, compact.NewNodeID(0, size-1), cp.size)
	if err != nil {
		return nil, fmt.Errorf("reading the hash of leaf %d: %w", size-1, err)
	}
	path, err := c.inclusionProof(ctx, size-1, size, cp.size)
	if err != nil {
		return nil, fmt.Errorf("building the inclusion path of leaf %d: %w", size-1, err)
	}
	root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, size-1, size, last, path)
	if err != nil {
		return nil, &selfCheckFailure{"root", fmt.Errorf("root of size %d: %w", size, err)}
	}
	cons, err := c.consistencyProof(ctx, size, cp.size, cp.size)
	if err != nil {
		return nil, fmt.Errorf("building consistency proof %d..%d: %w", size, cp.size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.size, cons, root, cp.root); err != nil {
		return nil, &selfCheckFailure{"root", fmt.Errorf("the root of size %d is not consistent with the checkpoint of size %d: %w", size, cp.size, err)}
	}
	c.roots.Add(size, root)
	return root, nil
}

// checkInclusion verifies an inclusion proof of idx in a tree of size,
// built from the tiles, against the signed checkpoint cp. leafHash is the
// hash of the leaf as read from its entry bundle, or nil to take it from the
// level-0 tile (a wrong tile hash at idx makes the path fold to a wrong
// root, so this still catches it).
func (c *cachingReader) checkInclusion(ctx context.Context, idx, size uint64, leafHash []byte, hashes [][]byte, cp *published) error {
	root, err := c.trustedRoot(ctx, size, cp)
	if err != nil {
		return err
	}
	if leafHash == nil {
		if leafHash, err = c.node(ctx, compact.NewNodeID(0, idx), cp.size); err != nil {
			return fmt.Errorf("reading the hash of leaf %d: %w", idx, err)
		}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, leafHash, hashes, root); err != nil {
		return &selfCheckFailure{"inclusion", fmt.Errorf("inclusion of %d in %d: %w", idx, size, err)}
	}
	return nil
}

// checkConsistency verifies a consistency proof from..to, built from the
// tiles, against the signed checkpoint cp (to ≤ cp.size).
func (c *cachingReader) checkConsistency(ctx context.Context, from, to uint64, hashes [][]byte, cp *published) error {
	if from == 0 || from == to {
		if len(hashes) != 0 {
			return &selfCheckFailure{"consistency", fmt.Errorf("consistency %d..%d has %d hashes, want none", from, to, len(hashes))}
		}
		return nil
	}
	r1, err := c.trustedRoot(ctx, from, cp)
	if err != nil {
		return err
	}
	r2, err := c.trustedRoot(ctx, to, cp)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, hashes, r1, r2); err != nil {
		return &selfCheckFailure{"consistency", fmt.Errorf("consistency %d..%d: %w", from, to, err)}
	}
	return nil
}

// leafHashOf is the RFC 6962 leaf hash of a leaf's bytes.
func leafHashOf(lf []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(lf) }
