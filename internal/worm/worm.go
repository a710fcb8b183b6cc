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
	"io"
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
	"github.com/transparency-dev/tessera/api/layout"
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
	// Whole is set when the problem is with the key as a whole (deleted,
	// rewritten, missing; no checkpoint), not with one version's retention.
	Whole bool
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
// Tessera's garbage collection once full ones exist); every full tile or
// bundle with versions of different content (tlog-tiles objects never
// change once full); and every full tile or bundle that the current
// checkpoint's tree size needs but of which no version is left (a locked
// version deleted with the governance bypass, or one never written). It
// reads each version's retention, and yields a nil *Problem for each
// version that passes, so that callers can count them.
func Check(ctx context.Context, c *s3.Client, bucket, prefix string, r Retention) iter.Seq2[*Problem, error] {
	return func(yield func(*Problem, error) bool) {
		p := strings.Trim(prefix, "/")
		// The checkpoint is read before the listing: every full tile and
		// bundle of its size was written before it was published.
		want, pr, err := readExpected(ctx, c, bucket, p)
		if err != nil {
			yield(nil, err)
			return
		}
		if pr != nil && !yield(pr, nil) {
			return
		}
		pages := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(path.Join(p, "tile") + "/")})
		pending := map[string][]version{} // keys whose versions may go on in the next page
		finish := func(key string) bool {
			vs := pending[key]
			delete(pending, key)
			for _, v := range vs {
				if !v.deleteMarker {
					want.mark(strings.TrimPrefix(key, p+"/"))
				}
			}
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
		for k := range want.missing() {
			if !yield(&Problem{Key: path.Join(p, k), Whole: true, Reason: fmt.Sprintf("missing: the checkpoint (size %d) needs it, and no version of it is left", want.size)}, nil) {
				return
			}
		}
	}
}

// readExpected reads prefix/checkpoint and returns what its tree size
// needs. A missing checkpoint is a Problem (nothing can be checked for
// completeness, and a wrong --s3-prefix would otherwise pass).
func readExpected(ctx context.Context, c *s3.Client, bucket, prefix string) (*expected, *Problem, error) {
	key := path.Join(prefix, "checkpoint")
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nsk *types.NoSuchKey
	var ae smithy.APIError
	if errors.As(err, &nsk) || errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return newExpected(0), &Problem{Key: key, Whole: true, Reason: "no checkpoint: the log has published nothing under this prefix, or its checkpoint was deleted"}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxCheckpoint+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", key, err)
	}
	size, err := CheckpointSize(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", key, err)
	}
	if size > maxSize {
		return nil, nil, fmt.Errorf("%s: tree size %d is more than retention-check holds in memory (%d entries); check such a log with stele audit", key, size, uint64(maxSize))
	}
	return newExpected(size), nil, nil
}

// maxSize bounds the tree size whose full tiles retention-check tracks: a
// bit per full tile, 64 MiB at this size.
const maxSize = 1 << 36

// expected tracks which of the full entry bundles and hash tiles a tree of
// size holds have been seen: these never change or go away (partial ones
// are replaced as the tree grows, and Tessera deletes them).
type expected struct {
	size uint64
	// seen[0] is the entry bundles, seen[1+L] the tiles of level L (the
	// hashes at tree level 8L): a bit per full one.
	seen [][]uint64
}

func newExpected(size uint64) *expected {
	e := &expected{size: size}
	e.seen = append(e.seen, make([]uint64, (size/layout.EntryBundleWidth+63)/64))
	for level := uint64(0); level < 7 && size>>(8*level) >= layout.TileWidth; level++ {
		e.seen = append(e.seen, make([]uint64, ((size>>(8*level))/layout.TileWidth+63)/64))
	}
	return e
}

// full is how many full ones of kind k (0 bundles, 1+L tiles) the tree has.
func (e *expected) full(k int) uint64 {
	if k == 0 {
		return e.size / layout.EntryBundleWidth
	}
	return (e.size >> (8 * uint64(k-1))) / layout.TileWidth
}

// mark records that key (a tlog-tiles path) exists. Keys that are not a
// canonical path of a full bundle or tile of the tree are ignored.
func (e *expected) mark(key string) {
	k, n, ok := parseFull(key)
	if ok && k < len(e.seen) && n < e.full(k) {
		e.seen[k][n/64] |= 1 << (n % 64)
	}
}

// missing yields the paths of the full bundles and tiles not marked.
func (e *expected) missing() iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range e.seen {
			for n := range e.full(k) {
				if e.seen[k][n/64]&(1<<(n%64)) != 0 {
					continue
				}
				p := layout.EntriesPath(n, 0)
				if k > 0 {
					p = layout.TilePath(uint64(k-1), n, 0)
				}
				if !yield(p) {
					return
				}
			}
		}
	}
}

// parseFull reads the canonical tlog-tiles path of a full entry bundle (kind
// 0) or a full tile of level L (kind 1+L).
func parseFull(p string) (kind int, index uint64, ok bool) {
	if rest, ok := strings.CutPrefix(p, "tile/entries/"); ok {
		n, w, err := layout.ParseTileIndexPartial(rest)
		if err != nil || w != 0 || layout.EntriesPath(n, 0) != p {
			return 0, 0, false
		}
		return 0, n, true
	}
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return 0, 0, false
	}
	level, nw, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	l, n, w, err := layout.ParseTileLevelIndexPartial(level, nw)
	if err != nil || w != 0 || l >= 7 || layout.TilePath(l, n, 0) != p {
		return 0, 0, false
	}
	return int(l) + 1, n, true
}

// maxCheckpoint bounds the checkpoint read (origin, size, root, and the
// signatures of the log and its witnesses).
const maxCheckpoint = 64 << 10

// CheckpointSize reads the tree size of a C2SP checkpoint's body without
// verifying its signature (stele audit does that): the second line, in
// decimal without leading zeros, after a non-empty origin line and before
// the root hash line.
func CheckpointSize(raw []byte) (uint64, error) {
	if len(raw) > maxCheckpoint {
		return 0, fmt.Errorf("not a checkpoint: longer than %d bytes", maxCheckpoint)
	}
	lines := strings.SplitN(string(raw), "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return 0, errors.New("not a checkpoint: want an origin line, a tree size line and a root hash line")
	}
	n := lines[1]
	if n == "" || strings.Trim(n, "0123456789") != "" || len(n) > 1 && n[0] == '0' {
		return 0, fmt.Errorf("not a checkpoint: the tree size line %q is not a decimal number without leading zeros", n)
	}
	size, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a checkpoint: the tree size %q: %w", n, err)
	}
	return size, nil
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
			out = append(out, &Problem{Key: key, VersionID: v.id, LastModified: v.lastModified, Whole: true,
				Reason: "deleted: the current version is a delete marker, which hides the locked version from readers (delete the marker to restore it)"})
		}
		if !v.deleteMarker {
			etags[v.etag] = true
		}
	}
	if len(etags) > 1 {
		out = append(out, &Problem{Key: key, Whole: true, Reason: fmt.Sprintf("rewritten: %d versions with different content (a full tile or bundle never changes)", len(etags))})
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
