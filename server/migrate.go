package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/mysqlstore"
	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/leaf"
)

// MigrateToAWS copies the posix log in srcDir (a stopped stele-server's
// --data-dir) to the aws backend that cfg names: Tessera's migration copies
// the entry bundles and rebuilds the tree, and fails unless the new tree's
// root equals the source checkpoint's; then the payloads, erasure tombstones
// and dedup and leaf-hash indexes are copied into the database. The log key
// is cfg.LogKeyFile, or srcDir's log.key. Running it again resumes. It
// returns the migrated log size; start stele-server on aws with the same
// key to go on appending.
func MigrateToAWS(ctx context.Context, cfg Config, srcDir string, workers uint) (uint64, error) {
	cfg.setDefaults()
	cfg.Storage = StorageAWS
	if err := cfg.checkStorage(); err != nil {
		return 0, err
	}
	keyFile := cfg.LogKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(srcDir, logkey.PrivateFile)
	}
	key, err := logkey.Load(keyFile, cfg.Origin)
	if err != nil {
		return 0, err
	}
	logDir := filepath.Join(srcDir, "log")
	raw, err := os.ReadFile(filepath.Join(logDir, layout.CheckpointPath))
	if err != nil {
		return 0, fmt.Errorf("reading the source checkpoint (is %s a stele-server data directory?): %w", srcDir, err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, key.Signer.Name(), key.Verifier)
	if err != nil {
		return 0, fmt.Errorf("the source checkpoint does not verify with the log key %s: %w", keyFile, err)
	}
	src, err := store.Open(filepath.Join(srcDir, "store"), store.Options{})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	shared, err := mysqlstore.Open(ctx, cfg.MySQLDSN, mysqlstore.Options{})
	if err != nil {
		return 0, err
	}
	defer shared.Close()
	if err := shared.BindLogKey(ctx, key.VKey); err != nil {
		return 0, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, key: key, m: newMetrics(), aws: &awsBackend{shared: shared}}
	driver, err := s.awsDriver(ctx)
	if err != nil {
		return 0, err
	}
	mt, err := tessera.NewMigrationTarget(ctx, driver, tessera.NewMigrationOptions())
	if err != nil {
		return 0, fmt.Errorf("starting the migration: %w", err)
	}
	dir := tiles.DirReader(logDir)
	s.log.Info("migrating the log", "from", srcDir, "size", cp.Size, "bucket", cfg.S3Bucket, "prefix", cfg.S3Prefix)
	if err := mt.Migrate(ctx, workers, cp.Size, cp.Hash, dir.ReadEntryBundle); err != nil {
		return 0, fmt.Errorf("migrating the log: %w", err)
	}
	if err := shared.AdvanceSequencer(ctx, cp.Size); err != nil {
		return 0, err
	}
	s.log.Info("log migrated; copying payloads and indexes", "size", cp.Size)
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
			salt, data, err := src.GetPayload(payloadRef(l))
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
			ix = append(ix, store.Indexed{Source: l.Source, EventID: l.EventID, LeafHash: leafHash(e), Index: idx})
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
