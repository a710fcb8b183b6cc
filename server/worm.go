package server

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/stele-dev/stele/internal/worm"
)

// withRetention, when Config.Retention is set, checks that the bucket has
// S3 Object Lock (refusing to start otherwise) and returns s3opts extended
// with the middleware that puts every tile and entry bundle under that
// retention. Tessera's driver writes through the same options.
func (s *Server) withRetention(ctx context.Context, sdk aws.Config, s3opts func(*s3.Options)) (func(*s3.Options), error) {
	if s.cfg.Retention == "" {
		return s3opts, nil
	}
	r, err := worm.Parse(s.cfg.Retention)
	if err != nil {
		return nil, err
	}
	c := s3.NewFromConfig(sdk, s3opts)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := worm.CheckBucket(ctx, c, s.cfg.S3Bucket); err != nil {
		return nil, err
	}
	if ok, err := worm.Versioned(ctx, c, s.cfg.S3Bucket); err != nil || !ok {
		// Real S3 turns versioning on with Object Lock; an S3-compatible
		// store may not: the checkpoint's past versions are then not kept.
		s.log.Warn("the bucket does not keep object versions: each checkpoint replaces the last; tiles and bundles are still retained",
			"bucket", s.cfg.S3Bucket, "err", err)
	}
	s.log.Info("object lock retention on tiles and entry bundles", "bucket", s.cfg.S3Bucket, "retention", r.String())
	mw := worm.Middleware(r, s.aws.prefix, time.Now)
	return func(o *s3.Options) {
		s3opts(o)
		o.APIOptions = append(o.APIOptions, mw)
	}, nil
}

// readOnlyMode is what sealFullTiles leaves complete tiles and bundles with.
const readOnlyMode = 0o444

// sealFullTiles, on posix, makes every full tile and entry bundle covered by
// the published checkpoint read-only (0444) as the log grows; partial ones
// and the checkpoint stay writable, as Tessera replaces them. It stops a
// stray write through the file (an editor, a script, `>`), not someone who
// may chmod it back or replace the directory entry: for that, put the data
// directory on WORM storage (docs/security.md).
func (s *Server) sealFullTiles(ctx context.Context, every time.Duration) {
	var done uint64 // entries whose full tiles are sealed
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if cp := s.cps.latest(); cp != nil && cp.size > done {
			if err := sealRange(s.logDir, done, cp.size); err != nil {
				s.log.Warn("could not make full tiles read-only", "err", err)
			} else {
				done = cp.size
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
