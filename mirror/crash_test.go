package mirror_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/proctest"
	"github.com/stele-dev/stele/mirror"
)

// tortureCycles sets how many SIGKILL cycles TestMirrorKill9 runs; CI runs
// the default, a torture run more (go test ./mirror -run TestMirrorKill9
// -torture-cycles 50 -timeout 1h).
var tortureCycles = flag.Int("torture-cycles", 3, "SIGKILL cycles in TestMirrorKill9")

// TestMirrorKill9 kills the real stele mirror process with SIGKILL while it
// mirrors a growing log. After each kill the copy must re-verify (its
// checkpoint names only data written and verified) and match the source
// byte for byte; at the end the restarted mirror catches up, serves the
// copy, and the copy passes stele audit over its --serve URL.
func TestMirrorKill9(t *testing.T) {
	ctx := ctxFor(t)
	src := startSource(t)
	src.submit(t, 100)
	dir := t.TempDir()
	stele := proctest.Binary(t, "stele")
	lg := src.tileLog(t)

	// The log grows all through the kills.
	stop := make(chan struct{})
	subErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				subErr <- nil
				return
			default:
			}
			if err := src.submitErr(1 + rand.IntN(90)); err != nil {
				subErr <- err
				return
			}
		}
	}()
	run := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		logs := &bytes.Buffer{}
		cmd := exec.Command(stele, append([]string{"mirror", "--log", src.url(), "--log-key", src.keyPath(), "--to", dir, "--interval", "10ms"}, extra...)...)
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd, logs
	}
	var sizes []uint64
	last := uint64(0)
	for cycle := range *tortureCycles {
		cmd, logs := run()
		// Kill it once it has mirrored something new, a moment later:
		// often in the middle of the next catch-up.
		deadline := time.Now().Add(time.Minute)
		for localSize(dir) <= last {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: the mirror made no progress past %d\n%s", cycle, last, logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		// The copy re-verifies in full and is the source's, byte for byte.
		m, err := mirror.New(ctx, mirror.Config{Log: lg, Dir: dir})
		if err != nil {
			t.Fatalf("cycle %d: the copy does not verify after SIGKILL: %v\n%s", cycle, err, logs)
		}
		m.Close()
		var size uint64
		if cp := m.Checkpoint(); cp != nil {
			size = cp.Size
			sameFiles(t, src.logDir(), dir, size)
		}
		t.Logf("cycle %d: killed at mirrored size %d", cycle, size)
		sizes = append(sizes, size)
		last = size
	}
	close(stop)
	if err := <-subErr; err != nil {
		t.Fatal(err)
	}

	// Restarted, it catches up and serves the copy.
	addr := proctest.FreeAddr(t)
	cmd, logs := run("--serve", addr)
	want, err := os.ReadFile(filepath.Join(src.logDir(), "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := httpGet("http://" + addr + "/checkpoint")
		if err == nil && bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up: %v\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	size, err := src.size()
	if err != nil {
		t.Fatal(err)
	}
	n := sameFiles(t, src.logDir(), dir, size)
	t.Logf("caught up at size %d (%d files identical), kill sizes %v", size, n, sizes)
	v, err := logkey.ReadVerifier(src.keyPath())
	if err != nil {
		t.Fatal(err)
	}
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: "http://" + addr + "/", Verifier: v})
	if err != nil || !rep.Verified || rep.EntriesRead != size {
		t.Fatalf("audit of the served copy: %v, verified %v, %d entries", err, rep.Verified, rep.EntriesRead)
	}
	metrics, err := httpGet("http://" + addr + "/metrics")
	if err != nil || !bytes.Contains(metrics, fmt.Appendf(nil, "\nstele_mirror_size %d\n", size)) || !bytes.Contains(metrics, []byte(`stele_mirror_syncs_total{outcome="ok"}`)) {
		t.Fatalf("metrics: %v\n%s", err, metrics)
	}
	// A file outside tlog-tiles is never served.
	if _, err := httpGet("http://" + addr + "/checkpoint.tmp"); err == nil {
		t.Fatal("served a non-tlog-tiles path")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("stele mirror after SIGTERM: %v\n%s", err, logs)
	}
}

func httpGet(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &os.PathError{Op: "GET", Path: u, Err: os.ErrNotExist}
	}
	return io.ReadAll(resp.Body)
}

// localSize is the size in dir's checkpoint, 0 when there is none.
func localSize(dir string) uint64 {
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		return 0
	}
	var origin string
	var size uint64
	fmt.Sscanf(string(raw), "%s\n%d\n", &origin, &size)
	return size
}
