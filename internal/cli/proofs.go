package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/stele-dev/stele/client"
)

// ExitUnreachable is the exit status of proof, consistency and monitor when
// the log (or a witness) could not be read at all.
const ExitUnreachable = 3

// exitError carries an exit status other than ExitFailure.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// ExitCode is the status the command exits with.
func (e exitError) ExitCode() int { return e.code }

// logError classifies an error from reading or verifying a log: not
// reachable (exit 3) or anything else (exit 1).
func logError(err error) error {
	var ue *client.UnreachableError
	if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		return exitError{ExitUnreachable, err}
	}
	return err
}

// tileFlags are the flags of the commands that read a log over tlog-tiles.
type tileFlags struct {
	logURL  *string
	keyPath *string
	allKeys *bool
	timeout *time.Duration
}

func addTileFlags(fs interface {
	String(string, string, string) *string
	Duration(string, time.Duration, string) *time.Duration
	Bool(string, bool, string) *bool
}) tileFlags {
	return tileFlags{
		logURL:  fs.String("log", "", "root URL of the log's tlog-tiles HTTP API, e.g. http://127.0.0.1:8080/"),
		keyPath: fs.String("log-key", "", "the log's verifier key: its file (log.pub) or the key itself (name+hash+key)"),
		allKeys: requireAllKeysFlag(fs),
		timeout: fs.Duration("timeout", 30*time.Second, "give up after this long"),
	}
}

func (f tileFlags) open() (*client.TileLog, error) {
	if *f.logURL == "" {
		return nil, usagef("--log URL is required")
	}
	if *f.keyPath == "" {
		return nil, usagef("--log-key FILE is required")
	}
	v, err := readLogKey(*f.keyPath, *f.allKeys)
	if err != nil {
		return nil, err
	}
	lg, err := client.NewTileLog(*f.logURL, v, nil)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return lg, nil
}

type hexHashes [][]byte

func (h hexHashes) MarshalJSON() ([]byte, error) {
	s := make([]string, len(h))
	for i := range h {
		s[i] = hex.EncodeToString(h[i])
	}
	return json.Marshal(s)
}

type treeHead struct {
	Size uint64 `json:"size"`
	Root string `json:"root"`
}

func head(size uint64, root [32]byte) treeHead { return treeHead{size, hex.EncodeToString(root[:])} }

type proofOutput struct {
	Origin     string    `json:"origin"`
	Index      uint64    `json:"index"`
	Size       uint64    `json:"size"`
	Root       string    `json:"root"`
	LeafHash   string    `json:"leaf_hash"`
	Leaf       string    `json:"leaf"`
	Inclusion  hexHashes `json:"inclusion"`
	Checkpoint treeHead  `json:"checkpoint"`
	// Consistency links Size to the checkpoint when --size is smaller.
	Consistency hexHashes `json:"consistency,omitempty"`
	Verified    bool      `json:"verified"`
}

func cmdProof(e *env, args []string) error {
	fs := newFlags("proof")
	tf := addTileFlags(fs)
	index := fs.Int64("index", -1, "the entry's index")
	size := fs.Uint64("size", 0, "prove inclusion in the tree of this size (default: the log's checkpoint), linked to the checkpoint by a consistency proof")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if *index < 0 {
		return usagef("--index N is required")
	}
	lg, err := tf.open()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *tf.timeout)
	defer cancel()
	cp, err := lg.Checkpoint(ctx)
	if err != nil {
		return logError(err)
	}
	s := *size
	if s == 0 {
		s = cp.Size
	}
	i := uint64(*index)
	switch {
	case s > cp.Size:
		return fmt.Errorf("%w: --size %d is beyond the log's checkpoint (size %d)", client.ErrVerification, s, cp.Size)
	case i >= s:
		return fmt.Errorf("%w: index %d is not in a tree of size %d", client.ErrVerification, i, s)
	}
	out := proofOutput{Origin: cp.Origin, Index: i, Size: s, Checkpoint: head(cp.Size, cp.Root)}
	entry, err := lg.Entry(ctx, i, s)
	if err != nil {
		return logError(err)
	}
	incl, err := lg.InclusionProof(ctx, i, s)
	if err != nil {
		return logError(err)
	}
	lh := rfc6962.DefaultHasher.HashLeaf(entry)
	root, err := mproof.RootFromInclusionProof(rfc6962.DefaultHasher, i, s, lh, incl)
	if err != nil {
		return fmt.Errorf("%w: the inclusion proof of entry %d does not fit a tree of size %d: %v", client.ErrVerification, i, s, err)
	}
	out.Leaf, out.LeafHash, out.Inclusion, out.Root = hex.EncodeToString(entry), hex.EncodeToString(lh), incl, hex.EncodeToString(root)
	if s == cp.Size {
		if [32]byte(root) != cp.Root {
			return fmt.Errorf("%w: entry %d and its inclusion proof lead to root %x, the checkpoint (size %d) says %x", client.ErrVerification, i, root, cp.Size, cp.Root)
		}
	} else {
		// The root at size s comes from the leaf and its path; the
		// consistency proof ties it to the signed checkpoint.
		cons, err := lg.ConsistencyProof(ctx, s, cp.Size)
		if err != nil {
			return logError(err)
		}
		if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, s, cp.Size, cons, root, cp.Root[:]); err != nil {
			return fmt.Errorf("%w: the tree of size %d holding entry %d (root %x) is not consistent with the checkpoint (size %d, root %x): %v", client.ErrVerification, s, i, root, cp.Size, cp.Root, err)
		}
		out.Consistency = cons
	}
	out.Verified = true
	if err := writeJSON(e, out); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "proof OK: entry %d is in %s at size %d (checkpoint size %d)\n", i, cp.Origin, s, cp.Size)
	return nil
}

