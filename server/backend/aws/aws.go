// Package aws is the server's storage backend for several replicas of one
// log: tiles, entry bundles and checkpoints in an S3-compatible bucket
// (Tessera's AWS driver), sequencing, payloads and the dedup and leaf-hash
// indexes in a MySQL-compatible database (internal/mysqlstore). Every
// replica runs with the same Config and the same log key.
package aws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tessaws "github.com/transparency-dev/tessera/storage/aws"

	"github.com/stele-dev/stele/internal/mysqlstore"
	"github.com/stele-dev/stele/internal/tiles"
	"github.com/stele-dev/stele/internal/worm"
	"github.com/stele-dev/stele/server/backend"
)

// Config locates the log's bucket and database.
type Config struct {
	// Bucket, Prefix (an optional object-key prefix), Endpoint (empty:
	// AWS's), Region and PathStyle locate the log's objects. Credentials
	// come from the standard AWS sources (environment, shared config,
	// instance or pod identity).
	Bucket    string
	Prefix    string
	Endpoint  string
	Region    string
	PathStyle bool
	// DSN names the MySQL-compatible database (go-sql-driver/mysql
	// syntax: user:password@tcp(host:port)/database).
	DSN string
	// PublicTilesURL makes the tlog-tiles routes redirect (302) to this
	// base URL (the bucket or a CDN) instead of proxying reads.
	PublicTilesURL string
	// Retention is "MODE:DURATION" (governance or compliance, e.g.
	// compliance:7y): every tile and entry bundle is written with that S3
	// Object Lock retention, and Open refuses a bucket without Object Lock
	// or without versioning (internal/worm, docs/security.md).
	Retention string
	// ClaimLease is how long a replica's claim on an event stands before
	// another replica may take it over (internal/mysqlstore). Default 2
	// minutes.
	ClaimLease time.Duration
}

// Backend is the aws backend, not yet opened.
type Backend struct{ cfg Config }

// New checks cfg and returns the backend.
func New(cfg Config) (*Backend, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &Backend{cfg: cfg}, nil
}

