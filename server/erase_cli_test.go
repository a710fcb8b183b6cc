package server_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/internal/cli"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestCLIErase runs stele erase, event and verify --event against a server.
func TestCLIErase(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	mustAppend(t, ts.cli, []*stelev1.Event{event("entra/t1/audit", "x1", 400), event("entra/t1/audit", "x2", 400)})
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errs := run("erase", "--server", ts.grpcAddr, "--index", "1", "--ref", "REQ-9"); code != cli.ExitUsage || !strings.Contains(errs, "--reason") {
		t.Fatalf("erase without reason: exit %d: %s", code, errs)
	}
	code, out, errs := run("erase", "--server", ts.grpcAddr, "--index", "1", "--reason", "GDPR Art. 17", "--ref", "REQ-9")
	if code != 0 || !strings.Contains(out, "entry 1 erased") || !strings.Contains(out, "erasure event at index 2") {
		t.Fatalf("erase: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run("erase", "--server", ts.grpcAddr, "--index", "1", "--reason", "again", "--ref", "REQ-10")
	if code != 0 || !strings.Contains(out, "entry 1 already erased") || !strings.Contains(out, "REQ-9") {
		t.Fatalf("second erase: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = run("erase", "--server", ts.grpcAddr, "--index", "99", "--reason", "r", "--ref", "x")
	if code != 1 || !strings.Contains(errs, "NotFound") {
		t.Fatalf("erase past the end: exit %d\n%s", code, errs)
	}
	code, out, errs = run("event", "--server", ts.grpcAddr, "--index", "1")
	if code != 0 || !strings.Contains(out, `"tombstone"`) || !strings.Contains(out, "REQ-9") || !strings.Contains(errs, "was erased") {
		t.Fatalf("event: exit %d\n%s%s", code, out, errs)
	}
	evFile := filepath.Join(dir, "event.json")
	os.WriteFile(evFile, []byte(out), 0o600)
	code, rc, errs := run("receipt", "--server", ts.grpcAddr, "--index", "1")
	if code != 0 {
		t.Fatalf("receipt: exit %d\n%s", code, errs)
	}
	rcFile := filepath.Join(dir, "receipt.tlog-proof")
	os.WriteFile(rcFile, []byte(rc), 0o600)
	code, out, errs = run("verify", "--log-key", filepath.Join(dir, "log.pub"), "--event", evFile, rcFile)
	if code != 0 || !strings.Contains(out, "receipt OK") || !strings.Contains(out, "event ERASED") {
		t.Fatalf("verify --event: exit %d\n%s%s", code, out, errs)
	}

	// The audit with the payload check: entry 0 and the erasure event
	// (entry 2) match their leaves, entry 1 is erased by entry 2.
	if code, _, errs := run("receipt", "--server", ts.grpcAddr, "--index", "2"); code != 0 {
		t.Fatalf("receipt of the erasure event: exit %d\n%s", code, errs)
	}
	code, out, errs = run("audit", "--log", ts.httpURL, "--log-key", filepath.Join(dir, "log.pub"), "--server", ts.grpcAddr)
	if code != 0 || !strings.Contains(out, `"payloads_checked": 2`) || !strings.Contains(out, `"payloads_erased": 1`) || !strings.Contains(errs, "audit OK") {
		t.Fatalf("audit --server: exit %d\n%s%s", code, out, errs)
	}
}
