// Package mirror keeps a verified, byte-identical copy of a Stele log's
// C2SP tlog-tiles resources in a local directory.
//
// A Mirror follows a log over its tlog-tiles HTTP API (client.TileLog).
// Each catch-up (Sync) takes the log's latest checkpoint and, before
// writing anything:
//
//  1. verifies its signature with the log key and its consistency with the
//     checkpoint mirrored last (client.CheckConsistent);
//  2. fetches every entry bundle the new tree adds or completes, checks that
//     each is canonical (length-prefixed entries, nothing else) and that a
//     bundle completing a partial one starts with the mirrored partial
//     bundle's bytes;
//  3. recomputes the tree: the RFC 6962 leaf hashes of the new entries,
//     appended to the compact range of the mirrored tree, must give the
//     checkpoint's root;
//  4. fetches every tile the new tree adds or completes and requires it to
//     be exactly the tile recomputed from the entries (level 0: the leaf
//     hashes; level L: the roots of the 256-hash tiles of level L-1), and
//     requires the root computed from the tiles to be the checkpoint's.
//
// Only then are the bundles and tiles written to the directory, at the
// same paths as on the source, each file atomically and durably, and the
// checkpoint last, atomically. A crash therefore leaves a copy whose
// checkpoint names only data already written and verified; a new Mirror on
// the same directory re-verifies that checkpoint (signature, and root from
// the local tiles) and resumes from it.
//
// The directory can be served read-only with internal/tiles
// (tiles.NewHandler(tiles.DirReader(dir))), or by any static web server:
// files are 0644, directories 0755. A Mirror holds an advisory lock on
// dir/.mirror.lock while it is open.
//
// The mirrored checkpoint is the resume state: there is no separate
// client.StateStore file that could disagree with the copy after a crash.
package mirror

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/sync/errgroup"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/tiles"
)

// ErrVerification is wrapped by every error that means the source showed
// something that does not verify (it is client.ErrVerification), as
// opposed to an error reaching it.
var ErrVerification = client.ErrVerification

// Config configures a Mirror.
type Config struct {
	// Log is the source log; its verifier is the log key.
	Log *client.TileLog
	// Dir is the directory holding the copy.
	Dir string
	// Workers is the number of parallel fetches (default 4).
	Workers int
	// Logger receives progress and errors (default slog.Default()).
	Logger *slog.Logger
	// Progress, when set, is called as resources are fetched during a
	// catch-up with the number fetched so far and the number needed.
	Progress func(done, total int)
}

// Mirror copies one log into one directory. It is not safe for concurrent
// use, and only one Mirror may write a directory at a time.
type Mirror struct {
	cfg   Config
	local tiles.Reader
	rf    *compact.RangeFactory
	cur   *client.Checkpoint // the mirrored checkpoint; nil when empty
	// frozen is the log's freeze statement once the copy holds the final
	// checkpoint it names (freeze.go); nil while the log is not frozen.
	frozen *client.Freeze

	metrics *metrics
	unlock  func()
}

// New opens the copy in cfg.Dir (creating the directory if needed) and
// re-verifies its checkpoint, if any: its signature by the log key, every
// local bundle and tile, and the root (see verifyLocal). The directory is
// locked until Close: a second Mirror on it fails.
func New(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.Log == nil || cfg.Dir == "" {
		return nil, errors.New("mirror: a source log and a directory are required")
	}
	if cfg.Workers < 1 {
		cfg.Workers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	unlock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	m := &Mirror{unlock: unlock, cfg: cfg, local: tiles.DirReader(cfg.Dir), rf: &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}, metrics: newMetrics()}
	if err := m.open(ctx); err != nil {
		unlock()
		return nil, err
	}
	return m, nil
}

// Close releases the directory for another Mirror.
func (m *Mirror) Close() error {
	m.unlock()
	return nil
}

func (m *Mirror) open(ctx context.Context) error {
	raw, err := m.local.ReadCheckpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mirror: local %w", err)
	}
	cp, err := client.ParseCheckpoint(raw, m.cfg.Log.Verifier())
	if err != nil {
		return fmt.Errorf("mirror: the local copy's %w", err)
	}
	if err := m.verifyLocal(ctx, cp); err != nil {
		return fmt.Errorf("mirror: the local copy in %s: %w", m.cfg.Dir, err)
	}
	m.cur = cp
	m.metrics.size.Set(float64(cp.Size))
	return m.openFreeze(cp)
}

// Checkpoint is the mirrored checkpoint, or nil when nothing is mirrored yet.
func (m *Mirror) Checkpoint() *client.Checkpoint { return m.cur }

