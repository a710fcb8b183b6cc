package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// UnreachableError reports that a log (or witness) could not be read: the
// connection failed, or the server answered with an unexpected HTTP status.
// It says nothing about the log's honesty, only that it was not reachable.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("could not read %s: %v", e.URL, e.Err) }
func (e *UnreachableError) Unwrap() error { return e.Err }

// TileLog reads and verifies a log over the C2SP tlog-tiles HTTP API. It
// needs no credentials: everything it reads is public.
type TileLog struct {
	root     *url.URL
	hc       *http.Client
	verifier note.Verifier
}

// NewTileLog returns a reader for the tlog-tiles API rooted at logURL whose
// checkpoints must carry a signature by verifier. hc may be nil.
func NewTileLog(logURL string, verifier note.Verifier, hc *http.Client) (*TileLog, error) {
	logURL = LogURL(logURL)
	if !strings.HasSuffix(logURL, "/") {
		logURL += "/"
	}
	u, err := url.Parse(logURL)
	if err != nil {
		return nil, fmt.Errorf("log URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("log URL %q: want http or https", logURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &TileLog{root: u, hc: hc, verifier: verifier}, nil
}

// LogURL completes a log URL given as a bare host:port (or host:port/path)
// with "http://".
func LogURL(s string) string {
	if s != "" && !strings.Contains(s, "://") {
		return "http://" + s
	}
	return s
}

// explainHTTPError recognises a gRPC server answering an HTTP/1 request:
// its first bytes are an HTTP/2 SETTINGS frame, which net/http reports as a
// malformed response — or, when the server's frame arrives before the
// request is written (a gRPC server speaks first), as a failed read on an
// idle connection, in which case the address is probed once.
func explainHTTPError(req *http.Request, err error) error {
	if strings.Contains(err.Error(), `malformed HTTP response "\x00\x00`) || (!errors.Is(err, syscall.ECONNREFUSED) && speaksHTTP2First(req.URL.Host)) {
		return fmt.Errorf("it answers with HTTP/2 frames, not HTTP/1: this looks like the gRPC port; the tlog-tiles HTTP API is on stele-server's --http-addr (by default the port after gRPC's: try --log http://%s/)", neighbour(req.URL.Host, +1))
	}
	return err
}

// speaksHTTP2First reports whether the server at host sends an HTTP/2
// SETTINGS frame as soon as a connection opens, as a gRPC server does and
// an HTTP/1 server never would.
func speaksHTTP2First(host string) bool {
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	var h [9]byte // an HTTP/2 frame header: length (3), type, flags, stream (4)
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return false
	}
	return h[3] == 0x04 && h[5]|h[6]|h[7]|h[8] == 0 // SETTINGS on stream 0
}

// Verifier is the log's checkpoint verifier.
func (l *TileLog) Verifier() note.Verifier { return l.verifier }

// get fetches a path under the log's root. A 404 wraps os.ErrNotExist;
// a failed connection or another status is an *UnreachableError.
func (l *TileLog) get(ctx context.Context, p string) ([]byte, error) {
	u, err := l.root.Parse(p)
	if err != nil {
		return nil, err
	}
	return httpGet(ctx, l.hc, u.String())
}

func httpGet(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &UnreachableError{URL: u, Err: explainHTTPError(req, err)}
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w", u, os.ErrNotExist)
	default:
		return nil, &UnreachableError{URL: u, Err: fmt.Errorf("HTTP status %s", resp.Status)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &UnreachableError{URL: u, Err: err}
	}
	return b, nil
}

// Checkpoint fetches the log's latest checkpoint and verifies its signature.
func (l *TileLog) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	raw, err := l.get(ctx, layout.CheckpointPath)
	if err != nil {
		return nil, err
	}
	return ParseCheckpoint(raw, l.verifier)
}

// ReadTile is a tessera client.TileFetcherFunc. A partial tile the log no
// longer serves (or never served: the tree grew past that size in one
// step) is cut from a larger one: the full tile, or the partial tile at
// the log's current size.
func (l *TileLog) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	b, err := l.withLarger(ctx, p, layout.TileHeight*level, index, func(q uint8) string { return layout.TilePath(level, index, q) })
	if err != nil {
		return nil, err
	}
	if p != 0 && len(b) > 32*int(p) {
		b = b[:32*int(p)]
	}
	return b, nil
}

// ReadEntryBundle is a tessera client.EntryBundleFetcherFunc. Like
// ReadTile, a missing partial bundle is read from a larger one, which then
// holds more than p entries: take the first p (Bundle does).
func (l *TileLog) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return l.withLarger(ctx, p, 0, index, func(q uint8) string { return layout.EntriesPath(index, q) })
}

// withLarger fetches path(p); when that partial resource is missing, it
// tries the full one, then the partial one at the log's current size.
// treeLevel is the level of the tree nodes the resource holds (0 for
// entry bundles and level-0 tiles).
func (l *TileLog) withLarger(ctx context.Context, p uint8, treeLevel, index uint64, path func(uint8) string) ([]byte, error) {
	b, err := l.get(ctx, path(p))
	if p == 0 || !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	if b, err2 := l.get(ctx, path(0)); err2 == nil || !errors.Is(err2, os.ErrNotExist) {
		return b, err2
	}
	raw, err2 := l.get(ctx, layout.CheckpointPath)
	if err2 != nil {
		return nil, err
	}
	size, ok := uncheckedSize(raw)
	if !ok {
		return nil, err
	}
	q := layout.PartialTileSize(treeLevel/layout.TileHeight, index, size)
	if q == 0 || q <= p {
		return nil, err
	}
	return l.get(ctx, path(q))
}

