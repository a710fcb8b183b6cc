package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tessaws "github.com/transparency-dev/tessera/storage/aws"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/stele-dev/stele/internal/mysqlstore"
	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/internal/worm"
	"github.com/stele-dev/stele/leaf"
)

// The storage backends (Config.Storage).
const (
	// StoragePOSIX keeps the log in DataDir and payloads and indexes in an
	// embedded Pebble store beside it: one server, no setup.
	StoragePOSIX = "posix"
	// StorageAWS keeps the log in an S3-compatible bucket, sequencing and
	// payloads and indexes in a MySQL-compatible database, so several
	// replicas share one log.
	StorageAWS = "aws"
)

// payloadStore is the payload store with the dedup and leaf-hash indexes:
// internal/store (Pebble) on posix, internal/mysqlstore on aws.
type payloadStore interface {
	PutPayloads([]store.Payload) error
	GetPayload(r store.Ref) (salt, data []byte, err error)
	Tombstone(digest [32]byte) ([]byte, error)
	ErasePayload(ctx context.Context, r store.Ref, tombstone []byte) (existing []byte, already bool, err error)
	LookupEvent(source, eventID string) (uint64, bool, error)
	EventElsewhere(eventID, source string) ([]store.Located, error)
	LookupLeafHash(h [32]byte) (uint64, bool, error)
	PutIndexes([]store.Indexed) error
	Watermark() (uint64, error)
	SetWatermark(size uint64) error
	ResetIndexes() error
	Close() error
}

// checkStorage checks the storage settings.
func (c *Config) checkStorage() error {
	switch c.Storage {
	case StoragePOSIX:
		if c.Retention != "" {
			return fmt.Errorf("retention (S3 Object Lock) is for storage %q; on %q full tiles and bundles are made read-only, and WORM is the file system's (docs/security.md)", StorageAWS, StoragePOSIX)
		}
		return nil
	case StorageAWS:
	default:
		return fmt.Errorf("storage %q is not a backend: use %q (a data directory) or %q (S3-compatible bucket and MySQL-compatible database)", c.Storage, StoragePOSIX, StorageAWS)
	}
	var missing []string
	if c.S3Bucket == "" {
		missing = append(missing, "the S3 bucket (--s3-bucket)")
	}
	if c.MySQLDSN == "" {
		missing = append(missing, "the MySQL DSN (--mysql-dsn or STELE_MYSQL_DSN)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("storage %q needs %s", StorageAWS, strings.Join(missing, " and "))
	}
	if c.CheckpointInterval < time.Second {
		return fmt.Errorf("storage %q publishes at most one checkpoint a second: set the checkpoint interval to 1s or more (it is %s)", StorageAWS, c.CheckpointInterval)
	}
	if c.Retention != "" {
		if _, err := worm.Parse(c.Retention); err != nil {
			return err
		}
	}
	if c.PublicTilesURL != "" && !strings.HasPrefix(c.PublicTilesURL, "https://") && !strings.HasPrefix(c.PublicTilesURL, "http://") {
		return fmt.Errorf("public tiles URL %q is not an http(s) URL", c.PublicTilesURL)
	}
	return nil
}

// awsBackend is what the aws storage needs beside Tessera's driver.
type awsBackend struct {
	s3     *s3.Client
	bucket string
	prefix string
	shared *mysqlstore.Store
}

// awsDriver makes Tessera's AWS driver from cfg: credentials from the
// standard AWS sources, an optional endpoint for S3-compatible stores.
func (s *Server) awsDriver(ctx context.Context) (tessera.Driver, error) {
	var opts []func(*awsconfig.LoadOptions) error
	region := s.cfg.S3Region
	if region == "" && s.cfg.S3Endpoint != "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		// Self-hosted stores ignore the region, but requests are signed with one.
		region = "us-east-1"
	}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	sdk, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	s3opts := func(o *s3.Options) {
		if s.cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(s.cfg.S3Endpoint)
		}
		o.UsePathStyle = s.cfg.S3PathStyle
	}
	s.aws.bucket, s.aws.prefix = s.cfg.S3Bucket, strings.Trim(s.cfg.S3Prefix, "/")
	s3opts, err = s.withRetention(ctx, sdk, s3opts)
	if err != nil {
		return nil, err
	}
	s.aws.s3 = s3.NewFromConfig(sdk, s3opts)
	dc := tessaws.Config{
		Bucket:       s.cfg.S3Bucket,
		BucketPrefix: s.aws.prefix,
		DSN:          s.cfg.MySQLDSN,
		HTTPClient:   s.witnessClient(),
	}
	if s.cfg.S3Endpoint != "" || s.cfg.S3PathStyle || s.cfg.S3Region != "" || s.cfg.Retention != "" {
		// Tessera's driver uses its own defaults unless given a config.
		dc.SDKConfig, dc.S3Options = &sdk, s3opts
	}
	d, err := tessaws.New(ctx, dc)
	if err != nil {
		return nil, fmt.Errorf("opening the aws log storage: %w", err)
	}
	return d, nil
}

