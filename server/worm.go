package server

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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