// uncheckedSize reads the size line of a checkpoint without verifying it:
// it only picks which tile to fetch; what is read is verified by hashing.
func uncheckedSize(raw []byte) (uint64, bool) {
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 3 {
		return 0, false
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	return n, err == nil
}

// ConsistencyProof builds, from the log's tiles, a proof that the tree of
// size from is a prefix of the tree of size to.
func (l *TileLog) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	rt, unreachable := l.tileReader()
	pb, err := tclient.NewProofBuilder(ctx, to, rt)
	if err != nil {
		return nil, unreachable(err)
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	return p, unreachable(err)
}

// tileReader returns a tile fetcher that remembers whether the log could
// not be reached, and a function that turns an error of Tessera's proof
// builder (which flattens its fetcher's errors) back into an
// *UnreachableError when that was the cause.
func (l *TileLog) tileReader() (tclient.TileFetcherFunc, func(error) error) {
	var (
		mu   sync.Mutex
		seen error
	)
	rt := func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		b, err := l.ReadTile(ctx, level, index, p)
		var ue *UnreachableError
		if errors.As(err, &ue) {
			mu.Lock()
			seen = ue
			mu.Unlock()
		}
		return b, err
	}
	return rt, func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && seen != nil {
			return seen
		}
		return err
	}
}

// InclusionProof builds, from the log's tiles, the inclusion proof of the
// entry at index in the tree of size size.
func (l *TileLog) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("index %d is not in a tree of size %d", index, size)
	}
	rt, unreachable := l.tileReader()
	pb, err := tclient.NewProofBuilder(ctx, size, rt)
	if err != nil {
		return nil, unreachable(err)
	}
	p, err := pb.InclusionProof(ctx, index)
	return p, unreachable(err)
}

// Bundle returns the entries of entry bundle bi in a tree of size size. When
// the partial bundle is gone (the log grew and it was replaced by the full
// one), the full bundle's prefix is returned.
func (l *TileLog) Bundle(ctx context.Context, bi, size uint64) ([][]byte, error) {
	p := layout.PartialTileSize(0, bi, size)
	raw, err := l.ReadEntryBundle(ctx, bi, p)
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("%w: entry bundle %d does not parse: %v", ErrVerification, bi, err)
	}
	want := int(layout.EntryBundleWidth)
	if p != 0 {
		want = int(p)
	}
	if len(b.Entries) < want {
		return nil, fmt.Errorf("%w: entry bundle %d holds %d entries, want %d", ErrVerification, bi, len(b.Entries), want)
	}
	return b.Entries[:want], nil
}

// Entry returns the bytes of the entry at index in a tree of size size. The
// caller verifies them (VerifyInclusion) against a checkpoint of that size.
func (l *TileLog) Entry(ctx context.Context, index, size uint64) ([]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("index %d is not in a tree of size %d", index, size)
	}
	es, err := l.Bundle(ctx, index/layout.EntryBundleWidth, size)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(es[index%layout.EntryBundleWidth]), nil
}

// ProvenEntry is an entry with its inclusion proof in a checkpoint.
type ProvenEntry struct {
	Index  uint64
	Bytes  []byte
	Proof  [][32]byte
	Size   uint64
	Origin string
}

// ProveEntry reads the entry at index and its inclusion proof in cp, and
// verifies the proof against cp's root.
func (l *TileLog) ProveEntry(ctx context.Context, cp *Checkpoint, index uint64) (*ProvenEntry, error) {
	e, err := l.Entry(ctx, index, cp.Size)
	if err != nil {
		return nil, err
	}
	p, err := l.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return nil, err
	}
	hs, err := toHashes(p)
	if err != nil {
		return nil, err
	}
	if err := VerifyInclusion(cp, index, e, hs); err != nil {
		return nil, fmt.Errorf("%w: the log's tiles do not match its checkpoint: %v", ErrVerification, err)
	}
	return &ProvenEntry{Index: index, Bytes: e, Proof: hs, Size: cp.Size, Origin: cp.Origin}, nil
}

func toHashes(p [][]byte) ([][32]byte, error) {
	out := make([][32]byte, len(p))
	for i, h := range p {
		if len(h) != 32 {
			return nil, fmt.Errorf("proof hash %d is %d bytes, want 32", i, len(h))
		}
		out[i] = [32]byte(h)
	}
	return out, nil
}

// RootAt computes, from the log's tiles, the root of the tree of size size.
// It is only as trustworthy as the tiles: prove it consistent with a signed
// checkpoint (CheckConsistent) before relying on it.
func (l *TileLog) RootAt(ctx context.Context, size uint64) ([32]byte, error) {
	if size == 0 {
		return [32]byte(rfc6962.DefaultHasher.EmptyRoot()), nil
	}
	rt, unreachable := l.tileReader()
	nodes, err := tclient.FetchRangeNodes(ctx, size, rt)
	if err != nil {
		return [32]byte{}, unreachable(err)
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng, err := rf.NewRange(0, size, nodes)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: the log's tiles do not make a tree of size %d: %v", ErrVerification, size, err)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return [32]byte{}, err
	}
	return [32]byte(root), nil
}
