package server_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/go-sql-driver/mysql"
	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/awstest"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
	awsbackend "github.com/stele-dev/stele/server/backend/aws"
)

// awsConfig is a server on the aws backend of e, with edits applied to the
// backend's configuration.
func awsConfig(e awstest.Env, edits ...func(*awsbackend.Config)) server.Config {
	c := awsbackend.Config{
		Bucket: e.Bucket, Prefix: e.Prefix, Endpoint: e.Endpoint,
		Region: e.Region, PathStyle: true, DSN: e.DSN, ClaimLease: 5 * time.Second,
	}
	for _, edit := range edits {
		edit(&c)
	}
	b, err := awsbackend.New(c)
	if err != nil {
		panic(err) // the tests' own configurations
	}
	return server.Config{Backend: b, CheckpointInterval: time.Second}
}

// copyKey gives a second replica's data directory the first one's log key.
// copyKey copies the log key into another replica's data directory,
// which it makes private first (the server refuses a data directory others
// can read once it holds files, and t.TempDir's is 0755).
func copyKey(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Chmod(to, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(from, logkey.PrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, logkey.PrivateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAWSEndToEnd runs the log on MariaDB and versitygw: admission, dedup,
// receipts that verify independently, payloads, erasure, the tlog-tiles
// proxy and redirect, health, and a second replica on the same log.
func TestAWSEndToEnd(t *testing.T) {
	env := awstest.New(t)
	dir := t.TempDir()
	ts := startServer(t, dir, awsConfig(env))
	ctx := ctxT(t, 3*time.Minute)

	const producers, batches, perBatch = 2, 3, 50
	all := appendConcurrently(t, ts.cli, producers, batches, perBatch, 800)

	// A resubmission returns the original index; a changed copy is refused.
	again := mustAppend(t, ts.cli, []*stelev1.Event{all[7].ev})
	if !again[0].Duplicate || again[0].Index != all[7].idx {
		t.Fatalf("resubmission: %+v, want duplicate of %d", again[0], all[7].idx)
	}
	changed := event(all[7].ev.Source, all[7].ev.EventId, 900)
	if rs, err := ts.cli.Append(ctx, []*stelev1.Event{changed}); err != nil || codes.Code(rs[0].Code) != codes.AlreadyExists {
		t.Fatalf("changed copy: %+v %v", rs, err)
	}

	// Receipts verify, with Stele's client and independently; payloads match.
	for i, s := range all {
		if i%10 != 0 {
			continue
		}
		resp, err := ts.cli.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: s.idx})
		if err != nil {
			t.Fatalf("receipt %d: %v", s.idx, err)
		}
		r, err := client.VerifyReceipt(resp.Proof, ts.verifier)
		if err != nil {
			t.Fatalf("receipt %d does not verify: %v", s.idx, err)
		}
		if r.Leaf.EventID != s.ev.EventId || r.Leaf.Source != s.ev.Source {
			t.Fatalf("receipt %d is for %+v", s.idx, r.Leaf)
		}
		independentCheck(t, ts.verifier, ts.srv.Origin(), resp.Proof, resp.Leaf)
		ev, err := ts.cli.Event(ctx, s.idx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyEvent(r, ev.Leaf, ev.Salt, ev.Payload); err != nil || !bytes.Equal(ev.Record, s.ev.Record) {
			t.Fatalf("event %d: %v", s.idx, err)
		}
	}

	// Erasure: the payload leaves the database, the tombstone is served,
	// erasing again is idempotent.
	target := all[3].idx
	er, err := ts.cli.Erase(ctx, target, "GDPR Art. 17 request", "REQ-AWS-1")
	if err != nil || er.AlreadyErased || er.Tombstone.Index != target {
		t.Fatalf("erase: %+v %v", er, err)
	}
	if ev, err := ts.cli.Event(ctx, target); err != nil || ev.Tombstone == nil || len(ev.Payload) != 0 || len(ev.Salt) != 0 {
		t.Fatalf("GetEvent after erasure: %+v %v", ev, err)
	}
	if er2, err := ts.cli.Erase(ctx, target, "other", "REQ-AWS-2"); err != nil || !er2.AlreadyErased || er2.Tombstone.RequestReference != "REQ-AWS-1" {
		t.Fatalf("second erase: %+v %v", er2, err)
	}
	if _, _, err := ts.cli.VerifiedEvent(ctx, target, ts.verifier, nil); !errors.As(err, new(*client.ErasedError)) {
		t.Fatalf("VerifiedEvent on an erased entry: %v", err)
	}

	// The tlog-tiles proxy serves the bucket's objects with their headers,
	// and health is ok.
	cp, err := ts.cli.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.httpURL + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET checkpoint: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := client.ParseCheckpoint(body, ts.verifier); err != nil {
		t.Fatalf("proxied checkpoint: %v", err)
	}
	if c1, _ := client.ParseCheckpoint(cp, ts.verifier); c1 == nil {
		t.Fatal("gRPC checkpoint does not parse")
	}
	resp, err = http.Get(ts.httpURL + "tile/entries/000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "max-age=31536000, immutable" {
		t.Fatalf("GET tile/entries/000: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	// The bucket's own objects carry the tlog-tiles content types and
	// cache headers, so readers can be pointed straight at it (or a CDN).
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(env.Region))
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(env.Endpoint), true })
	for key, want := range map[string][2]string{
		"checkpoint":       {"text/plain; charset=utf-8", "no-cache"},
		"tile/entries/000": {"application/octet-stream", "max-age=604800,immutable"},
		"tile/0/000":       {"application/octet-stream", "max-age=604800,immutable"},
	} {
		h, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String(env.Prefix + "/" + key)})
		if err != nil {
			t.Fatalf("HEAD %s in the bucket: %v", key, err)
		}
		if aws.ToString(h.ContentType) != want[0] || aws.ToString(h.CacheControl) != want[1] {
			t.Errorf("bucket object %s: Content-Type %q, Cache-Control %q, want %q", key, aws.ToString(h.ContentType), aws.ToString(h.CacheControl), want)
		}
	}
	resp, err = http.Get(ts.httpURL + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	// A second replica with the same key shares the log: it dedups the
	// first one's events, and redirects tile reads to the public URL.
	dir2 := t.TempDir()
	copyKey(t, dir, dir2)
	cfg2 := awsConfig(env, func(c *awsbackend.Config) { c.PublicTilesURL = "https://tiles.example/log/" })
	ts2 := startServer(t, dir2, cfg2)
	r2 := mustAppend(t, ts2.cli, []*stelev1.Event{all[20].ev, event("entra/tenant-9/audit", "fresh-on-2", 500)})
	if !r2[0].Duplicate || r2[0].Index != all[20].idx || r2[1].Duplicate {
		t.Fatalf("replica 2: %+v", r2)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(ts2.httpURL + "tile/0/001.p/5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://tiles.example/log/tile/0/001.p/5" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noFollow.Get(ts2.httpURL + "tile/0/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a non-tile path was redirected: %d", resp.StatusCode)
	}
	if ev, err := ts2.cli.Event(ctx, r2[1].Index); err != nil || ev.Tombstone != nil {
		t.Fatalf("replica 2 GetEvent: %v", err)
	}
	if ev, err := ts.cli.Event(ctx, r2[1].Index); err != nil || !bytes.Contains(ev.Record, []byte("fresh-on-2")) {
		t.Fatalf("replica 1 reads replica 2's event: %v", err)
	}

	// A replica with another key is refused: it would sign a different log.
	dir3 := t.TempDir()
	cfg3 := awsConfig(env)
	cfg3.DataDir, cfg3.Logger = dir3, quietLogger()
	if _, err := server.New(ctx, cfg3); err == nil || !strings.Contains(err.Error(), "same log.key") {
		t.Fatalf("a replica with its own key started: %v", err)
	}
}

// cutter is a TCP forwarder on loopback that can cut its connections, to
// make a real database or object store unreachable for one server.
type cutter struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{l: l, target: target}
	t.Cleanup(func() { l.Close(); c.setCut(true) })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if c.cut {
				c.mu.Unlock()
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				c.mu.Unlock()
				in.Close()
				continue
			}
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for _, x := range c.conns {
			x.Close()
		}
		c.conns = nil
	}
}

