package server_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/awstest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// bucketListing lists the objects under the test's prefix with their
// ETags and sizes.
func bucketListing(t *testing.T, env awstest.Env) []string {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	c := s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(env.Endpoint), true })
	var out []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(env.Bucket), Prefix: aws.String(env.Prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, fmt.Sprintf("%s %s %d", aws.ToString(o.Key), aws.ToString(o.ETag), aws.ToInt64(o.Size)))
		}
	}
	sort.Strings(out)
	return out
}

// TestAWSReadOnlyAndFreeze: on aws, a read-only replica runs beside a
// writing one (they share the bucket and the database), serves receipts
// and follows the log as it grows, refuses appends, and writes no object.
// Freezing stores the statement in the bucket; every replica started
// afterwards is read-only and serves it.
func TestAWSReadOnlyAndFreeze(t *testing.T) {
	env := awstest.New(t)
	dir := t.TempDir()
	ts := startServer(t, dir, awsConfig(env))
	sent := appendConcurrently(t, ts.cli, 1, 2, 30, 300)
	if _, err := ts.cli.Receipt(ctxT(t, time.Minute), sent[len(sent)-1].idx); err != nil {
		t.Fatal(err)
	}

	roDir := t.TempDir()
	copyKey(t, dir, roDir)
	roCfg := awsConfig(env)
	roCfg.ReadOnly = true
	ro := startServer(t, roDir, roCfg)
	ctx := ctxT(t, 2*time.Minute)
	raw, err := ro.cli.Receipt(ctx, sent[5].idx)
	if err != nil {
		t.Fatalf("receipt from the read-only replica: %v", err)
	}
	if _, err := client.VerifyReceipt(raw, ro.verifier); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ro.cli.VerifiedEvent(ctx, sent[5].idx, ro.verifier, nil); err != nil {
		t.Fatalf("payload from the read-only replica: %v", err)
	}
	_, err = ro.cli.Append(ctx, []*stelev1.Event{event("entra/ro/audit", "ro-aws", 200)})
	wantReadOnly(t, "Append on aws", err, false, "", "")

	// The writer goes on; the read-only replica sees the new entries.
	// (It knows the log as far as the checkpoint it last read: an entry
	// beyond is NotFound there until the writer's checkpoint covers it.)
	more := mustAppend(t, ts.cli, []*stelev1.Event{event("entra/more/audit", "more-1", 300)})
	if _, err := ts.cli.Receipt(ctx, more[0].Index); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := ro.cli.Receipt(ctx, more[0].Index)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the read-only replica did not follow the log: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.stop(t)
	before := bucketListing(t, env)
	if _, err := ro.cli.Receipt(ctx, sent[9].idx); err != nil {
		t.Fatal(err)
	}
	ro.stop(t)
	if after := bucketListing(t, env); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("the read-only replica changed the bucket:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}

	succ := newVKey(t, "next.stele.test/log")
	cfg := awsConfig(env)
	cfg.DataDir, cfg.Logger = dir, quietLogger()
	f, err := server.Freeze(ctxT(t, 2*time.Minute), cfg, server.Successor{Key: succ, URL: "https://next.stele.test/log/"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != uint64(len(sent)+1) {
		t.Fatalf("frozen at %d, want %d", f.Size, len(sent)+1)
	}
	// A replica started normally afterwards is read-only and serves the
	// statement.
	ts = startServer(t, roDir, awsConfig(env))
	if !ts.srv.ReadOnly() || ts.srv.Frozen() == nil {
		t.Fatal("a replica of the frozen aws log is not read-only")
	}
	_, err = ts.cli.Append(ctx, []*stelev1.Event{event("entra/frozen/audit", "after", 200)})
	wantReadOnly(t, "Append on the frozen aws log", err, true, "next.stele.test/log", "https://next.stele.test/log/")
	lg, err := client.NewTileLog(ts.httpURL, ts.verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := lg.Freeze(ctx); err != nil || got == nil || got.Size != f.Size {
		t.Fatalf("the served freeze statement: %v %v", got, err)
	}
}
