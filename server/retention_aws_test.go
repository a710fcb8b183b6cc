package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/stele-dev/stele/internal/awstest"
	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/internal/worm"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
	awsbackend "github.com/stele-dev/stele/server/backend/aws"
)

func awsSDK(t *testing.T, env awstest.Env) *aws.Config {
	t.Helper()
	sdk, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(env.Region))
	if err != nil {
		t.Fatal(err)
	}
	return &sdk
}

func s3Client(t *testing.T, env awstest.Env) *s3.Client {
	t.Helper()
	return s3.NewFromConfig(*awsSDK(t, env), func(o *s3.Options) { o.BaseEndpoint = aws.String(env.Endpoint); o.UsePathStyle = true })
}

// lockingClient is an S3 client that writes tiles under prefix with the
// retention the server's --retention would set (worm.Middleware).
func lockingClient(t *testing.T, env awstest.Env, retention, prefix string) *s3.Client {
	t.Helper()
	r, err := worm.Parse(retention)
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(*awsSDK(t, env), func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String(env.Endpoint), true
		o.APIOptions = append(o.APIOptions, worm.Middleware(r, prefix, time.Now))
	})
}

// TestAWSRetention runs the aws backend with --retention on a versitygw
// bucket with Object Lock (and so versioning, as on AWS): every tile and
// entry bundle is written under retention; every published checkpoint is
// kept as a version; versitygw refuses to delete a locked version, to
// shorten its retention, or (under a legal hold) to let even the
// governance bypass delete it; a delete or overwrite without a version id
// only hides the locked version, and retention-check lists it until it is
// restored; erasure still works; a server with --retention refuses a bucket
// without Object Lock, saying how to create one.
func TestAWSRetention(t *testing.T) {
	env := awstest.New(t)
	c := s3Client(t, env)
	ctx := ctxT(t, 3*time.Minute)
	lockBucket := strings.ReplaceAll("lock-"+env.Prefix, "_", "-")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(lockBucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("creating a bucket with Object Lock: %v", err)
	}
	if v, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(lockBucket)}); err != nil || v.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("the Object Lock bucket keeps no versions (%v, %v): start versitygw with --versioning-dir, as .ci/services does", v, err)
	}

	// Without Object Lock: refused, with the way out.
	cfg := awsConfig(env, func(c *awsbackend.Config) { c.Retention = "governance:1h" })
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Logger = quietLogger()
	if _, err := server.New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "does not have S3 Object Lock enabled") || !strings.Contains(err.Error(), "--object-lock-enabled-for-bucket") {
		t.Fatalf("server on a bucket without Object Lock: %v", err)
	}

	cfg = awsConfig(env, func(c *awsbackend.Config) { c.Bucket, c.Retention = lockBucket, "governance:1h" })
	ts := startServer(t, dir, cfg)
	all := appendConcurrently(t, ts.cli, 1, 1, 300, 300)
	if _, err := ts.cli.Receipt(ctx, uint64(len(all)-1)); err != nil {
		t.Fatal(err)
	}
	var more []*stelev1.Event
	for i := range 300 {
		more = append(more, event("entra/more/audit", fmt.Sprintf("more-%d", i), 300))
	}
	rs := mustAppend(t, ts.cli, more) // 600 entries: bundles 000, 001 full, 002.p/88
	size := int(rs[len(rs)-1].Index) + 1
	if _, err := ts.cli.Receipt(ctx, rs[len(rs)-1].Index); err != nil {
		t.Fatal(err)
	}

	retentionCheck := func(prefix, retention string) (string, string, int) {
		var out, errb bytes.Buffer
		code := cli.Main([]string{"retention-check", "--s3-bucket", lockBucket, "--s3-prefix", prefix, "--s3-endpoint", env.Endpoint,
			"--s3-region", env.Region, "--s3-path-style", "--retention", retention}, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}
	mustPass := func(when string) {
		t.Helper()
		if out, errOut, code := retentionCheck(env.Prefix, "governance:1h"); code != 0 || !strings.Contains(errOut, "retention-check OK") {
			t.Fatalf("retention-check %s: exit %d\n%s%s", when, code, out, errOut)
		}
	}
	mustPass("on the log")
	// A stronger or longer requirement than the objects have is reported.
	for _, c := range []struct{ retention, want string }{
		{"compliance:1h", "mode GOVERNANCE, compliance required"},
		{"governance:2h", "short of 2h0m0s"},
	} {
		if out, errOut, code := retentionCheck(env.Prefix, c.retention); code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("retention-check --retention %s: exit %d\n%s%s", c.retention, code, out, errOut)
		}
	}

	// Tessera's garbage collection (every minute; done here by hand, as it
	// does it: a delete without a version id) of a partial bundle that a
	// full one replaced leaves a delete marker over the locked version,
	// which retention-check expects.
	obsolete := env.Prefix + "/tile/entries/001.p/44" // the edge after the first 300 entries
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(obsolete)}); err != nil {
		t.Fatalf("the partial bundle of the first append: %v", err)
	}
	if del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(obsolete)}); err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("deleting an obsolete partial bundle as Tessera does: %+v %v", del, err)
	}
	mustPass("after an obsolete partial bundle was garbage-collected")

	// Every published checkpoint is kept as a version of the object.
	cps, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(lockBucket), Prefix: aws.String(env.Prefix + "/checkpoint")})
	if err != nil || len(cps.Versions) < 2 {
		t.Fatalf("checkpoint versions: %v, %v; want at least 2 (two appends, each waited on)", cps, err)
	}
	treeSize := func(versionID string) int {
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(env.Prefix + "/checkpoint"), VersionId: aws.String(versionID)})
		if err != nil {
			t.Fatalf("reading checkpoint version %s: %v", versionID, err)
		}
		defer o.Body.Close()
		b, _ := io.ReadAll(o.Body)
		lines := strings.SplitN(string(b), "\n", 3)
		n, err := strconv.Atoi(lines[min(1, len(lines)-1)])
		if err != nil {
			t.Fatalf("checkpoint version %s: %q", versionID, b)
		}
		return n
	}
	sizes := map[int]bool{}
	for _, v := range cps.Versions {
		sizes[treeSize(aws.ToString(v.VersionId))] = true
	}
	if len(sizes) < 2 || !sizes[size] {
		t.Errorf("the checkpoint's versions hold tree sizes %v, want several, the last %d", sizes, size)
	}

	// Every tile and bundle is locked.
	tile := env.Prefix + "/tile/entries/000"
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile)})
	if err != nil {
		t.Fatalf("head %s: %v", tile, err)
	}
	if string(head.ObjectLockMode) != "GOVERNANCE" || head.ObjectLockRetainUntilDate == nil || time.Until(*head.ObjectLockRetainUntilDate) < 50*time.Minute {
		t.Fatalf("%s: mode %q until %v", tile, head.ObjectLockMode, head.ObjectLockRetainUntilDate)
	}
	locked := aws.ToString(head.VersionId)
	original := getObject(t, c, lockBucket, tile, locked)
	refused := func(what string, err error) {
		t.Helper()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" || !strings.Contains(ae.ErrorMessage(), "object lock") {
			t.Errorf("%s: %v, want refused as locked", what, err)
		}
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: aws.String(locked)})
	refused("deleting the locked version of a bundle", err)
	_, err = c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: aws.String(locked),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(time.Minute))}})
	refused("shortening a bundle's governance retention without the bypass", err)
	// A legal hold stops even the governance bypass.
	hold := func(s types.ObjectLockLegalHoldStatus) {
		t.Helper()
		if _, err := c.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: aws.String(locked),
			LegalHold: &types.ObjectLockLegalHold{Status: s}}); err != nil {
			t.Fatalf("legal hold %s: %v", s, err)
		}
	}
	hold(types.ObjectLockLegalHoldStatusOn)
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: aws.String(locked), BypassGovernanceRetention: aws.Bool(true)})
	refused("deleting a bundle under a legal hold, with the governance bypass", err)
	hold(types.ObjectLockLegalHoldStatusOff)

	// A delete without a version id is allowed (S3 semantics): it adds a
	// delete marker that hides the bundle from readers, and retention-check
	// says so; the locked version is intact, and deleting the marker
	// restores it.
	del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile)})
	if err != nil || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("deleting a bundle without a version id: %+v %v, want a delete marker", del, err)
	}
	if out, errOut, code := retentionCheck(env.Prefix, "governance:1h"); code != 1 || !strings.Contains(out, tile+": deleted: the current version is a delete marker") || strings.Count(out, "\n") != 1 {
		t.Errorf("retention-check with a deleted bundle: exit %d\n%s%s", code, out, errOut)
	}
	if got := getObject(t, c, lockBucket, tile, locked); !bytes.Equal(got, original) {
		t.Errorf("the locked version changed under the delete marker")
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: del.VersionId}); err != nil {
		t.Fatalf("deleting the delete marker: %v", err)
	}
	mustPass("once the delete marker is gone")

	// An overwrite adds a version without retention, which readers get:
	// retention-check names it and the rewrite; deleting it (it is not
	// locked) restores the bundle.
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), Body: strings.NewReader("rewritten")})
	if err != nil {
		t.Fatalf("overwriting a bundle: %v", err)
	}
	if out, errOut, code := retentionCheck(env.Prefix, "governance:1h"); code != 1 || !strings.Contains(out, tile+": rewritten: 2 versions with different content") ||
		!strings.Contains(out, tile+" (version "+aws.ToString(put.VersionId)+"): no retention") || strings.Count(out, "\n") != 2 {
		t.Errorf("retention-check with an overwritten bundle: exit %d\n%s%s", code, out, errOut)
	}
	if got := getObject(t, c, lockBucket, tile, locked); !bytes.Equal(got, original) {
		t.Errorf("the locked version changed under the overwrite")
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: put.VersionId}); err != nil {
		t.Fatalf("deleting the unlocked overwrite: %v", err)
	}
	if got := getObject(t, c, lockBucket, tile, ""); !bytes.Equal(got, original) {
		t.Errorf("the bundle after the overwrite was deleted is not the original")
	}
	mustPass("once the overwrite is gone")

	// Erasure touches the database only, so it works with retention on.
	target := all[5].idx
	if _, err := ts.cli.Erase(ctx, target, "GDPR Art. 17 request", "REQ-WORM-1"); err != nil {
		t.Fatalf("erase with retention on: %v", err)
	}
	if ev, err := ts.cli.Event(ctx, target); err != nil || ev.Tombstone == nil || len(ev.Payload) != 0 {
		t.Fatalf("GetEvent after erasure: %+v %v", ev, err)
	}

	// Compliance mode, through the same middleware: no bypass deletes a
	// version or shortens its retention.
	cprefix := env.Prefix + "-compliance"
	cc := lockingClient(t, env, "compliance:1h", cprefix)
	ckey := cprefix + "/tile/0/000"
	cput, err := cc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(ckey), Body: bytes.NewReader(original)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(ckey), VersionId: cput.VersionId, BypassGovernanceRetention: aws.Bool(true)})
	refused("deleting a compliance-locked tile with the governance bypass", err)
	_, err = c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(lockBucket), Key: aws.String(ckey), VersionId: cput.VersionId, BypassGovernanceRetention: aws.Bool(true),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(time.Now().Add(time.Minute))}})
	refused("shortening compliance retention with the governance bypass", err)
	if got, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(lockBucket), Key: aws.String(ckey), VersionId: cput.VersionId}); err != nil ||
		got.Retention.Mode != types.ObjectLockRetentionModeCompliance || time.Until(aws.ToTime(got.Retention.RetainUntilDate)) < 50*time.Minute {
		t.Errorf("the compliance tile's retention: %+v, %v", got, err)
	}
	// A prefix with no checkpoint is reported (a wrong --s3-prefix does not
	// pass for want of anything to check).
	if out, errOut, code := retentionCheck(cprefix, "compliance:1h"); code != 1 || !strings.Contains(out, cprefix+"/checkpoint: no checkpoint") {
		t.Errorf("retention-check of a prefix without a checkpoint: exit %d\n%s%s", code, out, errOut)
	}

	// An object written without retention is listed.
	stray := env.Prefix + "/tile/0/x999"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(stray), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := retentionCheck(env.Prefix, "governance:1h"); code != 1 || !strings.Contains(out, stray+" (version ") || !strings.Contains(out, "): no retention") || strings.Count(out, "\n") != 1 {
		t.Errorf("retention-check with a stray object: exit %d\n%s%s", code, out, errOut)
	}

	// The governance bypass (s3:BypassGovernanceRetention; versitygw's root
	// account has it) does delete a locked version outright: what
	// docs/security.md warns of, and why compliance mode exists. Nothing of
	// the bundle is left, and retention-check reports it missing: the
	// checkpoint's tree size needs it.
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), VersionId: aws.String(locked), BypassGovernanceRetention: aws.Bool(true)})
	if err != nil {
		t.Fatalf("deleting a governance-locked version with the bypass: %v, want allowed", err)
	}
	if out, errOut, code := retentionCheck(env.Prefix, "governance:1h"); code != 1 || !strings.Contains(out, tile+": missing: the checkpoint (size 60") || !strings.Contains(out, ") needs it, and no version of it is left\n") {
		t.Errorf("retention-check after a governance bypass: exit %d\n%s%s", code, out, errOut)
	}
}