type consistencyOutput struct {
	Origin   string    `json:"origin"`
	From     treeHead  `json:"from"`
	To       treeHead  `json:"to"`
	Proof    hexHashes `json:"proof"`
	Trusted  string    `json:"trusted,omitempty"`
	Verified bool      `json:"verified"`
}

func cmdConsistency(e *env, args []string) error {
	fs := newFlags("consistency")
	tf := addTileFlags(fs)
	from := fs.Int64("from-size", -1, "the older tree size (default with --state: the trusted checkpoint's)")
	to := fs.Uint64("to-size", 0, "the newer tree size (default: the log's checkpoint)")
	stateDir := fs.String("state", "", "trusted-state directory: prove the log's checkpoint consistent with the trusted one, then trust it")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if *stateDir == "" && *from < 0 {
		return usagef("--from-size N is required (or --state DIR)")
	}
	if *stateDir != "" && *to != 0 {
		return usagef("--to-size cannot be used with --state: the state moves to the log's checkpoint")
	}
	if *to != 0 && *from > int64(*to) {
		return usagef("--from-size %d is larger than --to-size %d", *from, *to)
	}
	lg, err := tf.open()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *tf.timeout)
	defer cancel()
	cp, err := lg.Checkpoint(ctx)
	if err != nil {
		return logError(err)
	}
	if *stateDir != "" {
		return consistencyState(ctx, e, lg, cp, *stateDir, *from)
	}
	a, b := uint64(*from), *to
	if b == 0 {
		b = cp.Size
	}
	if b > cp.Size {
		return fmt.Errorf("%w: --to-size %d is beyond the log's checkpoint (size %d)", client.ErrVerification, b, cp.Size)
	}
	if a > b {
		return fmt.Errorf("%w: rollback: --from-size %d is larger than the log's checkpoint (size %d)", client.ErrVerification, a, b)
	}
	// Roots below the checkpoint come from the tiles; each is tied to the
	// signed checkpoint by a consistency proof.
	rootA, err := lg.RootAt(ctx, a)
	if err != nil {
		return logError(err)
	}
	rootB := cp.Root
	if b != cp.Size {
		if rootB, err = lg.RootAt(ctx, b); err != nil {
			return logError(err)
		}
		if err := verifyCons(ctx, lg, b, rootB, cp.Size, cp.Root); err != nil {
			return err
		}
	}
	p, err := proveAndVerify(ctx, lg, a, rootA, b, rootB)
	if err != nil {
		return err
	}
	if err := writeJSON(e, consistencyOutput{Origin: cp.Origin, From: head(a, rootA), To: head(b, rootB), Proof: p, Verified: true}); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "consistency OK: %s size %d is a prefix of size %d\n", cp.Origin, a, b)
	return nil
}

func consistencyState(ctx context.Context, e *env, lg *client.TileLog, cp *client.Checkpoint, dir string, from int64) error {
	st, err := client.NewStateStore(dir, lg.Verifier(), lg.ConsistencyProof)
	if err != nil {
		return err
	}
	old, err := st.Trusted()
	if err != nil {
		return err
	}
	if old != nil && from >= 0 && uint64(from) != old.Size {
		return usagef("--from-size %d is not the trusted size %d in %s", from, old.Size, dir)
	}
	if _, err := st.Update(ctx, cp); err != nil {
		return logError(err)
	}
	out := consistencyOutput{Origin: cp.Origin, To: head(cp.Size, cp.Root), Verified: true}
	if old == nil {
		out.From, out.Trusted = head(cp.Size, cp.Root), "first use"
		fmt.Fprintf(e.stderr, "consistency: no trusted state for %s yet: trusting size %d on first use\n", cp.Origin, cp.Size)
	} else {
		out.From, out.Trusted = head(old.Size, old.Root), "updated"
		if old.Size < cp.Size {
			p, err := lg.ConsistencyProof(ctx, old.Size, cp.Size)
			if err == nil {
				out.Proof = p
			}
		}
		fmt.Fprintf(e.stderr, "consistency OK: %s size %d is a prefix of size %d; trusted state updated\n", cp.Origin, old.Size, cp.Size)
	}
	return writeJSON(e, out)
}

func proveAndVerify(ctx context.Context, lg *client.TileLog, a uint64, rootA [32]byte, b uint64, rootB [32]byte) ([][]byte, error) {
	if a == b || a == 0 {
		if a == b && rootA != rootB {
			return nil, fmt.Errorf("%w: fork: root %x and root %x at the same size %d", client.ErrVerification, rootA, rootB, a)
		}
		return [][]byte{}, nil
	}
	p, err := lg.ConsistencyProof(ctx, a, b)
	if err != nil {
		return nil, logError(err)
	}
	if err := mproof.VerifyConsistency(rfc6962.DefaultHasher, a, b, p, rootA[:], rootB[:]); err != nil {
		return nil, fmt.Errorf("%w: size %d (root %x) is not consistent with size %d (root %x): %v", client.ErrVerification, a, rootA, b, rootB, err)
	}
	return p, nil
}

func verifyCons(ctx context.Context, lg *client.TileLog, a uint64, rootA [32]byte, b uint64, rootB [32]byte) error {
	_, err := proveAndVerify(ctx, lg, a, rootA, b, rootB)
	return err
}

func writeJSON(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(append(b, '\n'))
	return err
}
