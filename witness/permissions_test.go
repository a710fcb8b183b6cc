package witness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/internal/durable/durabletest"
	"github.com/stele-dev/stele/internal/proctest"
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
		return startWitnessProcWith(t, dir, durabletest.Umask("000"), append([]string{"--config", cfg}, args...)...)
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
	out, err := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", proctest.FreeAddr(t), "--config", cfg).CombinedOutput()
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
