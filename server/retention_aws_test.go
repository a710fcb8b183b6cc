package server_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/stele-dev/stele/internal/awstest"
	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/server"
	awsbackend "github.com/stele-dev/stele/server/backend/aws"
)

func s3Client(t *testing.T, env awstest.Env) *s3.Client {
	t.Helper()
	sdk, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(env.Region))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint = aws.String(env.Endpoint); o.UsePathStyle = true })
}

// TestAWSRetention runs the aws backend with --retention on a versitygw
// bucket with Object Lock: every tile and entry bundle is written under
// retention, versitygw refuses to delete or overwrite one, retention-check
// finds nothing missing until an object without retention appears, erasure
// still works, and a server with --retention refuses a bucket without
// Object Lock, saying how to create one.
func TestAWSRetention(t *testing.T) {
	env := awstest.New(t)
	c := s3Client(t, env)
	ctx := ctxT(t, 3*time.Minute)
	lockBucket := strings.ReplaceAll("lock-"+env.Prefix, "_", "-")
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(lockBucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("creating a bucket with Object Lock: %v", err)
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
	all := appendConcurrently(t, ts.cli, 1, 2, 300, 300)
	if _, err := ts.cli.Receipt(ctx, uint64(len(all)-1)); err != nil {
		t.Fatal(err)
	}

	retentionCheck := func() (string, string, int) {
		var out, errb bytes.Buffer
		code := cli.Main([]string{"retention-check", "--s3-bucket", lockBucket, "--s3-prefix", env.Prefix, "--s3-endpoint", env.Endpoint,
			"--s3-region", env.Region, "--s3-path-style", "--retention", "governance:1h"}, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}
	out, errOut, code := retentionCheck()
	if code != 0 || !strings.Contains(errOut, "retention-check OK") {
		t.Fatalf("retention-check on the log: exit %d\n%s%s", code, out, errOut)
	}
	// A longer requirement than the objects have is reported.
	var o2, e2 bytes.Buffer
	if code := cli.Main([]string{"retention-check", "--s3-bucket", lockBucket, "--s3-prefix", env.Prefix, "--s3-endpoint", env.Endpoint,
		"--s3-region", env.Region, "--s3-path-style", "--retention", "compliance:2h"}, strings.NewReader(""), &o2, &e2); code != 1 || !strings.Contains(o2.String(), "mode GOVERNANCE, compliance required") {
		t.Errorf("retention-check with a stronger requirement: exit %d\n%s%s", code, o2.String(), e2.String())
	}

	// Every tile and bundle is locked: versitygw refuses to delete or
	// overwrite one (without the governance bypass).
	tile := env.Prefix + "/tile/entries/000"
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile)})
	if err != nil {
		t.Fatalf("head %s: %v", tile, err)
	}
	if string(head.ObjectLockMode) != "GOVERNANCE" || head.ObjectLockRetainUntilDate == nil || time.Until(*head.ObjectLockRetainUntilDate) < 50*time.Minute {
		t.Fatalf("%s: mode %q until %v", tile, head.ObjectLockMode, head.ObjectLockRetainUntilDate)
	}
	locked := func(err error) bool {
		var ae smithy.APIError
		return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied" && strings.Contains(ae.ErrorMessage(), "object lock")
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile)}); !locked(err) {
		t.Errorf("deleting a locked bundle: %v, want refused as locked", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile), Body: strings.NewReader("rewritten")}); !locked(err) {
		t.Errorf("overwriting a locked bundle: %v, want refused as locked", err)
	}
	if b, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(tile)}); err != nil || aws.ToInt64(b.ContentLength) < 100 {
		t.Errorf("the bundle after the refused writes: %v", err)
	}

	// Erasure touches the database only, so it works with retention on.
	target := all[5].idx
	if _, err := ts.cli.Erase(ctx, target, "GDPR Art. 17 request", "REQ-WORM-1"); err != nil {
		t.Fatalf("erase with retention on: %v", err)
	}
	if ev, err := ts.cli.Event(ctx, target); err != nil || ev.Tombstone == nil || len(ev.Payload) != 0 {
		t.Fatalf("GetEvent after erasure: %+v %v", ev, err)
	}

	// An object written without retention is listed.
	stray := env.Prefix + "/tile/0/x999"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(lockBucket), Key: aws.String(stray), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = retentionCheck()
	if code != 1 || !strings.Contains(out, stray+": no retention") || strings.Count(out, "\n") != 1 {
		t.Errorf("retention-check with a stray object: exit %d\n%s%s", code, out, errOut)
	}
}
