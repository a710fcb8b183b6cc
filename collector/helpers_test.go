package collector_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/collector"
	"github.com/stele-dev/stele/collector/collectorcli"
	"github.com/stele-dev/stele/server"
)

// testServer is a real stele-server: Tessera on disk, gRPC on loopback.
type testServer struct {
	t    testing.TB
	dir  string
	addr string
	srv  *server.Server
	gs   *grpc.Server
	cli  *client.Client
	down bool
}

// quiet is the logger of in-process collectors and servers: nothing, or
// stderr when STELE_TEST_COLLECTOR_LOG is set (debugging a test).
func quiet() *slog.Logger {
	if os.Getenv("STELE_TEST_COLLECTOR_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a server on dir at addr ("" for a free port).
func startServer(t testing.TB, dir, addr string) *testServer {
	t.Helper()
	srv, err := server.New(context.Background(), server.Config{DataDir: dir, CheckpointInterval: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var gl net.Listener
	for i := 0; ; i++ { // a restarted server takes its port back
		if gl, err = net.Listen("tcp", addr); err == nil || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCOptions()...)
	srv.RegisterGRPC(gs)
	go gs.Serve(gl)
	c, err := client.Dial(gl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dir: dir, addr: gl.Addr().String(), srv: srv, gs: gs, cli: c}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.down {
		return
	}
	ts.down = true
	ts.cli.Close()
	// Let the calls in flight finish (a bounded wait), then cut the rest:
	// server.Close does not wait for an admission whose caller went away
	// (server/admit.go runs its commit detached), and that commit then
	// panics on the closed store ("pebble: closed").
	stopped := make(chan struct{})
	go func() { ts.gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		ts.gs.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.srv.Close(ctx); err != nil {
		ts.t.Errorf("closing server: %v", err)
	}
}

// logged is every record in the log, by (source, event_id), with how many
// times it appears.
type logged struct {
	records map[string][]byte
	count   map[string]int
	origins map[string]string
	next    uint64
}

func newLogged() *logged {
	return &logged{records: map[string][]byte{}, count: map[string]int{}, origins: map[string]string{}}
}

// logSize is the size of the log's latest checkpoint.
func logSize(t testing.TB, c *client.Client) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	lines := strings.SplitN(string(cp), "\n", 3)
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size: %v", err)
	}
	return size
}

// sync reads the entries the latest checkpoint covers that it has not read.
func (l *logged) sync(t testing.TB, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	size := logSize(t, c)
	for ; l.next < size; l.next++ {
		ev, err := c.Event(ctx, l.next)
		if err != nil {
			t.Fatalf("event %d: %v", l.next, err)
		}
		key := idOf(t, ev.Record)
		l.records[key] = ev.Record
		l.count[key]++
	}
}

// waitFor syncs until the log holds n distinct records.
func (l *logged) waitFor(t testing.TB, c *client.Client, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l.sync(t, c)
		if len(l.records) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log holds %d distinct records after %s, want %d", len(l.records), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// azurite is a running Azurite blob service.
type azurite struct {
	endpoint string // http://127.0.0.1:PORT/devstoreaccount1
	connStr  string
	connEnv  string // the environment variable holding connStr
}

// Azurite's well-known development account (published in its README).
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var (
	azuriteOnce sync.Once
	azuriteSvc  *azurite
	azuriteErr  error
)

// startAzurite returns the Azurite that .ci/services started
// (STELE_TEST_AZURITE_BLOB_ENDPOINT), or starts one for the test run when
// azurite-blob is installed (npm install -g azurite).
func startAzurite(t testing.TB) *azurite {
	t.Helper()
	if ep := os.Getenv("STELE_TEST_AZURITE_BLOB_ENDPOINT"); ep != "" {
		return &azurite{endpoint: ep, connStr: connString(ep), connEnv: secretEnv(connString(ep))}
	}
	azuriteOnce.Do(func() {
		bin, err := exec.LookPath("azurite-blob")
		if err != nil {
			azuriteErr = err
			return
		}
		dir, err := os.MkdirTemp("", "stele-azurite-")
		if err != nil {
			azuriteErr = err
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			azuriteErr = err
			return
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port), "--location", dir,
			"--skipApiVersionCheck", "--disableTelemetry", "--silent")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			azuriteErr = err
			return
		}
		// Left running for the package's tests; the process ends with the
		// test binary's process group cleanup or on its own at exit.
		azuriteStop = func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
		ep := fmt.Sprintf("http://127.0.0.1:%d/%s", port, azuriteAccount)
		for i := 0; i < 1200; i++ { // up to a minute: node starts slowly on a busy machine
			if resp, err := http.Get(ep + "?comp=list"); err == nil {
				resp.Body.Close()
				azuriteSvc = &azurite{endpoint: ep, connStr: connString(ep), connEnv: secretEnv(connString(ep))}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		azuriteErr = fmt.Errorf("azurite-blob did not answer on %s", ep)
	})
	if azuriteErr != nil {
		msg := fmt.Sprintf("test %s needs Azurite: run `source .ci/services && stele_services_start` (as .ci/run does), or npm install -g azurite: %v", t.Name(), azuriteErr)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return azuriteSvc
}

var azuriteStop = func() {}

func connString(ep string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + azuriteAccount + ";AccountKey=" + azuriteKey + ";BlobEndpoint=" + ep + ";"
}

func TestMain(m *testing.M) {
	if os.Getenv("STELE_TEST_COLLECTOR_MAIN") != "" {
		os.Exit(collectorcli.Main(os.Args[1:], os.Stdout, os.Stderr)) // collectorCmd
	}
	// The end-to-end and kill tests spend their time waiting (for
	// emulators, poll intervals, a killed process's successor), not
	// computing: run them side by side even on 2 cores, unless -parallel
	// says otherwise.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "8")
	}
	code := m.Run()
	azuriteStop()
	os.Exit(code)
}

// writeConfig writes a collector config file and returns its path.
func writeConfig(t testing.TB, dir, cfg string) string {
	t.Helper()
	p := filepath.Join(dir, "collector.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := collector.LoadConfig(p); err != nil {
		t.Fatalf("config does not load: %v\n%s", err, cfg)
	}
	return p
}

var secretEnvN atomic.Int64

// secretEnv puts value in a new environment variable of this test process
// (inherited by the collector binaries it starts) and returns its name:
// parallel tests cannot use t.Setenv, and each emulator has its own
// secrets.
func secretEnv(value string) string {
	name := fmt.Sprintf("STELE_TEST_SECRET_%d", secretEnvN.Add(1))
	os.Setenv(name, value)
	return name
}

// cycles is how many times the crash tests SIGKILL the collector: the
// -torture-cycles flag, and 2 under -short unless the flag is given (the
// second cycle is the one with the log server stopped).
func cycles() int {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "torture-cycles" })
	if testing.Short() && !set {
		return 2
	}
	return *tortureCycles
}