// localRange is the compact range [0, size) computed from the local tiles.
func (m *Mirror) localRange(ctx context.Context, size uint64) (*compact.Range, error) {
	if size == 0 {
		return m.rf.NewEmptyRange(0), nil
	}
	nodes, err := tclient.FetchRangeNodes(ctx, size, m.local.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("reading tiles for size %d: %w", size, err)
	}
	rng, err := m.rf.NewRange(0, size, nodes)
	if err != nil {
		return nil, fmt.Errorf("%w: tiles do not make a tree of size %d: %v", ErrVerification, size, err)
	}
	return rng, nil
}

func (m *Mirror) checkRoot(rng *compact.Range, cp *client.Checkpoint, what string) error {
	root := rfc6962.DefaultHasher.EmptyRoot()
	if rng.End() > 0 {
		var err error
		if root, err = rng.GetRootHash(nil); err != nil {
			return err
		}
	}
	if !bytes.Equal(root, cp.Root[:]) {
		return fmt.Errorf("%w: the root computed from %s at size %d is %x, the checkpoint says %x", ErrVerification, what, cp.Size, root, cp.Root)
	}
	return nil
}

// resource is one tile or entry bundle of the new tree.
type resource struct {
	level, index uint64 // level is the tile level; unused for bundles
	p            uint8  // partial width, 0 for full
	bundle       bool
	data         []byte // as fetched (cut to exactly the path's resource)
}

func (r *resource) path() string {
	if r.bundle {
		return layout.EntriesPath(r.index, r.p)
	}
	return layout.TilePath(r.level, r.index, r.p)
}

func width(p uint8) int {
	if p == 0 {
		return layout.EntryBundleWidth
	}
	return int(p)
}

// Sync catches up once: it mirrors the source's latest checkpoint, if it
// verifies, and returns the mirrored checkpoint. On error nothing of the
// new checkpoint is written and the copy stays at the previous one.
func (m *Mirror) Sync(ctx context.Context) (*client.Checkpoint, error) {
	cp, err := m.sync(ctx)
	m.metrics.observe(err)
	return cp, err
}

func (m *Mirror) sync(ctx context.Context) (*client.Checkpoint, error) {
	cp, err := m.cfg.Log.Checkpoint(ctx)
	if err != nil {
		var ue *client.UnreachableError
		if errors.As(err, &ue) || errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
			return m.cur, fmt.Errorf("source checkpoint: %w", err)
		}
		return m.cur, fmt.Errorf("%w: source %v", ErrVerification, err)
	}
	if f := m.frozen; f != nil && (cp.Size != f.Size || cp.Root != f.Root) {
		return m.cur, fmt.Errorf("%w: %v, but its checkpoint is now at size %d (root %x): a frozen log must not change", ErrVerification, f, cp.Size, cp.Root)
	}
	oldSize := uint64(0)
	if m.cur != nil {
		if err := client.CheckConsistent(ctx, m.cur, cp, m.cfg.Log.ConsistencyProof); err != nil {
			return m.cur, err
		}
		oldSize = m.cur.Size
		if cp.Size == oldSize {
			if !bytes.Equal(cp.Raw, m.cur.Raw) {
				// Same tree, another note (new cosignatures): keep the copy byte-identical.
				if err := m.writeCheckpoint(cp); err != nil {
					return m.cur, err
				}
			}
			return m.cur, m.syncFreeze(ctx)
		}
	}
	newSize := cp.Size

	// What the new tree adds or completes, and must be fetched.
	var res []*resource
	for bi := oldSize / layout.EntryBundleWidth; bi*layout.EntryBundleWidth < newSize; bi++ {
		res = append(res, &resource{index: bi, p: layout.PartialTileSize(0, bi, newSize), bundle: true})
	}
	for level := uint64(0); newSize>>(layout.TileHeight*level) > 0; level++ {
		nodes := newSize >> (layout.TileHeight * level)
		for ti := (oldSize >> (layout.TileHeight * level)) / layout.TileWidth; ti*layout.TileWidth < nodes; ti++ {
			res = append(res, &resource{level: level, index: ti, p: layout.PartialTileSize(level, ti, newSize)})
		}
	}
	if err := m.fetch(ctx, res); err != nil {
		return m.cur, err
	}
	if err := m.verify(ctx, cp, oldSize, res); err != nil {
		return m.cur, err
	}
	for _, r := range res {
		// The copy is public: directories 0755 (durable would make them
		// 0700), so another user's web server can serve it too.
		path := filepath.Join(m.cfg.Dir, filepath.FromSlash(r.path()))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return m.cur, fmt.Errorf("mirror: %w", err)
		}
		if err := durable.WriteAtomic(path, r.data, 0o644); err != nil {
			return m.cur, fmt.Errorf("mirror: writing %s: %w", r.path(), err)
		}
	}
	m.metrics.fetched.Add(float64(len(res)))
	if err := m.writeCheckpoint(cp); err != nil {
		return m.cur, err
	}
	m.cfg.Logger.Info("mirrored checkpoint", "origin", cp.Origin, "size", cp.Size, "from", oldSize, "resources", len(res))
	return cp, m.syncFreeze(ctx)
}

