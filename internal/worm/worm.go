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
	"math"
	"path"
	"slices"
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

// maxDays is the longest retention Parse accepts: what a time.Duration holds.
const maxDays = uint64(math.MaxInt64 / int64(24*time.Hour))

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
		if unit == 'y' {
			days *= 365
		}
		switch {
		case perr != nil:
			err = perr
		case days > maxDays:
			return r, fmt.Errorf("retention %q: longer than the %d days a time.Duration holds", s, maxDays)
		default:
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

// CheckBucket returns nil when bucket has Object Lock enabled and keeps
// object versions (so every published checkpoint is kept, and a delete or
// an overwrite of a tile only hides its locked version), and an error
// saying how to make such a bucket otherwise.
func CheckBucket(ctx context.Context, c *s3.Client, bucket string) error {
	out, err := c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	var ae smithy.APIError
	locked := false
	switch {
	case errors.As(err, &ae) && (ae.ErrorCode() == "ObjectLockConfigurationNotFoundError" || ae.ErrorCode() == "ObjectLockConfigurationNotFound"):
	case err != nil:
		return fmt.Errorf("reading the Object Lock configuration of bucket %s: %w", bucket, err)
	default:
		locked = out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled
	}
	var versioning types.BucketVersioningStatus
	if locked {
		v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
		if err != nil {
			return fmt.Errorf("reading the versioning state of bucket %s: %w", bucket, err)
		}
		versioning = v.Status
	}
	return judgeBucket(bucket, locked, versioning)
}

// judgeBucket is CheckBucket's verdict on what the bucket answered.
func judgeBucket(bucket string, locked bool, versioning types.BucketVersioningStatus) error {
	if !locked {
		return fmt.Errorf("bucket %s does not have S3 Object Lock enabled, so --retention cannot be kept: create a bucket with it "+
			"(aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket), or enable it on this one "+
			"(aws s3api put-bucket-versioning --bucket %s --versioning-configuration Status=Enabled, then "+
			"aws s3api put-object-lock-configuration --bucket %s --object-lock-configuration ObjectLockEnabled=Enabled); see docs/security.md", bucket, bucket, bucket)
	}
	if versioning != types.BucketVersioningStatusEnabled {
		// AWS turns versioning on with Object Lock and never lets it be
		// suspended; an S3-compatible store may not (versitygw without
		// --versioning-dir). Without versions each checkpoint replaces the
		// last, and an overwritten tile loses its locked content.
		state := string(versioning)
		if state == "" {
			state = "never enabled"
		}
		return fmt.Errorf("bucket %s has Object Lock but does not keep object versions (versioning: %s), so past checkpoints would not be kept: "+
			"enable versioning (aws s3api put-bucket-versioning --bucket %s --versioning-configuration Status=Enabled) or, on a self-hosted store, "+
			"turn on its versioning support (versitygw: --versioning-dir); see docs/security.md", bucket, state, bucket)
	}
	return nil
}

// Problem is an object version whose retention is missing or falls short,
// or a tile or bundle that was deleted or rewritten.
type Problem struct {
	Key          string
	VersionID    string // "" on a store without versions
	LastModified time.Time
	Mode         string    // "" when none
	RetainUntil  time.Time // zero when none
	Reason       string
}

// Slack is how much earlier than LastModified+Period a retain-until date
// may be and still count: the server takes the date when it sends the
// request, the store stamps LastModified when the body has arrived.
const Slack = time.Minute

// version is one entry of a key's version listing.
type version struct {
	id, etag     string
	lastModified time.Time
	latest       bool
	deleteMarker bool
}

// Check lists, under prefix in bucket, every version of every tile and
// entry bundle whose retention is missing, weaker than r.Mode (governance
// when compliance is required) or ends before its LastModified + r.Period;
// every full tile or bundle whose current version is a delete marker (the
// locked version is hidden from readers; partial ones are deleted by
// Tessera's garbage collection once full ones exist); and every full tile
// or bundle with versions of different content (tlog-tiles objects never
// change once full). It reads each version's retention, and yields a nil *Problem for each version that passes, so that callers
// can count them.
func Check(ctx context.Context, c *s3.Client, bucket, prefix string, r Retention) iter.Seq2[*Problem, error] {
	return func(yield func(*Problem, error) bool) {
		p := strings.Trim(prefix, "/")
		pages := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(path.Join(p, "tile") + "/")})
		pending := map[string][]version{} // keys whose versions may go on in the next page
		finish := func(key string) bool {
			vs := pending[key]
			delete(pending, key)
			for _, pr := range judgeKey(key, vs) {
				if !yield(pr, nil) {
					return false
				}
			}
			for _, v := range vs {
				if v.deleteMarker {
					continue
				}
				pr, err := checkVersion(ctx, c, bucket, key, v, r)
				if !yield(pr, err) {
					return false
				}
			}
			return true
		}
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(nil, fmt.Errorf("listing the versions under %s/%s: %w", bucket, p, err))
				return
			}
			last := ""
			for _, o := range page.Versions {
				k := aws.ToString(o.Key)
				pending[k] = append(pending[k], version{id: aws.ToString(o.VersionId), etag: aws.ToString(o.ETag),
					lastModified: aws.ToTime(o.LastModified), latest: aws.ToBool(o.IsLatest)})
				last = max(last, k)
			}
			for _, o := range page.DeleteMarkers {
				k := aws.ToString(o.Key)
				pending[k] = append(pending[k], version{id: aws.ToString(o.VersionId), lastModified: aws.ToTime(o.LastModified),
					latest: aws.ToBool(o.IsLatest), deleteMarker: true})
				last = max(last, k)
			}
			// Keys before the page's last one are complete.
			more := aws.ToBool(page.IsTruncated)
			for _, k := range sortedKeys(pending) {
				if more && k >= last {
					break
				}
				if !finish(k) {
					return
				}
			}
		}
		for _, k := range sortedKeys(pending) {
			if !finish(k) {
				return
			}
		}
	}
}

