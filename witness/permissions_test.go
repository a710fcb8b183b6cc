package witness_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/durable/durabletest"
)

// TestFilePermissions runs the real stele-witness under umask 000: its
// key, Pebble store (WAL included) and directories grant nothing to group
// or others. A data directory other users can reach is refused with the
// command to run, and --fix-permissions tightens it.
func TestFilePermissions(t *testing.T) {
	lg := newTestLog(t, "example.com/perm")
	cfg := writeConfig(t, lg)
	dir := filepath.Join(t.TempDir(), "w")
	startUmask := func(args ...string) *witnessProc {
		t.Helper()
		addr := freeAddr(t)
		p := &witnessProc{url: "http://" + addr, logs: &syncBuffer{}}
		argv := durabletest.UmaskArgs("000", witnessBinary(t), append([]string{"--data-dir", dir, "--listen", addr, "--config", cfg}, args...)...)
		p.cmd = exec.Command(argv[0], argv[1:]...)
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
			if r, err := http.Get(p.url + "/healthz"); err == nil {
				r.Body.Close()
				return p
			}
			if p.cmd.ProcessState != nil || i > 2000 {
				t.Fatalf("stele-witness did not come up:\n%s", p.logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	p := startUmask()
	mustCosignURL(t, p.url, lg, 0, 5)
	p.stop(t)
	if wal, _ := filepath.Glob(filepath.Join(dir, "state", "*.log")); len(wal) == 0 {
		t.Fatal("no store WAL")
	}
	if open := durabletest.OpenToOthers(t, dir); len(open) > 0 {
		t.Fatalf("under umask 000, %d entries grant access to group or others:\n%s", len(open), strings.Join(open, "\n"))
	}

	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "state"), 0o755)
	out, err := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", freeAddr(t), "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "data directory "+dir+" is accessible to other users (mode -rwxr-xr-x)") ||
		!strings.Contains(string(out), "chmod -R go-rwx "+dir) || !strings.Contains(string(out), "--fix-permissions") {
		t.Fatalf("a 0755 data directory: %v\n%s", err, out)
	}
	p = startUmask("--fix-permissions")
	mustCosignURL(t, p.url, lg, 5, 7)
	p.stop(t)
	if !strings.Contains(p.logs.String(), "tightened the data directory's permissions") {
		t.Fatalf("--fix-permissions said nothing:\n%s", p.logs)
	}
	if open := durabletest.OpenToOthers(t, dir); len(open) > 0 {
		t.Fatalf("after --fix-permissions:\n%s", strings.Join(open, "\n"))
	}
}
