package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FreezePath is where a frozen log serves its freeze statement, beside its
// checkpoint (tlog-tiles paths are relative to the log's root URL). A log
// that is not frozen answers 404.
const FreezePath = "frozen"

// FreezeHeader is the first line of a freeze statement's body. It is not a
// checkpoint origin a Stele log can have (no log key is named so), and the
// second line is never a tree size, so a freeze statement never parses as
// a checkpoint, and a checkpoint never as a freeze statement.
const FreezeHeader = "stele.dev/freeze/v1"

// Freeze is a freeze statement: a signed note, signed by the log's key,
// saying that the log ends at the tree of Size entries with root Root, and
// naming the log that continues it (docs/decisions.md, "Freezing a log").
// Its body is, one item a line:
//
//	stele.dev/freeze/v1
//	origin <the frozen log's origin>
//	size <decimal, no leading zeros>
//	root <base64 of the 32-byte RFC 6962 root>
//	successor <origin>            (optional, with the next two)
//	successor-key <verifier key>  (its name is the successor's origin)
//	successor-url <http(s) URL>   (optional: where it is served)
//
// The final checkpoint, at Size with Root, is the log's ordinary checkpoint,
// cosigned by its witnesses; the statement binds the end of the log to it.
type Freeze struct {
	Origin string
	Size   uint64
	Root   [32]byte
	// Successor is the next log of the chain, or empty for a log that ends.
	Successor    string
	SuccessorKey string // signed-note verifier key; its name is Successor
	SuccessorURL string // optional
	// Raw is the signed note as read.
	Raw []byte
}

// Body is the statement's note text (what the log key signs).
func (f *Freeze) Body() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\norigin %s\nsize %d\nroot %s\n", FreezeHeader, f.Origin, f.Size, base64.StdEncoding.EncodeToString(f.Root[:]))
	if f.Successor != "" {
		fmt.Fprintf(&b, "successor %s\nsuccessor-key %s\n", f.Successor, f.SuccessorKey)
		if f.SuccessorURL != "" {
			fmt.Fprintf(&b, "successor-url %s\n", f.SuccessorURL)
		}
	}
	return b.String()
}

// SuccessorVerifier is the successor log's checkpoint verifier.
func (f *Freeze) SuccessorVerifier() (note.Verifier, error) {
	if f.Successor == "" {
		return nil, errors.New("the freeze statement names no successor")
	}
	return note.NewVerifier(f.SuccessorKey)
}

// String describes the statement in one line.
func (f *Freeze) String() string {
	s := fmt.Sprintf("log %s is frozen at size %d (root %x)", f.Origin, f.Size, f.Root)
	if f.Successor == "" {
		return s + "; it names no successor"
	}
	s += fmt.Sprintf("; its successor is %s (key %s)", f.Successor, f.SuccessorKey)
	if f.SuccessorURL != "" {
		s += " at " + f.SuccessorURL
	}
	return s
}

// SignFreeze checks f and signs it with the log's key.
func SignFreeze(f *Freeze, signer note.Signer) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if signer.Name() != f.Origin {
		return nil, fmt.Errorf("freeze statement: the key is for origin %q, the statement for %q", signer.Name(), f.Origin)
	}
	return note.Sign(&note.Note{Text: f.Body()}, signer)
}

// ParseFreeze verifies a freeze statement's signature with the log's
// verifier and parses its body strictly.
func ParseFreeze(raw []byte, logVerifier note.Verifier) (*Freeze, error) {
	n, err := note.Open(raw, note.VerifierList(logVerifier))
	if err != nil {
		return nil, fmt.Errorf("freeze statement: not signed by the log key %s+%08x: %w", logVerifier.Name(), logVerifier.KeyHash(), err)
	}
	f, err := parseFreezeBody(n.Text)
	if err != nil {
		return nil, err
	}
	if f.Origin != logVerifier.Name() {
		return nil, fmt.Errorf("freeze statement: it freezes log %q, not %q", f.Origin, logVerifier.Name())
	}
	f.Raw = raw
	return f, nil
}

func parseFreezeBody(text string) (*Freeze, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("freeze statement: the body does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if lines[0] != FreezeHeader {
		return nil, fmt.Errorf("freeze statement: the first line is %q, want %q", lines[0], FreezeHeader)
	}
	keys := []string{"origin", "size", "root", "successor", "successor-key", "successor-url"}
	vals := map[string]string{}
	next := 0
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, " ")
		if !ok || v == "" {
			return nil, fmt.Errorf("freeze statement: line %q is not \"key value\"", l)
		}
		for next < len(keys) && keys[next] != k {
			next++
		}
		if next == len(keys) {
			return nil, fmt.Errorf("freeze statement: unknown, repeated or out-of-order line %q", l)
		}
		vals[k] = v
		next++
	}
	f := &Freeze{Origin: vals["origin"], Successor: vals["successor"], SuccessorKey: vals["successor-key"], SuccessorURL: vals["successor-url"]}
	size, err := strconv.ParseUint(vals["size"], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != vals["size"] {
		return nil, fmt.Errorf("freeze statement: size %q is not a canonical decimal", vals["size"])
	}
	f.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(vals["root"])
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("freeze statement: root %q is not the base64 of 32 bytes", vals["root"])
	}
	f.Root = [32]byte(root)
	if err := f.check(); err != nil {
		return nil, err
	}
	if f.Body() != text {
		return nil, errors.New("freeze statement: the body is not in canonical form")
	}
	return f, nil
}

