package collector_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// s3Env is the S3-compatible server .ci/services starts (versitygw).
type s3Env struct {
	endpoint, bucket string
	cl               *s3.Client
}

func newS3Env(t testing.TB) *s3Env {
	t.Helper()
	var missing []string
	for _, v := range []string{"STELE_TEST_S3_ENDPOINT", "STELE_TEST_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if os.Getenv(v) == "" {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("test %s needs an S3-compatible server: %s unset. Start it with `source .ci/services && stele_services_start` (as .ci/run does)", t.Name(), strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Getenv("AWS_REGION") == "" {
		os.Setenv("AWS_REGION", "us-east-1") // (for every test alike: not t.Setenv, which parallel tests cannot use)
	}
	sdk, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := &s3Env{endpoint: os.Getenv("STELE_TEST_S3_ENDPOINT"), bucket: os.Getenv("STELE_TEST_S3_BUCKET")}
	e.cl = s3.NewFromConfig(sdk, func(o *s3.Options) { o.BaseEndpoint = aws.String(e.endpoint); o.UsePathStyle = true })
	return e
}

func (e *s3Env) put(t testing.TB, key string, body []byte) {
	t.Helper()
	_, err := e.cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// ctGen writes CloudTrail log files shaped as CloudTrail delivers them,
// records from the identity package's published-shape examples.
type ctGen struct {
	mu      sync.Mutex
	env     *s3Env
	prefix  string
	tpl     string
	n       int
	wanted  map[string][]byte
	folders []ctFolderSpec
}

type ctFolderSpec struct{ path, account, region string }

const goldenAccount = "123456789012"

func newCTGen(t testing.TB, env *s3Env) *ctGen {
	b, err := os.ReadFile("../identity/testdata/golden/aws.cloudtrail/console-login-success.json")
	if err != nil {
		t.Fatal(err)
	}
	g := &ctGen{env: env, prefix: "ct-" + randomGUID()[:8], tpl: strings.TrimSpace(string(b)), wanted: map[string][]byte{}}
	acct := func() string { return fmt.Sprintf("%012d", rand.Int64N(1e12)) }
	a1, a2 := acct(), acct()
	g.folders = []ctFolderSpec{
		{g.prefix + "/AWSLogs/" + a1 + "/CloudTrail/us-east-1/", a1, "us-east-1"},
		{g.prefix + "/AWSLogs/" + a1 + "/CloudTrail/eu-west-1/", a1, "eu-west-1"},
		{g.prefix + "/AWSLogs/o-" + strings.ReplaceAll(randomGUID(), "-", "")[:10] + "/" + a2 + "/CloudTrail/us-east-1/", a2, "us-east-1"}, // organization trail
	}
	return g
}

func (g *ctGen) record(account string) (string, []byte) {
	g.n++
	id := fmt.Sprintf("%s-0000-4000-8000-%012d", randomGUID()[:8], g.n)
	s := strings.Replace(g.tpl, `"eventID": "00000000-0000-4000-8000-000000000180"`, `"eventID": "`+id+`"`, 1)
	s = strings.ReplaceAll(s, goldenAccount, account)
	return id, []byte(s)
}

// file writes one log file of n records into folder f at time at.
func (g *ctGen) file(t testing.TB, f ctFolderSpec, at time.Time, n int) {
	g.mu.Lock()
	var body bytes.Buffer
	body.WriteString(`{"Records":[`)
	for i := range n {
		id, rec := g.record(f.account)
		g.wanted[id] = rec
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(rec)
	}
	body.WriteString("]}")
	g.mu.Unlock()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body.Bytes())
	zw.Close()
	at = at.UTC()
	key := fmt.Sprintf("%s%s/%s_CloudTrail_%s_%s_%s.json.gz", f.path, at.Format("2006/01/02"), f.account, f.region, at.Format("20060102T1504Z"), randomGUID()[:16])
	g.env.put(t, key, gz.Bytes())
}

