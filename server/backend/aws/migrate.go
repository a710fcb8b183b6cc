package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/mysqlstore"
	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/server/backend"
)

// MigrateOptions says what Migrate copies.
type MigrateOptions struct {
	// SrcDir is the posix log's data directory (a stopped stele-server's
	// --data-dir).
	SrcDir string
	// LogKeyFile is the log's key; empty: SrcDir's log.key.
	LogKeyFile string
	// Origin, when set, must be the key's origin.
	Origin string
	// Workers is how many entry bundles are copied at once.
	Workers uint
	// Logger receives progress. Default slog.Default().
	Logger *slog.Logger
}

// Migrate copies the posix log in o.SrcDir to the aws backend b: Tessera's
// migration copies the entry bundles and rebuilds the tree, and fails
// unless the new tree's root equals the source checkpoint's; then the
// payloads, erasure tombstones and dedup and leaf-hash indexes are copied
// into the database. Running it again resumes. It returns the migrated log
// size; start stele-server on aws with the same key to go on appending.
func (b *Backend) Migrate(ctx context.Context, o MigrateOptions) (uint64, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	keyFile := o.LogKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(o.SrcDir, logkey.PrivateFile)
	}
	key, err := logkey.Load(keyFile, o.Origin)
	if err != nil {
		return 0, err
	}
	logDir := filepath.Join(o.SrcDir, "log")
	raw, err := os.ReadFile(filepath.Join(logDir, layout.CheckpointPath))
	if err != nil {
		return 0, fmt.Errorf("reading the source checkpoint (is %s a stele-server data directory?): %w", o.SrcDir, err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, key.Signer.Name(), key.Verifier)
	if err != nil {
		return 0, fmt.Errorf("the source checkpoint does not verify with the log key %s: %w", keyFile, err)
	}
	src, err := store.Open(filepath.Join(o.SrcDir, "store"), store.Options{})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	shared, err := mysqlstore.Open(ctx, b.cfg.DSN, mysqlstore.Options{})
	if err != nil {
		return 0, err
	}
	defer shared.Close()
	if err := shared.BindLogKey(ctx, key.VKey); err != nil {
		return 0, err
	}
	s := &Storage{cfg: b.cfg, shared: shared}
	driver, err := s.openDriver(ctx, backend.Env{Logger: o.Logger})
	if err != nil {
		return 0, err
	}
	mt, err := tessera.NewMigrationTarget(ctx, driver, tessera.NewMigrationOptions())
	if err != nil {
		return 0, fmt.Errorf("starting the migration: %w", err)
	}
	dir := tiles.DirReader(logDir)
	o.Logger.Info("migrating the log", "from", o.SrcDir, "size", cp.Size, "bucket", b.cfg.Bucket, "prefix", b.cfg.Prefix)
	if err := mt.Migrate(ctx, o.Workers, cp.Size, cp.Hash, dir.ReadEntryBundle); err != nil {
		return 0, fmt.Errorf("migrating the log: %w", err)
	}
	if err := shared.AdvanceSequencer(ctx, cp.Size); err != nil {
		return 0, err
	}
	o.Logger.Info("log migrated; copying payloads and indexes", "size", cp.Size)
	if err := copyStore(ctx, dir, cp.Size, src, shared); err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// copyStore copies every leaf's payload (or tombstone) and index entries
// from the Pebble store to the shared one, in log order, so the first copy
// of a (source, event_id) keeps its index.
func copyStore(ctx context.Context, dir tiles.Reader, size uint64, src *store.Store, dst *mysqlstore.Store) error {
	const flushAt = 256
	var ps []store.Payload
	var ix []store.Indexed
	flush := func() error {
		if err := dst.PutPayloads(ps); err != nil {
			return err
		}
		if err := dst.PutIndexes(ix); err != nil {
			return err
		}
		ps, ix = ps[:0], ix[:0]
		return nil
	}
	for bi := uint64(0); bi*layout.EntryBundleWidth < size; bi++ {
		rawB, err := dir.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, size))
		if err != nil {
			return fmt.Errorf("reading source entry bundle %d: %w", bi, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(rawB); err != nil {
			return fmt.Errorf("parsing source entry bundle %d: %w", bi, err)
		}
		for j, e := range b.Entries {
			idx := bi*layout.EntryBundleWidth + uint64(j)
			l, err := leaf.Unmarshal(e)
			if err != nil {
				return fmt.Errorf("leaf %d does not parse as leaf v1: %w", idx, err)
			}
			salt, data, err := src.GetPayload(store.Ref{Admitted: l.AdmittedTime, Digest: l.PayloadDigest})
			switch {
			case errors.Is(err, store.ErrErased):
				t, err := src.Tombstone(l.PayloadDigest)
				if err != nil {
					return fmt.Errorf("reading the tombstone of entry %d: %w", idx, err)
				}
				if err := dst.PutTombstone(l.PayloadDigest, t); err != nil {
					return err
				}
			case err != nil:
				return fmt.Errorf("reading the payload of entry %d: %w", idx, err)
			default:
				ps = append(ps, store.Payload{Digest: l.PayloadDigest, Admitted: l.AdmittedTime, Salt: salt, Data: data})
			}
			ix = append(ix, store.Indexed{Source: l.Source, EventID: l.EventID, LeafHash: [32]byte(rfc6962.DefaultHasher.HashLeaf(e)), Index: idx})
			if len(ix) >= flushAt {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return dst.SetWatermark(size)
}