// TestMigrateWithRetention: a posix log migrated to a bucket with Object
// Lock under --retention has every tile and entry bundle locked, as the
// server's own writes are (stele-server migrate passes --retention).
func TestMigrateWithRetention(t *testing.T) {
	env := awstest.New(t)
	c := s3Client(t, env)
	ctx := ctxT(t, 2*time.Minute)
	lockBucket := strings.ReplaceAll("mig-"+env.Prefix, "_", "-")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(lockBucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("creating a bucket with Object Lock: %v", err)
	}
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	var evs []*stelev1.Event
	for i := range 300 {
		evs = append(evs, event("entra/mig/audit", fmt.Sprintf("mig-%d", i), 200))
	}
	mustAppend(t, ts.cli, evs)
	ts.stop(t)

	dst := awsConfig(env, func(c *awsbackend.Config) { c.Bucket, c.Retention = lockBucket, "compliance:1h" }).Backend.(*awsbackend.Backend)
	if n, err := dst.Migrate(ctx, awsbackend.MigrateOptions{SrcDir: dir, Workers: 2, Logger: quietLogger()}); err != nil || n != 300 {
		t.Fatalf("migrate: %d, %v", n, err)
	}
	for _, k := range []string{"tile/entries/000", "tile/entries/001.p/44", "tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"} {
		r, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(lockBucket), Key: aws.String(env.Prefix + "/" + k)})
		if err != nil || r.Retention.Mode != types.ObjectLockRetentionModeCompliance || time.Until(aws.ToTime(r.Retention.RetainUntilDate)) < 50*time.Minute {
			t.Errorf("migrated %s: retention %+v, %v", k, r, err)
		}
	}
}

// getObject reads key (the given version, or the current one) in full.
func getObject(t *testing.T, c *s3.Client, bucket, key, versionID string) []byte {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	o, err := c.GetObject(context.Background(), in)
	if err != nil {
		t.Fatalf("reading %s (version %q): %v", key, versionID, err)
	}
	defer o.Body.Close()
	b, err := io.ReadAll(o.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
