package mirror_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/proctest"
	"github.com/stele-dev/stele/mirror"
)

// TestMirrorFrozenLog: the mirror of a log that is then frozen copies the
// freeze statement, verified, byte for byte, once it holds the final
// checkpoint, says the log is frozen (stele mirror --once, Mirror.Frozen,
// the copy's /frozen), and on reopening checks the statement names the
// copy's checkpoint: a statement that does not verify is refused.
func TestMirrorFrozenLog(t *testing.T) {
	ctx := ctxFor(t)
	src := startSource(t)
	src.submit(t, 40)
	dir := t.TempDir()
	m, err := mirror.New(ctx, mirror.Config{Log: src.tileLog(t), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := m.Sync(ctx); err != nil || cp.Size != 40 || m.Frozen() != nil {
		t.Fatalf("before the freeze: %v %v, frozen %v", cp, err, m.Frozen())
	}
	if _, err := os.Stat(filepath.Join(dir, client.FreezePath)); err == nil {
		t.Fatal("a freeze statement in the copy of an open log")
	}
	m.Close()

	// Stop, freeze naming a successor, serve again (read-only).
	src.Stop()
	succ := t.TempDir()
	if out, err := exec.Command(proctest.Binary(t, "stele-server"), "freeze", "--data-dir", src.Dir, "--successor-key", newLogKey(t, succ, "next.stele.test/log"),
		"--successor-url", "https://next.stele.test/log/").CombinedOutput(); err != nil {
		t.Fatalf("freeze: %v\n%s", err, out)
	}
	src.start(t)

	var out, errb bytes.Buffer
	code := cli.Main([]string{"mirror", "--log", src.url(), "--log-key", src.keyPath(), "--to", dir, "--once"}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "log frozen: log stele.localhost/log is frozen at size 40") || !strings.Contains(out.String(), "its successor is next.stele.test/log") {
		t.Fatalf("stele mirror --once of the frozen log: exit %d\n%s%s", code, out.String(), errb.String())
	}
	want, _ := os.ReadFile(filepath.Join(src.logDir(), client.FreezePath))
	got, _ := os.ReadFile(filepath.Join(dir, client.FreezePath))
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("the copy's freeze statement:\n%s\nwant\n%s", got, want)
	}
	m, err = mirror.New(ctx, mirror.Config{Log: src.tileLog(t), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if f := m.Frozen(); f == nil || f.Size != 40 || f.Successor != "next.stele.test/log" {
		t.Fatalf("reopened copy: frozen %v", f)
	}
	if _, err := m.Sync(ctx); err != nil {
		t.Fatalf("a catch-up of the frozen log: %v", err)
	}
	m.Close()

	// A statement that does not verify: the copy is refused.
	os.WriteFile(filepath.Join(dir, client.FreezePath), bytes.Replace(want, []byte("size 40"), []byte("size 41"), 1), 0o644)
	if _, err := mirror.New(ctx, mirror.Config{Log: src.tileLog(t), Dir: dir}); err == nil || !strings.Contains(err.Error(), "freeze statement") {
		t.Fatalf("a copy with an altered freeze statement opened: %v", err)
	}
}

// newLogKey makes a log key for origin in dir and returns its verifier key.
func newLogKey(t *testing.T, dir, origin string) string {
	t.Helper()
	k, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	return k.VKey
}
