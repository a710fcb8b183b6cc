package witness

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveAdmin runs the admin socket until the test ends and waits for it.
func serveAdmin(t *testing.T, w *testWitness) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.serveAdmin(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	sock := filepath.Join(w.dir, adminSocket)
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i > 1000 {
			t.Fatal("admin socket never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestAddRemoveLogWhileRunning adds a log through the admin socket of a
// running witness, removes it, and re-adds it: the witness still holds
// the size and root it cosigned and refuses a conflicting history.
func TestAddRemoveLogWhileRunning(t *testing.T) {
	static := newTestLog(t, "static.example/log")
	w := newTestWitness(t, static)
	serveAdmin(t, w)
	lg := newTestLog(t, "example.com/log")

	if r := post(t, w.srv.URL, lg.request(t, 0, 5)); r.status != http.StatusNotFound {
		t.Fatalf("before add-log: %d", r.status)
	}
	m, err := Manage(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Running() {
		t.Fatal("Manage did not find the running witness")
	}
	if _, err := m.AddLog(LogConfig{Origin: lg.origin, Keys: []string{"nonsense"}}); err == nil || !strings.Contains(err.Error(), "not an Ed25519") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := m.AddLog(lg.config()); err != nil {
		t.Fatal(err)
	}
	mustCosign(t, w, lg, 0, 5)
	mustCosign(t, w, lg, 5, 8)

	// Key rotation: a second key for the same origin; both verify.
	rotated := lg.fork(8, "")
	next := newTestLog(t, lg.origin)
	rotated.vkey, rotated.signer = next.vkey, next.signer
	if r := post(t, w.srv.URL, rotated.request(t, 8, 9)); r.status != http.StatusForbidden {
		t.Fatalf("new key before it is added: %d", r.status)
	}
	rec, err := m.AddLog(LogConfig{Origin: lg.origin, Keys: []string{next.vkey}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Keys) != 2 {
		t.Fatalf("keys after rotation: %v", rec.Keys)
	}
	mustCosign(t, w, rotated, 8, 9)
	lg.grow(9)

	ls, err := m.Logs()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Origin != lg.origin || ls[0].Size != 9 || !ls[0].Added || !ls[1].InConfig {
		t.Fatalf("logs: %+v", ls)
	}

	// A config-file log cannot be removed at run time.
	if err := m.RemoveLog(static.origin); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("removing a config-file log: %v", err)
	}
	if err := m.RemoveLog(lg.origin); err != nil {
		t.Fatal(err)
	}
	if r := post(t, w.srv.URL, lg.request(t, 9, 9)); r.status != http.StatusNotFound {
		t.Fatalf("after remove-log: %d", r.status)
	}

	// Re-added: a fork that starts afresh (old 0) gets the stored size back,
	// and its history is refused.
	fork := lg.fork(4, "fork")
	if _, err := m.AddLog(lg.config()); err != nil {
		t.Fatal(err)
	}
	r := post(t, w.srv.URL, fork.request(t, 0, 9))
	if r.status != http.StatusConflict || string(r.body) != "9\n" {
		t.Fatalf("fork after re-add with old 0: %d %q", r.status, r.body)
	}
	if r := post(t, w.srv.URL, fork.request(t, 9, 12)); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("fork after re-add: %d %s", r.status, r.body)
	}
	if r := post(t, w.srv.URL, fork.request(t, 9, 9)); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("fork after re-add, same size: %d %s", r.status, r.body)
	}
	evs, err := m.Evidence(lg.origin)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d evidence records, want 2", len(evs))
	}
	mustCosign(t, w, lg, 9, 11)
}

// TestManageStopped: with no witness running, Manage edits the store, and
// a witness started afterwards witnesses the added log.
func TestManageStopped(t *testing.T) {
	dir := t.TempDir()
	if _, err := Manage(dir); err == nil || !strings.Contains(err.Error(), "no witness data") {
		t.Fatalf("Manage on an empty directory: %v", err)
	}
	w, err := Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// While the witness holds the store (no admin socket), Manage cannot
	// open it: the error says why.
	if _, err := Manage(dir); err == nil || !strings.Contains(err.Error(), "another stele-witness") {
		t.Fatalf("Manage while the store is open: %v", err)
	}
	w.Close()

	lg := newTestLog(t, "example.com/log")
	m, err := Manage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Running() {
		t.Fatal("Manage thinks the witness runs")
	}
	if _, err := m.AddLog(lg.config()); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveLog("nope"); err == nil {
		t.Fatal("removed an unknown log")
	}
	m.Close()

	w, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.AddCheckpoint(ctx(t), lg.request(t, 0, 3)); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if _, err := w.AddCheckpoint(ctx(t), lg.request(t, 1, 3)); !errors.As(err, &e) || e.Status != 409 || e.Size != 3 {
		t.Fatalf("%v", err)
	}
}

// TestKeyFiles: the key is created 0600 on first start and reused; the
// name cannot change; witness.pub holds the 0x04 verifier key.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Name: "w.example/a", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	vkey := w.VerifierKey()
	w.Close()
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, pubFile))
	if string(pub) != vkey+"\n" || !strings.HasPrefix(vkey, "w.example/a+") || strings.Split(vkey, "+")[2][0] != 'B' {
		t.Fatalf("witness.pub %q, vkey %q", pub, vkey)
	}
	w, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if w.VerifierKey() != vkey || w.Name() != "w.example/a" {
		t.Fatal("key changed on reopen")
	}
	w.Close()
	if _, err := Open(dir, Options{Name: "w.example/b", Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "named") {
		t.Fatalf("renaming: %v", err)
	}
	os.Chmod(filepath.Join(dir, keyFile), 0o644)
	if _, err := Open(dir, Options{Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open key: %v", err)
	}
}