func (c Config) check() error {
	var missing []string
	if c.Bucket == "" {
		missing = append(missing, "the S3 bucket (--s3-bucket)")
	}
	if c.DSN == "" {
		missing = append(missing, "the MySQL DSN (--mysql-dsn or STELE_MYSQL_DSN)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("storage %q needs %s", "aws", strings.Join(missing, " and "))
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

// Storage is the open aws backend.
type Storage struct {
	cfg    Config
	s3     *s3.Client
	prefix string
	shared *mysqlstore.Store
	driver tessera.Driver
}

// Open opens the database (bound to the log's key: a database that holds
// another log is refused) and Tessera's AWS driver on the bucket.
func (b *Backend) Open(ctx context.Context, env backend.Env) (backend.Storage, error) {
	if env.CheckpointInterval < time.Second {
		return nil, fmt.Errorf("storage %q publishes at most one checkpoint a second: set the checkpoint interval to 1s or more (it is %s)", "aws", env.CheckpointInterval)
	}
	shared, err := mysqlstore.Open(ctx, b.cfg.DSN, mysqlstore.Options{ClaimLease: b.cfg.ClaimLease})
	if err != nil {
		return nil, err
	}
	// A read-only server writes nothing: the key binding is checked at a
	// writer's start.
	if env.ReadOnly {
	} else if err := shared.BindLogKey(ctx, env.VerifierKey); err != nil {
		shared.Close()
		return nil, err
	}
	s := &Storage{cfg: b.cfg, shared: shared}
	if s.driver, err = s.openDriver(ctx, env); err != nil {
		shared.Close()
		return nil, err
	}
	return s, nil
}

// openDriver makes Tessera's AWS driver: credentials from the standard AWS
// sources, an optional endpoint for S3-compatible stores.
func (s *Storage) openDriver(ctx context.Context, env backend.Env) (tessera.Driver, error) {
	var opts []func(*awsconfig.LoadOptions) error
	region := s.cfg.Region
	if region == "" && s.cfg.Endpoint != "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
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
		if s.cfg.Endpoint != "" {
			o.BaseEndpoint = sdkaws.String(s.cfg.Endpoint)
		}
		o.UsePathStyle = s.cfg.PathStyle
	}
	s.prefix = strings.Trim(s.cfg.Prefix, "/")
	s3opts, err = s.withRetention(ctx, env, sdk, s3opts)
	if err != nil {
		return nil, err
	}
	s.s3 = s3.NewFromConfig(sdk, s3opts)
	dc := tessaws.Config{
		Bucket:       s.cfg.Bucket,
		BucketPrefix: s.prefix,
		DSN:          s.cfg.DSN,
		HTTPClient:   env.HTTPClient,
	}
	if s.cfg.Endpoint != "" || s.cfg.PathStyle || s.cfg.Region != "" || s.cfg.Retention != "" {
		// Tessera's driver uses its own defaults unless given a config.
		dc.SDKConfig, dc.S3Options = &sdk, s3opts
	}
	d, err := tessaws.New(ctx, dc)
	if err != nil {
		return nil, fmt.Errorf("opening the aws log storage: %w", err)
	}
	return d, nil
}

// withRetention, when Config.Retention is set, checks that the bucket has
// S3 Object Lock and keeps object versions (refusing to start otherwise)
// and returns s3opts extended with the middleware that puts every tile and
// entry bundle under that retention. Tessera's driver writes through the same options.
func (s *Storage) withRetention(ctx context.Context, env backend.Env, sdk sdkaws.Config, s3opts func(*s3.Options)) (func(*s3.Options), error) {
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
	if err := worm.CheckBucket(ctx, c, s.cfg.Bucket); err != nil {
		return nil, err
	}
	env.Logger.Info("object lock retention on tiles and entry bundles", "bucket", s.cfg.Bucket, "retention", r.String())
	mw := worm.Middleware(r, s.prefix, time.Now)
	return func(o *s3.Options) {
		s3opts(o)
		o.APIOptions = append(o.APIOptions, mw)
	}, nil
}

// Driver is Tessera's AWS driver on the bucket and database.
func (s *Storage) Driver() tessera.Driver { return s.driver }

// TuneAppend raises the pushback bound (entries sequenced but not yet
// integrated; Tessera's default 4096) to what one integration pass takes:
// entries are integrated once a second, up to DefaultIntegrationSizeLimit
// at a time, and otherwise a burst of a few thousand events is refused
// while the tree is fine.
func (s *Storage) TuneAppend(opts *tessera.AppendOptions) {
	opts.WithPushback(tessaws.DefaultIntegrationSizeLimit)
}

// Payloads is the shared database.
func (s *Storage) Payloads() backend.Payloads { return s.shared }

// Shared claims events in the database, so two replicas never sequence the
// same event.
func (s *Storage) Shared() backend.Claimer { return claimer{s.shared} }

type claimer struct{ s *mysqlstore.Store }

func (c claimer) NewClaims() backend.Claims { return c.s.NewClaims() }

// Tiles serves the tlog-tiles read API by redirecting to PublicTilesURL
// when set, else by reading the bucket.
func (s *Storage) Tiles() http.Handler {
	if s.cfg.PublicTilesURL != "" {
		return tiles.NewRedirect(s.cfg.PublicTilesURL)
	}
	return tiles.NewHandler(bucketReader{s})
}

// Check reports whether the database and the bucket both answer.
func (s *Storage) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.shared.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if _, err := (bucketReader{s}).ReadCheckpoint(ctx); err != nil {
		return fmt.Errorf("object store unreachable: %w", err)
	}
	return nil
}

// RepublishStale does nothing: the replicas republish through Tessera's
// driver.
func (s *Storage) RepublishStale(func([]byte) bool) {}

// Maintain does nothing: the objects are immutable under the bucket's own
// policy (Retention), and the server follows the shared indexes.
func (s *Storage) Maintain(context.Context, func() uint64) {}

// Reader reads the bucket.
func (s *Storage) Reader() tiles.Reader { return bucketReader{s} }

// ReadObject reads <prefix>/name from the bucket.
func (s *Storage) ReadObject(ctx context.Context, name string) ([]byte, error) {
	return bucketReader{s}.get(ctx, name)
}

// WriteObject writes <prefix>/name to the bucket.
func (s *Storage) WriteObject(ctx context.Context, name string, raw []byte) error {
	key := name
	if s.prefix != "" {
		key = path.Join(s.prefix, name)
	}
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: sdkaws.String(s.cfg.Bucket), Key: sdkaws.String(key), Body: bytes.NewReader(raw),
		ContentType: sdkaws.String("text/plain; charset=utf-8"),
	})
	if err != nil {
		return fmt.Errorf("writing %s to bucket %s: %w", key, s.cfg.Bucket, err)
	}
	return nil
}

// Close closes the database.
func (s *Storage) Close() error { return s.shared.Close() }

// bucketReader reads exactly the requested tlog-tiles objects from the bucket
// (no fallback from a partial to a full tile, as tiles.Reader requires).
type bucketReader struct{ s *Storage }

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
	if r.s.prefix != "" {
		key = path.Join(r.s.prefix, name)
	}
	bucket := r.s.cfg.Bucket
	out, err := r.s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: sdkaws.String(bucket), Key: sdkaws.String(key)})
	if err != nil {
		var nsk *types.NoSuchKey
		var api smithy.APIError
		if errors.As(err, &nsk) || (errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey")) {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		return nil, fmt.Errorf("reading %s from bucket %s: %w", key, bucket, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s from bucket %s: %w", key, bucket, err)
	}
	return b, nil
}
