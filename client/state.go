package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/durable"
)

// ErrVerification is wrapped by every error that means the log (or a
// witness) showed something that does not verify, as opposed to an error
// reaching it: errors.Is(err, ErrVerification).
var ErrVerification = errors.New("verification failed")

// RollbackError is returned when a log shows a checkpoint smaller than one
// already trusted: the log went back in time (or is showing a stale view).
type RollbackError struct {
	Origin      string
	TrustedSize uint64
	TrustedRoot [32]byte
	SeenSize    uint64
	SeenRoot    [32]byte
}

func (e *RollbackError) Error() string {
	return fmt.Sprintf("rollback: log %q shows size %d (root %x), but size %d (root %x) is already trusted",
		e.Origin, e.SeenSize, e.SeenRoot, e.TrustedSize, e.TrustedRoot)
}

func (e *RollbackError) Is(target error) bool { return target == ErrVerification }

// ForkError is returned when a log shows a checkpoint that cannot extend the
// trusted one: same size with another root, or a consistency proof that
// fails. Err, when set, is why the proof failed.
type ForkError struct {
	Origin      string
	TrustedSize uint64
	TrustedRoot [32]byte
	SeenSize    uint64
	SeenRoot    [32]byte
	Err         error
}

func (e *ForkError) Error() string {
	if e.SeenSize == e.TrustedSize {
		return fmt.Sprintf("fork: log %q shows root %x at size %d, but the trusted root at that size is %x",
			e.Origin, e.SeenRoot, e.SeenSize, e.TrustedRoot)
	}
	return fmt.Sprintf("fork: log %q shows size %d (root %x), which is not consistent with the trusted size %d (root %x): %v",
		e.Origin, e.SeenSize, e.SeenRoot, e.TrustedSize, e.TrustedRoot, e.Err)
}

func (e *ForkError) Is(target error) bool { return target == ErrVerification }
func (e *ForkError) Unwrap() error        { return e.Err }

// ConsistencyProver returns a proof that the tree of size from is a prefix
// of the tree of size to. (*TileLog).ConsistencyProof is one, over the
// public tlog-tiles API.
type ConsistencyProver func(ctx context.Context, from, to uint64) ([][]byte, error)

// StateStore keeps the latest verified checkpoint of one log in a directory
// that may hold the state of many logs (a file per origin, named by the
// lowercase hex SHA-256 of the origin, plus ".checkpoint"). A new checkpoint
// replaces the stored one only once it is proven consistent with it; the
// file is replaced atomically and durably.
//
// A StateStore is safe for concurrent use, also by several processes
// sharing the directory: Update holds an advisory lock (flock, on Unix) on
// a ".lock" file beside the checkpoint from reading the trusted checkpoint
// to replacing it, so two updates never interleave.
type StateStore struct {
	dir      string
	verifier note.Verifier
	prove    ConsistencyProver
	mu       sync.Mutex
}

// NewStateStore opens (creating it if needed) the state directory dir for
// the log whose checkpoints verifier verifies; prove fetches consistency
// proofs from that log.
func NewStateStore(dir string, verifier note.Verifier, prove ConsistencyProver) (*StateStore, error) {
	if verifier == nil || prove == nil {
		return nil, errors.New("state store: a verifier and a prover are required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	return &StateStore{dir: dir, verifier: verifier, prove: prove}, nil
}

// Path is the file holding the log's trusted checkpoint.
func (s *StateStore) Path() string {
	h := sha256.Sum256([]byte(s.verifier.Name()))
	return filepath.Join(s.dir, hex.EncodeToString(h[:])+".checkpoint")
}

// Trusted returns the trusted checkpoint, or nil when there is none yet.
// The stored checkpoint's signature is verified again.
func (s *StateStore) Trusted() (*Checkpoint, error) {
	raw, err := os.ReadFile(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trusted state: %w", err)
	}
	cp, err := ParseCheckpoint(raw, s.verifier)
	if err != nil {
		return nil, fmt.Errorf("trusted state %s: %w", s.Path(), err)
	}
	return cp, nil
}

// Update makes cp (a checkpoint whose signature verified, see
// ParseCheckpoint) the trusted checkpoint, after proving it consistent with
// the one trusted so far. It returns the previously trusted checkpoint (nil
// on first use). A smaller checkpoint is a *RollbackError; the same size
// with another root, or a failing proof, is a *ForkError; in both cases the
// trusted state is left as it was. An error fetching the proof is returned
// as is (often an *UnreachableError) and also leaves the state alone.
// A checkpoint equal in size and root to the trusted one is accepted
// without rewriting the file.
func (s *StateStore) Update(ctx context.Context, cp *Checkpoint) (*Checkpoint, error) {
	if cp == nil {
		return nil, errors.New("trusted state: no checkpoint")
	}
	if cp.Origin != s.verifier.Name() {
		return nil, fmt.Errorf("trusted state: checkpoint is for log %q, this state is for %q", cp.Origin, s.verifier.Name())
	}
	// Never trust a Checkpoint value built by hand: verify the raw note.
	if _, err := ParseCheckpoint(cp.Raw, s.verifier); err != nil {
		return nil, fmt.Errorf("trusted state: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(ctx, strings.TrimSuffix(s.Path(), ".checkpoint")+".lock")
	if err != nil {
		return nil, fmt.Errorf("trusted state: %w", err)
	}
	defer unlock()
	old, err := s.Trusted()
	if err != nil {
		return nil, err
	}
	if old != nil {
		if err := s.check(ctx, old, cp); err != nil {
			return old, err
		}
		if old.Size == cp.Size {
			return old, nil
		}
	}
	if err := durable.WriteAtomic(s.Path(), cp.Raw, 0o600); err != nil {
		return old, fmt.Errorf("trusted state: saving: %w", err)
	}
	return old, nil
}

// CheckConsistent checks that newer extends older, fetching a proof with
// prove when the sizes differ. It returns a *RollbackError or *ForkError
// when it does not.
func CheckConsistent(ctx context.Context, older, newer *Checkpoint, prove ConsistencyProver) error {
	seen := func(err error) *ForkError {
		return &ForkError{Origin: newer.Origin, TrustedSize: older.Size, TrustedRoot: older.Root, SeenSize: newer.Size, SeenRoot: newer.Root, Err: err}
	}
	switch {
	case newer.Size < older.Size:
		return &RollbackError{Origin: newer.Origin, TrustedSize: older.Size, TrustedRoot: older.Root, SeenSize: newer.Size, SeenRoot: newer.Root}
	case newer.Size == older.Size:
		if newer.Root != older.Root {
			return seen(nil)
		}
		return nil
	case older.Size == 0:
		return nil
	}
	p, err := prove(ctx, older.Size, newer.Size)
	if err != nil {
		var ue *UnreachableError
		if errors.As(err, &ue) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("fetching the consistency proof %d -> %d: %w", older.Size, newer.Size, err)
		}
		// The log could not build a proof from what it serves (a tile is
		// missing or malformed): it cannot show the two are consistent.
		return seen(fmt.Errorf("no consistency proof: %v", err))
	}
	if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Root[:], newer.Root[:]); err != nil {
		// The merkle package prints roots as multi-line byte lists.
		return seen(errors.New("the consistency proof does not verify: " + strings.Join(strings.Fields(err.Error()), " ")))
	}
	return nil
}

func (s *StateStore) check(ctx context.Context, old, cp *Checkpoint) error {
	if bytes.Equal(old.Raw, cp.Raw) {
		return nil
	}
	return CheckConsistent(ctx, old, cp, s.prove)
}
