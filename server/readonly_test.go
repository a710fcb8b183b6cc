package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestPOSIXFullTilesReadOnly: on posix, full tiles and entry bundles become
// read-only once a published checkpoint covers them; partial ones and the
// checkpoint stay writable for Tessera to replace; and the log goes on
// growing over them (Tessera writes by rename, which the mode does not stop).
func TestPOSIXFullTilesReadOnly(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, server.Config{})
	all := appendConcurrently(t, ts.cli, 1, 3, 200, 200) // 600 entries: bundles 0, 1 full, 2 partial
	if _, err := ts.cli.Receipt(ctxT(t, time.Minute), all[len(all)-1].idx); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(filepath.Join(log, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	deadline := time.Now().Add(10 * time.Second)
	for mode("tile/entries/001") != 0o444 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range []string{"tile/entries/000", "tile/entries/001", "tile/0/000", "tile/0/001"} {
		if m := mode(p); m != 0o444 {
			t.Errorf("full %s: mode %v, want 0444", p, m)
		}
	}
	for _, p := range []string{"tile/entries/002.p/88", "tile/0/002.p/88", "checkpoint"} {
		if m := mode(p); m&0o200 == 0 {
			t.Errorf("%s: mode %v, want writable", p, m)
		}
	}
	// (The test runs as root in CI, which file modes do not stop, so it
	// checks the modes rather than a refused write.)

	// The log grows past the sealed tiles: level-0 tile 002 and bundle 002
	// fill up and are replaced, by rename, over their partial versions.
	var evs []*stelev1.Event
	for i := range 300 {
		evs = append(evs, event("entra/more/audit", fmt.Sprintf("more-%d", i), 200))
	}
	rs := mustAppend(t, ts.cli, evs)
	if _, err := ts.cli.Receipt(ctxT(t, time.Minute), rs[len(rs)-1].Index); err != nil {
		t.Fatalf("appending after tiles were sealed: %v", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for mode("tile/entries/002") != 0o444 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m := mode("tile/entries/002"); m != 0o444 {
		t.Errorf("bundle 002, full now: mode %v", m)
	}
}