func ctConfig(ts *testServer, stateDir string, e *s3Env, prefix string) string {
	return fmt.Sprintf(`{
  "server": {"address": %q},
  "state_dir": %q,
  "listen": "-",
  "sources": [{"name": "cloudtrail", "cloudtrail_s3": {
    "bucket": %q, "prefix": %q, "endpoint": %q, "path_style": true, "region": "us-east-1",
    "poll_interval": "100ms"}}]
}`, ts.addr, stateDir, e.bucket, prefix, e.endpoint)
}

// TestCloudTrailEndToEnd reads account and organization trail folders
// from versitygw, files delivered while the collector runs, a damaged
// file among them, into a real stele-server; then restarts from the cursor.
func TestCloudTrailEndToEnd(t *testing.T) {
	t.Parallel()
	env := newS3Env(t)
	ts := startServer(t, t.TempDir(), "")
	g := newCTGen(t, env)
	now := time.Now().UTC()
	g.file(t, g.folders[0], now.Add(-26*time.Hour), 40) // yesterday
	g.file(t, g.folders[0], now.Add(-time.Hour), 700)   // over one batch
	g.file(t, g.folders[1], now.Add(-30*time.Minute), 5)
	g.file(t, g.folders[2], now.Add(-10*time.Minute), 12)
	env.put(t, g.folders[1].path+now.Format("2006/01/02/")+g.folders[1].account+"_CloudTrail_eu-west-1_"+now.Format("20060102T1504Z")+"_damaged.json.gz", []byte("not gzip and not JSON"))

	cfg := writeConfig(t, t.TempDir(), ctConfig(ts, t.TempDir(), env, g.prefix))
	c, stop := runCollector(t, cfg, ts.cli)
	l := newLogged()
	l.waitFor(t, ts.cli, len(g.wanted), time.Minute)
	g.file(t, g.folders[2], now, 30)
	g.file(t, g.folders[0], now, 3)
	l.waitFor(t, ts.cli, len(g.wanted), time.Minute)
	st := statusOf(c)
	if st.Events["malformed"] != 1 || st.Events["admitted"] != uint64(len(g.wanted)) || st.Events["duplicate"] != 0 {
		t.Errorf("events by outcome = %v, want 1 malformed, %d admitted, no duplicates", st.Events, len(g.wanted))
	}
	stop()

	c, stop = runCollector(t, cfg, ts.cli)
	g.file(t, g.folders[1], now, 7)
	l.waitFor(t, ts.cli, len(g.wanted), time.Minute)
	time.Sleep(300 * time.Millisecond)
	if st := statusOf(c); st.Events["admitted"] != 7 || st.Events["duplicate"] != 0 || st.Events["malformed"] != 0 {
		t.Errorf("after a restart: events by outcome = %v, want 7 admitted, nothing read twice", st.Events)
	}
	stop()
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, g.wanted)
}

// ctFeed delivers log files at random.
type ctFeed struct {
	g    *ctGen
	left int
}

func (f *ctFeed) step(t testing.TB) bool {
	if f.left == 0 {
		return false
	}
	n := min(f.left, 1+rand.IntN(40))
	f.left -= n
	f.g.file(t, f.g.folders[rand.IntN(len(f.g.folders))], time.Now().Add(-time.Duration(rand.IntN(120))*time.Minute), n)
	return true
}

func (f *ctFeed) want() map[string][]byte { return f.g.wanted }

// TestCrashCloudTrail SIGKILLs the collector while CloudTrail delivers.
func TestCrashCloudTrail(t *testing.T) {
	t.Parallel()
	env := newS3Env(t)
	ts := startServer(t, t.TempDir(), "")
	g := newCTGen(t, env)
	cfg := writeConfig(t, t.TempDir(), ctConfig(ts, t.TempDir(), env, g.prefix))
	torture(t, ts, cfg, &ctFeed{g: g, left: 400*cycles() + 200})
}