func healthz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAWSHealthFailsWithoutBackends: /healthz answers 503, naming the
// culprit, while the database or the object store is unreachable.
func TestAWSHealthFailsWithoutBackends(t *testing.T) {
	env := awstest.New(t)
	dsn, err := mysql.ParseDSN(env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	db := newCutter(t, dsn.Addr)
	dsn.Addr = db.l.Addr().String()
	u, err := url.Parse(env.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	s3 := newCutter(t, u.Host)
	cfg := awsConfig(env, func(c *awsbackend.Config) { c.DSN, c.Endpoint = dsn.FormatDSN(), "http://"+s3.l.Addr().String() })
	ts := startServer(t, t.TempDir(), cfg)
	mustAppend(t, ts.cli, []*stelev1.Event{event("entra/t/audit", "h1", 300)})
	waitHealth := func(want int, substr string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := healthz(t, ts.httpURL)
			if code == want && strings.Contains(body, substr) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("healthz %d %s, want %d with %q", code, body, want, substr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitHealth(200, `"ok"`)
	db.setCut(true)
	waitHealth(503, "database unreachable")
	db.setCut(false)
	waitHealth(200, `"ok"`)
	s3.setCut(true)
	waitHealth(503, "object store unreachable")
	s3.setCut(false)
	waitHealth(200, `"ok"`)
}

// TestAWSSameRecordUnderAnotherSource: on the aws backend (MySQL's dedup
// table, looked up by event id) a provider record already logged under
// another source is refused as on posix (TestSameRecordUnderAnotherSource).
func TestAWSSameRecordUnderAnotherSource(t *testing.T) {
	env := awstest.New(t)
	ts := startServer(t, t.TempDir(), awsConfig(env))
	right, wrong := "entra/t-right/audit", "entra/t-wrong/audit"
	first := mustAppend(t, ts.cli, []*stelev1.Event{event(right, "aws-graph-1", 400)})[0]
	rs, err := ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{event(wrong, "aws-graph-1", 400), event(wrong, "aws-graph-2", 400)})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[0]; codes.Code(r.Code) != codes.AlreadyExists || r.Index != first.Index || !strings.Contains(r.Message, right) {
		t.Errorf("the same record under another source: %v, want AlreadyExists naming index %d and %s", r, first.Index, right)
	}
	if r := rs[1]; r.Code != 0 || r.Duplicate {
		t.Errorf("another record: %v, want admitted", r)
	}
	// The refused copy's claim was released: resubmitting it is refused
	// again at once, not held as busy by a dangling claim.
	rs, err = ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{event(wrong, "aws-graph-1", 400)})
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(rs[0].Code) != codes.AlreadyExists {
		t.Errorf("the refused copy resubmitted: %v", rs[0])
	}
}