// check validates the fields a statement is made of.
func (f *Freeze) check() error {
	if f.Origin == "" || strings.ContainsAny(f.Origin, " \n") {
		return fmt.Errorf("freeze statement: origin %q must be one non-empty word", f.Origin)
	}
	if f.Successor == "" {
		if f.SuccessorKey != "" || f.SuccessorURL != "" {
			return errors.New("freeze statement: a successor key or URL without a successor origin")
		}
		return nil
	}
	if f.Successor == f.Origin {
		return fmt.Errorf("freeze statement: the successor must be a new log (a new origin), not %q again", f.Origin)
	}
	v, err := note.NewVerifier(f.SuccessorKey)
	if err != nil {
		return fmt.Errorf("freeze statement: successor key %q is not a signed-note verifier key: %w", f.SuccessorKey, err)
	}
	if v.Name() != f.Successor {
		return fmt.Errorf("freeze statement: the successor key is named %q but the successor is %q (a Stele key's name is its log's origin)", v.Name(), f.Successor)
	}
	if f.SuccessorURL != "" {
		u, err := url.Parse(f.SuccessorURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(f.SuccessorURL, " \n") {
			return fmt.Errorf("freeze statement: successor URL %q is not an http(s) URL", f.SuccessorURL)
		}
	}
	return nil
}

// Freeze fetches and verifies the log's freeze statement. A log that is not
// frozen returns nil and no error. A statement that does not verify, or
// whose tree is not the one the log's checkpoint commits to, is an error
// wrapping ErrVerification: a frozen log never grows, and its checkpoint is
// the final one the statement names.
func (l *TileLog) Freeze(ctx context.Context) (*Freeze, *Checkpoint, error) {
	raw, err := l.get(ctx, FreezePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := ParseFreeze(raw, l.verifier)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, nil, err
	}
	if cp.Size != f.Size || !bytes.Equal(cp.Root[:], f.Root[:]) {
		return nil, nil, fmt.Errorf("%w: log %s says it is frozen at size %d (root %x), but its checkpoint is at size %d (root %x): a frozen log must not change",
			ErrVerification, f.Origin, f.Size, f.Root, cp.Size, cp.Root)
	}
	return f, cp, nil
}

// The google.rpc.ErrorInfo a read-only or frozen log attaches to the
// FailedPrecondition with which it refuses an append or an erasure. Its
// metadata holds the log's origin, the frozen size (a frozen log only) and
// the successor log when one is known.
const (
	ReadOnlyReason   = "LOG_READ_ONLY"
	ErrorDomain      = "stele.dev"
	MetaOrigin       = "origin"
	MetaFrozenSize   = "frozen_size"
	MetaSuccessor    = "successor_origin"
	MetaSuccessorKey = "successor_key"
	MetaSuccessorURL = "successor_url"
)

// ReadOnlyError is a read-only or frozen log's refusal of a write.
type ReadOnlyError struct {
	Origin string
	// Frozen says the log is frozen (at FrozenSize entries), not only
	// served read-only.
	Frozen     bool
	FrozenSize uint64
	// Successor, SuccessorKey and SuccessorURL name the log to send new
	// events to; empty when the server knows none. The key is as the
	// refusing server says: check it against the freeze statement
	// (Chain.Next) before trusting the successor's checkpoints with it.
	Successor, SuccessorKey, SuccessorURL string
	Message                               string
}

func (e *ReadOnlyError) Error() string { return e.Message }

// AsReadOnly reports whether err is a read-only or frozen log's refusal.
func AsReadOnly(err error) (*ReadOnlyError, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return nil, false
	}
	for _, d := range st.Details() {
		ei, ok := d.(*errdetails.ErrorInfo)
		if !ok || ei.Domain != ErrorDomain || ei.Reason != ReadOnlyReason {
			continue
		}
		m := ei.Metadata
		e := &ReadOnlyError{Origin: m[MetaOrigin], Successor: m[MetaSuccessor], SuccessorKey: m[MetaSuccessorKey], SuccessorURL: m[MetaSuccessorURL], Message: st.Message()}
		if s, ok := m[MetaFrozenSize]; ok {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				e.Frozen, e.FrozenSize = true, n
			}
		}
		return e, true
	}
	return nil, false
}
