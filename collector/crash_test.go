package collector_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Run the long torture with: go test ./collector -run Crash -torture-cycles 20 -timeout 30m
var tortureCycles = flag.Int("torture-cycles", 3, "SIGKILL cycles of the collector in the crash tests")

// collectorCmd is the stele-collector command as a process of its own:
// this test binary, which runs collectorcli.Main — what
// cmd/stele-collector's main runs — when TestMain finds
// STELE_TEST_COLLECTOR_MAIN set, so no test waits for a build.
func collectorCmd(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "STELE_TEST_COLLECTOR_MAIN=1")
	return cmd
}

// feed writes a source's records into its emulator, a little at a time.
type feed interface {
	// step writes some records; false once all are written.
	step(t testing.TB) bool
	// want is every record written, by id.
	want() map[string][]byte
}

// torture runs the real collector binary against a feed that is being
// written, SIGKILLs it at random moments, stops the log server for a while
// during one cycle, then lets a last run catch up and stops it with
// SIGTERM. Every record must be in the log once, byte for byte.
func torture(t *testing.T, ts *testServer, cfgPath string, f feed) {
	logDir, err := os.MkdirTemp("", "stele-collector-logs")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if !t.Failed() {
			os.RemoveAll(logDir)
		}
	}()
	written := make(chan struct{})
	go func() {
		defer close(written)
		for f.step(t) {
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
	}()
	start := func(cycle int) (*exec.Cmd, *bytes.Buffer) {
		cmd := collectorCmd(t, "run", "--config", cfgPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	dump := func(cycle int, b *bytes.Buffer) {
		os.WriteFile(filepath.Join(logDir, fmt.Sprintf("cycle-%d.log", cycle)), b.Bytes(), 0o644)
	}
	tStart := time.Now()
	defer func() { t.Logf("torture took %s", time.Since(tStart).Round(time.Millisecond)) }()
	for cycle := range cycles() {
		cmd, stderr := start(cycle)
		time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
		if cycle == 1 {
			// The log goes away for a while: the collector waits.
			dir, addr := ts.dir, ts.addr
			ts.stop()
			time.Sleep(1500 * time.Millisecond)
			next := startServer(t, dir, addr)
			*ts, next.down = *next, true // stopped once, through ts
			time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		dump(cycle, stderr)
	}
	t0 := time.Now()
	<-written
	t.Logf("kill cycles done; the feed finished %s later", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	cmd, stderr := start(-1)
	l := newLogged()
	want := f.want()
	deadline := time.Now().Add(2 * time.Minute)
	for l.sync(t, ts.cli); len(l.records) < len(want) && time.Now().Before(deadline); l.sync(t, ts.cli) {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the last run caught up in %s", time.Since(t0).Round(time.Millisecond))
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	dump(-1, stderr)
	if err != nil {
		t.Errorf("the collector did not exit cleanly on SIGTERM: %v\n%s", err, stderr)
	}
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, want)
	if t.Failed() {
		t.Logf("collector logs kept in %s", logDir)
	}
}

// storageFeed grows append blobs over three hours in two containers,
// splitting records across appends.
type storageFeed struct {
	g      *entraGen
	bl     *blobs
	blobs  [][2]string // container, name
	carry  map[int][]byte
	left   int
	wanted map[string][]byte
}

func newStorageFeed(t testing.TB, az *azurite, total int) *storageFeed {
	g := newEntraGen(t)
	bl := newBlobs(t, az, "insights-logs-auditlogs", "insights-logs-signinlogs")
	now := time.Now().UTC().Truncate(time.Hour)
	f := &storageFeed{g: g, bl: bl, carry: map[int][]byte{}, left: total, wanted: map[string][]byte{}}
	for _, c := range []string{"insights-logs-auditlogs", "insights-logs-signinlogs"} {
		for _, h := range []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour), now} {
			name := hourBlob(g.tenant, h)
			bl.create(c, name)
			f.blobs = append(f.blobs, [2]string{c, name})
		}
	}
	return f
}

func (f *storageFeed) step(t testing.TB) bool {
	if f.left == 0 {
		for i, rest := range f.carry {
			f.bl.append(f.blobs[i][0], f.blobs[i][1], rest)
		}
		f.carry = nil
		return false
	}
	i := rand.IntN(len(f.blobs))
	kind := "audit"
	if f.blobs[i][0] == "insights-logs-signinlogs" {
		kind = "signin"
	}
	var buf bytes.Buffer
	buf.Write(f.carry[i])
	delete(f.carry, i)
	for range min(f.left, 1+rand.IntN(20)) {
		id, rec := f.g.record(kind)
		f.wanted[id] = rec
		buf.Write(rec)
		buf.WriteByte('\n')
		f.left--
	}
	b := buf.Bytes()
	if rand.IntN(3) == 0 {
		// End this append in the middle of the last record.
		cut := len(b) - 1 - rand.IntN(200)
		f.carry[i] = bytes.Clone(b[cut:])
		b = b[:cut]
	}
	f.bl.append(f.blobs[i][0], f.blobs[i][1], b)
	return true
}

func (f *storageFeed) want() map[string][]byte { return f.wanted }

// TestCrashStorage SIGKILLs the collector while it reads growing blobs.
func TestCrashStorage(t *testing.T) {
	t.Parallel()
	az := startAzurite(t)
	ts := startServer(t, t.TempDir(), "")
	f := newStorageFeed(t, az, 400*cycles()+200)
	cfg := writeConfig(t, t.TempDir(), storageConfig(ts, t.TempDir(), az, f.g.tenant))
	torture(t, ts, cfg, f)
}

// TestStopDuringStartup sends SIGTERM to the collector binary at moments
// of its start-up (from its first log line on: config, dialing, the
// sources, the listener): every stop is clean, exit status 0.
func TestStopDuringStartup(t *testing.T) {
	t.Parallel()
	e := newOktaEmu(t)
	ts := startServer(t, t.TempDir(), "")
	cfg := writeConfig(t, t.TempDir(), oktaConfig(ts, t.TempDir(), e, "private_key_jwt"))
	for i, delay := range []time.Duration{0, 0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		cmd := collectorCmd(t, "run", "--config", cfg)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		first, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stderr)
			for n := 0; sc.Scan(); n++ {
				if n == 0 {
					close(first)
				}
				out.Write(sc.Bytes())
				out.WriteByte('\n')
			}
		}()
		select {
		case <-first:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("run %d: no log line within 30 s", i)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		err = cmd.Wait()
		if err != nil || !bytes.Contains(out.Bytes(), []byte(`"collector stopped"`)) {
			t.Errorf("run %d, SIGTERM %s after the first log line: %v (want a clean exit)\n%s", i, delay, err, out.String())
		}
	}
}