func sortedKeys(m map[string][]version) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// judgeKey finds what is wrong with a key as a whole: a full tile or
// bundle deleted (its current version a delete marker) or rewritten
// (versions of different content).
func judgeKey(key string, vs []version) []*Problem {
	if strings.Contains(key, ".p/") {
		return nil // partial: Tessera deletes it once the full one is written
	}
	var out []*Problem
	etags := map[string]bool{}
	for _, v := range vs {
		if v.deleteMarker && v.latest {
			out = append(out, &Problem{Key: key, VersionID: v.id, LastModified: v.lastModified,
				Reason: "deleted: the current version is a delete marker, which hides the locked version from readers (delete the marker to restore it)"})
		}
		if !v.deleteMarker {
			etags[v.etag] = true
		}
	}
	if len(etags) > 1 {
		out = append(out, &Problem{Key: key, Reason: fmt.Sprintf("rewritten: %d versions with different content (a full tile or bundle never changes)", len(etags))})
	}
	return out
}

// checkVersion reads one version's retention and judges it against r. It
// asks GetObjectRetention rather than HeadObject: versitygw answers a
// HeadObject of a noncurrent version without its lock headers.
func checkVersion(ctx context.Context, c *s3.Client, bucket, key string, v version, r Retention) (*Problem, error) {
	in := &s3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if v.id != "" && v.id != "null" {
		in.VersionId = aws.String(v.id)
	}
	pr := &Problem{Key: key, VersionID: v.id, LastModified: v.lastModified}
	out, err := c.GetObjectRetention(ctx, in)
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchObjectLockConfiguration" || ae.ErrorCode() == "ObjectLockConfigurationNotFoundError"):
	case err != nil:
		return nil, fmt.Errorf("reading the retention of %s (version %s): %w", key, v.id, err)
	case out.Retention != nil:
		pr.Mode, pr.RetainUntil = string(out.Retention.Mode), aws.ToTime(out.Retention.RetainUntilDate)
	}
	return judgeRetention(pr, r), nil
}

// judgeRetention sets pr.Reason and returns pr when its retention falls
// short of r, and returns nil when it does not.
func judgeRetention(pr *Problem, r Retention) *Problem {
	want := pr.LastModified.Add(r.Period - Slack)
	switch {
	case pr.Mode == "" || pr.RetainUntil.IsZero():
		pr.Reason = "no retention"
	case r.Mode == types.ObjectLockRetentionModeCompliance && pr.Mode != string(types.ObjectLockModeCompliance):
		pr.Reason = fmt.Sprintf("mode %s, compliance required", pr.Mode)
	case pr.RetainUntil.Before(want):
		pr.Reason = fmt.Sprintf("retained until %s, %s short of %s", pr.RetainUntil.Format(time.RFC3339), want.Sub(pr.RetainUntil).Round(time.Second), formatPeriod(r.Period))
	default:
		return nil
	}
	return pr
}