func (m *Mirror) writeCheckpoint(cp *client.Checkpoint) error {
	if err := durable.WriteAtomic(filepath.Join(m.cfg.Dir, layout.CheckpointPath), cp.Raw, 0o644); err != nil {
		return fmt.Errorf("mirror: writing the checkpoint: %w", err)
	}
	m.cur = cp
	m.metrics.size.Set(float64(cp.Size))
	return nil
}

// fetch reads every resource from the source, in parallel.
func (m *Mirror) fetch(ctx context.Context, res []*resource) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.cfg.Workers)
	var mu sync.Mutex
	done := 0
	for _, r := range res {
		g.Go(func() error {
			var (
				b   []byte
				err error
			)
			if r.bundle {
				// A missing partial bundle is read from a larger one: its
				// first p entries are, byte for byte, the partial bundle.
				if b, err = m.cfg.Log.ReadEntryBundle(gctx, r.index, r.p); err == nil {
					b, err = cutBundle(b, width(r.p))
				}
			} else {
				b, err = m.cfg.Log.ReadTile(gctx, r.level, r.index, r.p)
			}
			if err != nil {
				return fmt.Errorf("source %s: %w", r.path(), err)
			}
			r.data = b
			if m.cfg.Progress != nil {
				mu.Lock()
				done++
				m.cfg.Progress(done, len(res))
				mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// cutBundle returns the first n entries of the entry bundle b, which must
// hold at least n entries and be canonical (nothing after the last one).
func cutBundle(b []byte, n int) ([]byte, error) {
	off := 0
	for i := 0; i < n; i++ {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("%w: entry bundle holds %d entries, want %d", ErrVerification, i, n)
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		if len(b)-off-2 < l {
			return nil, fmt.Errorf("%w: entry bundle: entry %d is truncated", ErrVerification, i)
		}
		off += 2 + l
	}
	return b[:off], nil
}

// entries splits a canonical entry bundle (cut with cutBundle).
func entries(b []byte) [][]byte {
	var es [][]byte
	for off := 0; off < len(b); {
		l := int(binary.BigEndian.Uint16(b[off:]))
		es = append(es, b[off+2:off+2+l])
		off += 2 + l
	}
	return es
}

// verify checks the fetched resources against cp, the mirrored tree of
// size oldSize and each other (see the package documentation).
func (m *Mirror) verify(ctx context.Context, cp *client.Checkpoint, oldSize uint64, res []*resource) error {
	rng, err := m.localRange(ctx, oldSize)
	if err != nil {
		return fmt.Errorf("mirror: the local copy: %w", err)
	}
	computed := map[string][]byte{} // tile path -> tile recomputed from the entries
	for _, r := range res {
		if !r.bundle {
			continue
		}
		first := r.index * layout.EntryBundleWidth
		if first < oldSize {
			// This bundle completes (or extends) a mirrored partial one.
			old, err := m.local.ReadEntryBundle(ctx, r.index, layout.PartialTileSize(0, r.index, oldSize))
			if err != nil {
				return fmt.Errorf("mirror: the local copy: %w", err)
			}
			if !bytes.HasPrefix(r.data, old) {
				return fmt.Errorf("%w: source %s does not start with the entries already mirrored from %s", ErrVerification, r.path(), layout.EntriesPath(r.index, layout.PartialTileSize(0, r.index, oldSize)))
			}
		}
		var tile []byte
		for i, e := range entries(r.data) {
			h := rfc6962.DefaultHasher.HashLeaf(e)
			tile = append(tile, h...)
			if first+uint64(i) >= oldSize {
				if err := rng.Append(h, nil); err != nil {
					return err
				}
			}
		}
		computed[layout.TilePath(0, r.index, r.p)] = tile
	}
	if err := m.checkRoot(rng, cp, "the source's entry bundles"); err != nil {
		return err
	}
	// Tiles, level by level: each must be the one recomputed from below.
	for _, r := range res {
		if r.bundle {
			continue
		}
		want, ok := computed[r.path()]
		if r.level > 0 {
			ok = true
			want = nil
			for j := range uint64(width(r.p)) {
				child := layout.TilePath(r.level-1, r.index*layout.TileWidth+j, 0)
				c, have := computed[child]
				if !have {
					if c, err = m.local.ReadTile(ctx, r.level-1, r.index*layout.TileWidth+j, 0); err != nil {
						return fmt.Errorf("mirror: the local copy: %w", err)
					}
				}
				if len(c) != 32*layout.TileWidth {
					return fmt.Errorf("%w: %s holds %d bytes, want a full tile", ErrVerification, child, len(c))
				}
				want = append(want, subtreeRoot(c)...)
			}
			computed[r.path()] = want
		}
		if !ok {
			return fmt.Errorf("mirror: internal error: no entries for %s", r.path())
		}
		if !bytes.Equal(r.data, want) {
			return fmt.Errorf("%w: source %s does not match the hashes of the entries it covers", ErrVerification, r.path())
		}
	}
	// And the root from the tiles (new ones and mirrored ones) is the checkpoint's.
	fetchTile := func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		if b, ok := computed[layout.TilePath(level, index, p)]; ok {
			return b, nil
		}
		return m.local.ReadTile(ctx, level, index, p)
	}
	nodes, err := tclient.FetchRangeNodes(ctx, cp.Size, fetchTile)
	if err != nil {
		return fmt.Errorf("mirror: reading the new tiles: %w", err)
	}
	trng, err := m.rf.NewRange(0, cp.Size, nodes)
	if err != nil {
		return fmt.Errorf("%w: the source's tiles do not make a tree of size %d: %v", ErrVerification, cp.Size, err)
	}
	return m.checkRoot(trng, cp, "the source's tiles")
}

// subtreeRoot is the root of the perfect subtree whose 256 nodes are the
// hashes in the full tile t.
func subtreeRoot(t []byte) []byte {
	level := make([][]byte, 0, layout.TileWidth)
	for i := 0; i < len(t); i += 32 {
		level = append(level, t[i:i+32])
	}
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			next = append(next, rfc6962.DefaultHasher.HashChildren(level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

// Run catches up every interval until ctx is done. An error of one
// catch-up is logged and retried at the next tick, except a verification
// failure (the source showed something that does not verify), which stops
// the mirror: it is returned, and the copy stays at the last good
// checkpoint.
func (m *Mirror) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := m.Sync(ctx); err != nil {
			if errors.Is(err, ErrVerification) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			m.cfg.Logger.Warn("mirror: catch-up failed, retrying", "err", err, "retry_in", interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// verifyLocal re-verifies the whole copy against cp, one file at a time:
// every level-0 tile is the leaf hashes of its entry bundle, every higher
// tile the roots of the full tiles below it, and both the entries and the
// tiles give cp's root.
func (m *Mirror) verifyLocal(ctx context.Context, cp *client.Checkpoint) error {
	n := cp.Size
	rng := m.rf.NewEmptyRange(0)
	for bi := uint64(0); bi*layout.EntryBundleWidth < n; bi++ {
		p := layout.PartialTileSize(0, bi, n)
		b, err := m.local.ReadEntryBundle(ctx, bi, p)
		if err != nil {
			return err
		}
		cut, err := cutBundle(b, width(p))
		if err != nil || len(cut) != len(b) {
			return fmt.Errorf("%w: %s is not a canonical bundle of %d entries", ErrVerification, layout.EntriesPath(bi, p), width(p))
		}
		var want []byte
		for _, e := range entries(b) {
			h := rfc6962.DefaultHasher.HashLeaf(e)
			want = append(want, h...)
			if err := rng.Append(h, nil); err != nil {
				return err
			}
		}
		if err := m.checkLocalTile(ctx, 0, bi, p, want); err != nil {
			return err
		}
	}
	if err := m.checkRoot(rng, cp, "the local entry bundles"); err != nil {
		return err
	}
	for level := uint64(1); n>>(layout.TileHeight*level) > 0; level++ {
		nodes := n >> (layout.TileHeight * level)
		for ti := uint64(0); ti*layout.TileWidth < nodes; ti++ {
			p := layout.PartialTileSize(level, ti, n)
			var want []byte
			for j := range uint64(width(p)) {
				c, err := m.local.ReadTile(ctx, level-1, ti*layout.TileWidth+j, 0)
				if err != nil {
					return err
				}
				if len(c) != 32*layout.TileWidth {
					return fmt.Errorf("%w: %s is not a full tile", ErrVerification, layout.TilePath(level-1, ti*layout.TileWidth+j, 0))
				}
				want = append(want, subtreeRoot(c)...)
			}
			if err := m.checkLocalTile(ctx, level, ti, p, want); err != nil {
				return err
			}
		}
	}
	trng, err := m.localRange(ctx, n)
	if err != nil {
		return err
	}
	return m.checkRoot(trng, cp, "the local tiles")
}

func (m *Mirror) checkLocalTile(ctx context.Context, level, index uint64, p uint8, want []byte) error {
	got, err := m.local.ReadTile(ctx, level, index, p)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s does not match the hashes of the entries it covers", ErrVerification, layout.TilePath(level, index, p))
	}
	return nil
}
