// Package worm puts a log's tiles and entry bundles on write-once storage:
// S3 Object Lock retention on every tile and bundle the aws backend writes
// (an S3 client middleware, so Tessera's driver needs no change), the
// checks that the bucket can hold it, and the listing of objects whose
// retention is missing or short (stele retention-check). See
// docs/security.md, "WORM retention".
package worm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Retention is an Object Lock mode and how long each object is kept.
type Retention struct {
	Mode   types.ObjectLockRetentionMode // GOVERNANCE or COMPLIANCE
	Period time.Duration
}

func (r Retention) String() string {
	return strings.ToLower(string(r.Mode)) + ":" + formatPeriod(r.Period)
}

func formatPeriod(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Parse reads MODE:DURATION: governance or compliance, then a Go duration
// (36h) or a whole number of days (2555d) or years of 365 days (7y).
func Parse(s string) (Retention, error) {
	mode, dur, ok := strings.Cut(s, ":")
	var r Retention
	switch strings.ToLower(mode) {
	case "governance":
		r.Mode = types.ObjectLockRetentionModeGovernance
	case "compliance":
		r.Mode = types.ObjectLockRetentionModeCompliance
	default:
		return r, fmt.Errorf("retention %q: want MODE:DURATION with MODE governance or compliance, e.g. compliance:7y or governance:30d", s)
	}
	if !ok || dur == "" {
		return r, fmt.Errorf("retention %q: the duration is missing, e.g. %s:7y", s, strings.ToLower(mode))
	}
	var err error
	if n, unit := dur[:len(dur)-1], dur[len(dur)-1]; unit == 'd' || unit == 'y' {
		days, perr := strconv.ParseUint(n, 10, 32)
		if perr != nil {
			err = perr
		} else if unit == 'y' {
			r.Period = time.Duration(days) * 365 * 24 * time.Hour
		} else {
			r.Period = time.Duration(days) * 24 * time.Hour
		}
	} else {
		r.Period, err = time.ParseDuration(dur)
	}
	if err != nil || r.Period < time.Second {
		return r, fmt.Errorf("retention %q: the duration must be positive: a Go duration (36h), days (30d) or years (7y)", s)
	}
	return r, nil
}

// IsLogObject reports whether key (below the log's prefix) is a tile or
// an entry bundle: what retention applies to. The checkpoint, which is
// replaced every second, is not (a versioned bucket keeps its versions).
func IsLogObject(prefix, key string) bool {
	if p := strings.Trim(prefix, "/"); p != "" {
		rest, ok := strings.CutPrefix(key, p+"/")
		if !ok {
			return false
		}
		key = rest
	}
	return strings.HasPrefix(key, "tile/")
}

// Middleware returns an S3 client option that sets r's Object Lock mode
// and a retain-until date of now+r.Period on every PutObject of a tile or
// entry bundle under prefix. Add it to s3.Options.APIOptions.
func Middleware(r Retention, prefix string, now func() time.Time) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("SteleObjectLockRetention",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if put, ok := in.Parameters.(*s3.PutObjectInput); ok && IsLogObject(prefix, aws.ToString(put.Key)) {
					put.ObjectLockMode = types.ObjectLockMode(r.Mode)
					put.ObjectLockRetainUntilDate = aws.Time(now().Add(r.Period).UTC())
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

// CheckBucket returns nil when bucket has Object Lock enabled, and an
// error saying how to create one otherwise.
func CheckBucket(ctx context.Context, c *s3.Client, bucket string) error {
	out, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && (ae.ErrorCode() == "ObjectLockConfigurationNotFoundError" || ae.ErrorCode() == "ObjectLockConfigurationNotFound"):
	case err != nil:
		return fmt.Errorf("reading the Object Lock configuration of bucket %s: %w", bucket, err)
	case out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled:
		return nil
	}
	return fmt.Errorf("bucket %s does not have S3 Object Lock enabled, so --retention cannot be kept: create a bucket with it "+
		"(aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket), or enable it on this one "+
		"(aws s3api put-bucket-versioning --bucket %s --versioning-configuration Status=Enabled, then "+
		"aws s3api put-object-lock-configuration --bucket %s --object-lock-configuration ObjectLockEnabled=Enabled); see docs/security.md", bucket, bucket, bucket)
}

// Versioned reports whether bucket keeps object versions (so every
// published checkpoint is kept).
func Versioned(ctx context.Context, c *s3.Client, bucket string) (bool, error) {
	out, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
	if err != nil {
		return false, err
	}
	return out.Status == types.BucketVersioningStatusEnabled, nil
}

// Problem is an object whose retention is missing or falls short.
type Problem struct {
	Key          string
	LastModified time.Time
	Mode         string    // "" when none
	RetainUntil  time.Time // zero when none
	Reason       string
}

// Slack is how much earlier than LastModified+Period a retain-until date
// may be and still count: the server takes the date when it sends the
// request, the store stamps LastModified when the body has arrived.
const Slack = time.Minute

// Check lists, under prefix in bucket, every tile and entry bundle whose
// retention is missing, weaker than r.Mode (governance when compliance is
// required) or ends before its LastModified + r.Period. It reads each
// object's retention with HeadObject, and yields a nil *Problem for each
// object that passes, so that callers can count them.
func Check(ctx context.Context, c *s3.Client, bucket, prefix string, r Retention) iter.Seq2[*Problem, error] {
	return func(yield func(*Problem, error) bool) {
		p := strings.Trim(prefix, "/")
		pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(path.Join(p, "tile") + "/")})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(nil, fmt.Errorf("listing %s/%s: %w", bucket, p, err))
				return
			}
			for _, o := range page.Contents {
				key := aws.ToString(o.Key)
				h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: o.Key})
				if err != nil {
					if !yield(nil, fmt.Errorf("reading the retention of %s: %w", key, err)) {
						return
					}
					continue
				}
				pr := &Problem{Key: key, LastModified: aws.ToTime(o.LastModified), Mode: string(h.ObjectLockMode), RetainUntil: aws.ToTime(h.ObjectLockRetainUntilDate)}
				want := pr.LastModified.Add(r.Period - Slack)
				switch {
				case pr.Mode == "" || pr.RetainUntil.IsZero():
					pr.Reason = "no retention"
				case r.Mode == types.ObjectLockRetentionModeCompliance && pr.Mode != string(types.ObjectLockModeCompliance):
					pr.Reason = fmt.Sprintf("mode %s, compliance required", pr.Mode)
				case pr.RetainUntil.Before(want):
					pr.Reason = fmt.Sprintf("retained until %s, %s short of %s", pr.RetainUntil.Format(time.RFC3339), want.Sub(pr.RetainUntil).Round(time.Second), formatPeriod(r.Period))
				default:
					pr = nil
				}
				if !yield(pr, nil) {
					return
				}
			}
		}
	}
}
