package witness

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
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

	"github.com/transparency-dev/tessera"

	"github.com/stele-dev/stele/internal/proctest"
)

// tortureCycles sets how many SIGKILL cycles TestCrashNeverRollsBack runs;
// CI runs the short default, a soak run raises it (go test ./witness -run
// TestCrashNeverRollsBack -torture-cycles 50).
var tortureCycles = flag.Int("torture-cycles", 4, "SIGKILL cycles in TestCrashNeverRollsBack")

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBinaries()
	os.Exit(code)
}

// witnessBinary builds cmd/stele-witness once per test run.
func witnessBinary(t *testing.T) string { return proctest.Binary(t, "stele-witness") }

type witnessProc struct {
	cmd  *exec.Cmd
	url  string
	logs *proctest.Buffer
}

// startWitnessProc runs the stele-witness binary on dir and waits until it
// answers /healthz.
func startWitnessProc(t *testing.T, dir string, args ...string) *witnessProc {
	t.Helper()
	return startWitnessProcWith(t, dir, nil, args...)
}

// startWitnessProcWith is startWitnessProc with a hook that may change the
// command before it starts.
func startWitnessProcWith(t *testing.T, dir string, hook func(*exec.Cmd), args ...string) *witnessProc {
	t.Helper()
	addr := proctest.FreeAddr(t)
	p := &witnessProc{url: "http://" + addr, logs: &proctest.Buffer{}}
	p.cmd = exec.Command(witnessBinary(t), append([]string{"--data-dir", dir, "--listen", addr, "--name", "bin.example/w"}, args...)...)
	if hook != nil {
		hook(p.cmd)
	}
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	for i := 0; ; i++ {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if i > 2000 {
			t.Fatalf("stele-witness did not come up:\n%s", p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *witnessProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("stele-witness did not stop cleanly: %v\n%s", err, p.logs)
	}
	if !strings.Contains(p.logs.String(), "stopped cleanly") {
		t.Fatalf("no clean stop in the logs:\n%s", p.logs)
	}
}

func readVKey(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, pubFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

func readMLDSAVKey(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, MLDSAPubFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

func runCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(witnessBinary(t), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("stele-witness %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// TestBinaryTesseraInterop runs the real stele-witness binary: a log is
// added with the add-log command while it runs, a Tessera appender gets
// cosignatures from it over several checkpoints, a fork is refused, and
// the evidence comes out of the evidence command.
func TestBinaryTesseraInterop(t *testing.T) {
	const origin = "example.com/bin-log"
	signer, vkey := logKey(t, origin)
	dir := t.TempDir()
	p := startWitnessProc(t, dir)
	wkey := readVKey(t, dir)

	out := runCLI(t, "add-log", "--data-dir", dir, "--origin", origin, "--key", vkey)
	if !strings.Contains(string(out), "witnessing "+origin+" with 1 key(s) (now)") {
		t.Fatalf("add-log said %q", out)
	}
	l := startTessera(t, t.TempDir(), signer, policyFor(wkey, p.url))
	var last uint64
	for i := range 3 {
		size := checkWitnessed(t, l.add(t, 4+i, fmt.Sprintf("x%d", i)), vkey, wkey, origin)
		if size <= last {
			t.Fatalf("size %d after %d", size, last)
		}
		last = size
	}

	// A fork of the same log, published on its own, then sent to the
	// witness: refused, and recorded.
	bdir := t.TempDir()
	b := startTessera(t, bdir, signer, nil)
	b.add(t, int(last), "fork")
	b.stop()
	fork := startTessera(t, bdir, signer, policyFor(wkey, p.url))
	fork.appender.Add(t.Context(), tessera.NewEntry([]byte("fork-more")))
	var evs []Evidence
	for i := 0; len(evs) == 0; i++ {
		if i > 3000 {
			t.Fatalf("no evidence from the fork:\n%s", p.logs)
		}
		time.Sleep(10 * time.Millisecond)
		evs = getEvidence(t, p.url+"/evidence")
	}
	fork.stop()
	// The record is stored before it is logged: wait for the log line.
	for i := 0; !strings.Contains(p.logs.String(), "level=ERROR msg=\"EVIDENCE OF LOG MISBEHAVIOUR"); i++ {
		if i > 1000 {
			t.Fatalf("evidence was not logged at ERROR:\n%s", p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The evidence command, against the running witness and a stopped one.
	for _, running := range []bool{true, false} {
		if !running {
			p.stop(t)
		}
		var cliEvs []Evidence
		if err := json.Unmarshal(runCLI(t, "evidence", "--data-dir", dir, "--origin", origin), &cliEvs); err != nil {
			t.Fatal(err)
		}
		if len(cliEvs) != len(evs) || cliEvs[0].Offending != evs[0].Offending || cliEvs[0].Cosigned == "" {
			t.Fatalf("evidence command (running %v): %+v, HTTP had %+v", running, cliEvs, evs)
		}
	}
}

// TestCrashNeverRollsBack hammers the real binary with add-checkpoint
// requests for a growing log from several clients, SIGKILLs it at random
// moments, restarts it, and checks that it never cosigns a checkpoint
// older than, or conflicting with, the largest one it returned a
// cosignature for, and that its stored size never goes backwards.
func TestCrashNeverRollsBack(t *testing.T) {
	lg := newTestLog(t, "example.com/crash")
	const maxSize = 100000
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "witness.json")
	raw, _ := json.Marshal(FileConfig{Logs: []LogConfig{lg.config()}})
	os.WriteFile(cfg, raw, 0o644)

	var mu sync.Mutex // guards lg (the tree grows lazily) and maxCosigned
	var maxCosigned uint64
	request := func(old, size uint64) []byte {
		mu.Lock()
		defer mu.Unlock()
		return lg.request(t, old, size)
	}
	fork := lg.grow(1).fork(1, "fork")
	client := &http.Client{Timeout: 10 * time.Second}
	postTo := func(url string, body []byte) (int, []byte, error) {
		resp, err := client.Post(url+"/add-checkpoint", "", bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	storedSize := func(url string) uint64 {
		t.Helper()
		code, body, err := postTo(url, request(0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if code == 200 {
			return 1
		}
		if code != 409 {
			t.Fatalf("old 0: %d %s", code, body)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	var lastStored uint64
	cycles := *tortureCycles
	for cycle := range cycles + 1 {
		p := startWitnessProc(t, dir, "--config", cfg)
		// After a restart: the stored size never went back, and nothing
		// older than or conflicting with what was cosigned gets a 200.
		stored := storedSize(p.url)
		mu.Lock()
		mc := maxCosigned
		mu.Unlock()
		if stored < mc || stored < lastStored {
			t.Fatalf("cycle %d: stored size %d after restart, but a cosignature for %d was returned (last stored %d)", cycle, stored, mc, lastStored)
		}
		lastStored = stored
		if mc > 1 {
			for _, body := range [][]byte{request(mc-1, mc-1), request(stored, mc-1), request(0, mc-1), request(mc/2, mc-1)} {
				if code, b, _ := postTo(p.url, body); code == 200 {
					t.Fatalf("cycle %d: cosigned an older checkpoint (size %d < %d): %s", cycle, mc-1, mc, b)
				}
			}
			mu.Lock()
			fbody := fork.request(t, stored, stored)
			mu.Unlock()
			if code, _, _ := postTo(p.url, fbody); code == 200 {
				t.Fatalf("cycle %d: cosigned a conflicting checkpoint of size %d", cycle, stored)
			}
		}
		if cycle == cycles {
			p.stop(t)
			break
		}

		var stop atomic.Bool
		var wg sync.WaitGroup
		for c := range 6 {
			wg.Go(func() {
				old := stored
				rng := rand.New(rand.NewPCG(uint64(cycle), uint64(c)))
				for !stop.Load() {
					size := min(old+1+rng.Uint64N(5), maxSize)
					code, body, err := postTo(p.url, request(old, size))
					if err != nil {
						return // killed
					}
					switch code {
					case 200:
						mu.Lock()
						maxCosigned = max(maxCosigned, size)
						mu.Unlock()
						old = size
					case 409:
						n, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
						if err != nil {
							t.Errorf("409 body %q", body)
							return
						}
						old = n
					default:
						t.Errorf("old %d size %d: %d %s", old, size, code, body)
						return
					}
				}
			})
		}
		time.Sleep(time.Duration(150+rand.IntN(500)) * time.Millisecond)
		if err := p.cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		p.cmd.Wait()
		stop.Store(true)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		mu.Lock()
		t.Logf("cycle %d: killed; largest size cosigned so far %d", cycle, maxCosigned)
		mu.Unlock()
	}
	if maxCosigned < 10 {
		t.Fatalf("only reached size %d: the test did not exercise the witness", maxCosigned)
	}
}