// tuneAppend adapts Tessera's options to the backend. On aws, entries are
// integrated once a second, up to DefaultIntegrationSizeLimit at a time, so
// the pushback bound (entries sequenced but not yet integrated; Tessera's
// default 4096) is raised to what one integration pass takes: otherwise a
// burst of a few thousand events is refused while the tree is fine.
func (s *Server) tuneAppend(opts *tessera.AppendOptions) {
	if s.aws != nil {
		opts.WithPushback(tessaws.DefaultIntegrationSizeLimit)
	}
}

// driver opens the configured Tessera storage driver.
func (s *Server) driver(ctx context.Context) (tessera.Driver, error) {
	if s.aws != nil {
		return s.awsDriver(ctx)
	}
	d, err := posix.New(ctx, posix.Config{Path: s.logDir, HTTPClient: s.witnessClient()})
	if err != nil {
		return nil, fmt.Errorf("opening log storage: %w", err)
	}
	return d, nil
}

// tilesHandler serves the tlog-tiles read API: from the data directory on
// posix; on aws by redirecting to PublicTilesURL when set, else by reading
// the bucket.
func (s *Server) tilesHandler() http.Handler {
	switch {
	case s.aws == nil:
		return tiles.NewHandler(tiles.DirReader(s.logDir))
	case s.cfg.PublicTilesURL != "":
		return tiles.NewRedirect(s.cfg.PublicTilesURL)
	default:
		return tiles.NewHandler(bucketReader{s.aws})
	}
}

// bucketReader reads exactly the requested tlog-tiles objects from the bucket
// (no fallback from a partial to a full tile, as tiles.Reader requires).
type bucketReader struct{ b *awsBackend }

func (r bucketReader) ReadCheckpoint(ctx context.Context) ([]byte, error) {
	return r.get(ctx, layout.CheckpointPath)
}

func (r bucketReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return r.get(ctx, layout.TilePath(level, index, p))
}

func (r bucketReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return r.get(ctx, layout.EntriesPath(index, p))
}

func (r bucketReader) get(ctx context.Context, name string) ([]byte, error) {
	key := name
	if r.b.prefix != "" {
		key = path.Join(r.b.prefix, name)
	}
	out, err := r.b.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.b.bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *types.NoSuchKey
		var api smithy.APIError
		if errors.As(err, &nsk) || (errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey")) {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		return nil, fmt.Errorf("reading %s from bucket %s: %w", key, r.b.bucket, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s from bucket %s: %w", key, r.b.bucket, err)
	}
	return b, nil
}

// checkBackends reports why the storage cannot serve, or nil: on aws, the
// database and the bucket must both answer.
func (s *Server) checkBackends(ctx context.Context) error {
	if s.aws == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.aws.shared.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if _, err := (bucketReader{s.aws}).ReadCheckpoint(ctx); err != nil {
		return fmt.Errorf("object store unreachable: %w", err)
	}
	return nil
}

// followIndexes keeps the shared dedup and leaf-hash indexes complete up to
// the integrated log size on aws: it fills in the entries whose replica
// crashed between sequencing and indexing them, and moves the shared
// watermark that stale-claim takeover waits for (internal/mysqlstore).
func (s *Server) followIndexes(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		size, err := s.reader.IntegratedSize(ctx)
		if err == nil {
			err = s.reindex(ctx, size, false)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("following the log into the dedup index", "err", err)
		}
	}
}

// payloadRef names the payload a leaf commits to, as the stores file it.
func payloadRef(l *leaf.Leaf) store.Ref {
	return store.Ref{Admitted: l.AdmittedTime, Digest: l.PayloadDigest}
}
