package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/durable/durabletest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// runServer runs the real stele-server with args and expects it to exit
// with an error; it returns its stderr.
func runServer(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t)}, args...)
	cmd := exec.Command(serverBinary(t), args...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("stele-server %s did not exit:\n%s", strings.Join(args, " "), out)
	}
	if err == nil {
		t.Fatalf("stele-server %s started:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// TestFilePermissions runs the real stele-server as a careless operator
// would: under umask 000 it still creates every file 0600 and directory
// 0700 (Pebble's WAL and tables, Tessera's tiles, salts, keys); it refuses
// a data directory other users can reach, saying what to run, and
// --fix-permissions tightens it; a private key other users can read is
// refused wherever it lives (log.key in the data directory, --log-key,
// --tls-key).
func TestFilePermissions(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	p := startProcessWith(t, dir, durabletest.Umask("000"))
	evs := []*stelev1.Event{event("entra/t1/audit", "perm-1", 600), event("entra/t1/audit", "perm-2", 600)}
	mustAppend(t, p.cli, evs)
	p.cli.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.logs)
	}
	wal, _ := filepath.Glob(filepath.Join(dir, "store", "payloads", "*.log"))
	if len(wal) == 0 {
		t.Fatalf("no payload WAL under %s", dir)
	}
	if open := durabletest.OpenToOthers(t, dir); len(open) > 0 {
		t.Fatalf("under umask 000, %d entries grant access to group or others:\n%s", len(open), strings.Join(open, "\n"))
	}

	// A data directory other users can reach (made by hand, or an older
	// version's files): refused, with the command to run.
	os.Chmod(dir, 0o755)
	leftover := filepath.Join(dir, "store", "payloads", "leftover")
	os.WriteFile(leftover, []byte("x"), 0o644)
	out := runServer(t, "--data-dir", dir)
	if !strings.Contains(out, "data directory "+dir+" is accessible to other users (mode -rwxr-xr-x)") ||
		!strings.Contains(out, "chmod -R go-rwx "+dir) || !strings.Contains(out, "--fix-permissions") {
		t.Fatalf("a 0755 data directory:\n%s", out)
	}
	p = startProcessWith(t, dir, nil, "--fix-permissions")
	p.cli.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	if !strings.Contains(p.logs.String(), "tightened the data directory's permissions") {
		t.Fatalf("--fix-permissions said nothing:\n%s", p.logs)
	}
	if open := durabletest.OpenToOthers(t, dir); len(open) > 0 {
		t.Fatalf("after --fix-permissions:\n%s", strings.Join(open, "\n"))
	}

	// Private keys: the same rule wherever they live.
	key := filepath.Join(root, "mounted.key")
	raw, err := os.ReadFile(filepath.Join(dir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(key, raw, 0o644)
	os.Chmod(filepath.Join(dir, "log.key"), 0o644)
	if out := runServer(t, "--data-dir", dir); !strings.Contains(out, "log key "+filepath.Join(dir, "log.key")+" is accessible to other users") {
		t.Fatalf("log.key 0644 in the data directory:\n%s", out)
	}
	other := filepath.Join(root, "other")
	if out := runServer(t, "--data-dir", other, "--log-key", key); !strings.Contains(out, "log key "+key+" is accessible to other users (mode -rw-r--r--): run chmod 600 "+key) {
		t.Fatalf("--log-key 0644:\n%s", out)
	}
	tlsKey := filepath.Join(root, "server.key")
	os.WriteFile(tlsKey, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o644)
	if out := runServer(t, "--data-dir", other, "--tls-cert", tlsKey, "--tls-key", tlsKey); !strings.Contains(out, "TLS key "+tlsKey+" is accessible to other users") {
		t.Fatalf("--tls-key 0644:\n%s", out)
	}
	os.Chmod(key, 0o600)
	p = startProcessWith(t, other, nil, "--log-key", key)
	p.cli.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("--log-key 0600: %v\n%s", err, p.logs)
	}
}
