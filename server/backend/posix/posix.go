// Package posix is the server's storage backend on a local file system: the
// log's tiles, entry bundles and checkpoint under DATA-DIR/log (Tessera's
// POSIX driver) and payloads and indexes in an embedded Pebble store under
// DATA-DIR/store. One server, no setup; the default backend.
package posix

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tessposix "github.com/transparency-dev/tessera/storage/posix"

	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/server/backend"
)

// Backend keeps the log in the server's data directory.
type Backend struct{}

// New returns the posix backend.
func New() Backend { return Backend{} }

// Storage is the open posix backend.
type Storage struct {
	logDir string
	st     *store.Store
	driver tessera.Driver
	env    backend.Env
}

// Open opens (or creates) DATA-DIR/store, finishing erasures that a crash
// interrupted, and Tessera's POSIX driver on DATA-DIR/log.
func (Backend) Open(ctx context.Context, env backend.Env) (backend.Storage, error) {
	st, err := store.Open(filepath.Join(env.DataDir, "store"), store.Options{ReadOnly: env.ReadOnly})
	if err != nil {
		return nil, err
	}
	// Finish erasures that a crash interrupted before their bytes left the
	// disk (read-only: left to the next writer).
	if env.ReadOnly {
	} else if n, err := st.PurgePending(ctx); err != nil {
		st.Close()
		return nil, err
	} else if n > 0 {
		env.Logger.Info("finished interrupted erasures", "payloads", n)
	}
	s := &Storage{logDir: filepath.Join(env.DataDir, "log"), st: st, env: env}
	s.driver, err = tessposix.New(ctx, tessposix.Config{Path: s.logDir, HTTPClient: env.HTTPClient})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("opening log storage: %w", err)
	}
	return s, nil
}

// Driver is Tessera's POSIX driver on DATA-DIR/log.
func (s *Storage) Driver() tessera.Driver { return s.driver }

// TuneAppend keeps Tessera's defaults.
func (s *Storage) TuneAppend(*tessera.AppendOptions) {}

// Payloads is the Pebble store.
func (s *Storage) Payloads() backend.Payloads { return s.st }

// Shared is nil: this server alone writes the log.
func (s *Storage) Shared() backend.Claimer { return nil }

// Tiles serves the tlog-tiles read API from the log directory.
func (s *Storage) Tiles() http.Handler { return tiles.NewHandler(tiles.DirReader(s.logDir)) }

// Check is nil: the files are the server's own.
func (s *Storage) Check(context.Context) error { return nil }

// Reader reads DATA-DIR/log.
func (s *Storage) Reader() tiles.Reader { return tiles.DirReader(s.logDir) }

// ReadObject reads DATA-DIR/log/name.
func (s *Storage) ReadObject(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.logDir, name))
}

// WriteObject writes DATA-DIR/log/name atomically and durably.
func (s *Storage) WriteObject(_ context.Context, name string, raw []byte) error {
	return durable.WriteAtomic(filepath.Join(s.logDir, name), raw, 0o644)
}

// Close closes the Pebble store.
func (s *Storage) Close() error { return s.st.Close() }

// RepublishStale sets the checkpoint file's time back when keep refuses it:
// Tessera republishes (and so sends to the witnesses) an unchanged
// checkpoint once it is older than the republish interval, and would
// otherwise wait for the next event or its 10-minute republish.
func (s *Storage) RepublishStale(keep func(checkpoint []byte) bool) {
	path := filepath.Join(s.logDir, layout.CheckpointPath)
	raw, err := os.ReadFile(path)
	if err != nil || keep(raw) {
		return // a new log: its first checkpoint goes to the witnesses anyway
	}
	if err := os.Chtimes(path, time.Unix(0, 0), time.Unix(0, 0)); err != nil {
		s.env.Logger.Warn("could not mark the checkpoint for republication; it is republished with the next event", "err", err)
	}
}

// Maintain seals full tiles (sealFullTiles) every second.
func (s *Storage) Maintain(ctx context.Context, published func() uint64) {
	s.sealFullTiles(ctx, published, time.Second)
}

// readOnlyMode is what Maintain leaves complete tiles and bundles with.
const readOnlyMode = 0o444

// sealFullTiles makes every full tile and entry bundle covered by the
// published checkpoint read-only (0444) as the log grows; partial ones and
// the checkpoint stay writable, as Tessera replaces them. It stops a stray
// write through the file (an editor, a script, `>`), not someone who may
// chmod it back or replace the directory entry: for that, put the data
// directory on WORM storage (docs/security.md).
func (s *Storage) sealFullTiles(ctx context.Context, published func() uint64, every time.Duration) {
	var done uint64 // entries whose full tiles are sealed
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if size := published(); size > done {
			if err := sealRange(s.logDir, done, size); err != nil {
				s.env.Logger.Warn("could not make full tiles read-only", "err", err)
			} else {
				done = size
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sealRange makes read-only the full tiles and bundles that a tree of size
// to has and a tree of size from had not.
func sealRange(dir string, from, to uint64) error {
	seal := func(p string) error {
		err := os.Chmod(filepath.Join(dir, p), readOnlyMode)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not written yet (or never, for levels above the tree)
		}
		return err
	}
	for i := from / layout.EntryBundleWidth; i < to/layout.EntryBundleWidth; i++ {
		if err := seal(layout.EntriesPath(i, 0)); err != nil {
			return err
		}
	}
	// A full tile at level L covers 256^(L+1) entries.
	for level, span := uint64(0), uint64(layout.TileWidth); span <= to && level < 64; level, span = level+1, span*layout.TileWidth {
		for i := from / span; i < to/span; i++ {
			if err := seal(layout.TilePath(level, i, 0)); err != nil {
				return err
			}
		}
		if span > math.MaxUint64/layout.TileWidth {
			break
		}
	}
	return nil
}
