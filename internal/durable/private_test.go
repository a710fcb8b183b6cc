package durable

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPrivateDir(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := t.TempDir()

	// Created 0700 whatever the umask.
	dir := filepath.Join(root, "a", "data")
	if n, err := PrivateDir(dir, false); err != nil || n != 0 {
		t.Fatalf("new: %d, %v", n, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("new data directory mode %v", fi.Mode().Perm())
	}
	// An existing 0700 one is fine.
	if _, err := PrivateDir(dir, false); err != nil {
		t.Fatal(err)
	}
	// An empty one others can read (mkdir under umask 022) exposes nothing
	// yet: set to 0700. A world-writable one is not: someone may be
	// putting files in it.
	os.Chmod(dir, 0o755)
	if n, err := PrivateDir(dir, false); err != nil || n != 1 {
		t.Fatalf("empty 0755: %d, %v", n, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("empty 0755 data directory now %v", fi.Mode().Perm())
	}
	os.Chmod(dir, 0o777)
	if _, err := PrivateDir(dir, false); err == nil {
		t.Fatal("an empty world-writable data directory was taken")
	}
	os.Chmod(dir, 0o700)
	// Reachable by others: refused with what to run, untouched.
	os.Chmod(dir, 0o750)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "f"), nil, 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	_, err := PrivateDir(dir, false)
	if err == nil || !strings.Contains(err.Error(), "accessible to other users (mode -rwxr-x---)") || !strings.Contains(err.Error(), "chmod -R go-rwx "+dir) || !strings.Contains(err.Error(), FixPermissionsFlag) {
		t.Fatalf("0750: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o750 {
		t.Fatal("refusing changed the mode")
	}
	// Fixed on request: the directory and everything in it.
	n, err := PrivateDir(dir, true)
	if err != nil || n != 3 {
		t.Fatalf("fix: %d entries, %v", n, err)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if fi, _ := os.Lstat(p); fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s still %v", p, fi.Mode())
		}
		return nil
	})
	if fi, _ := os.Stat("/etc/passwd"); fi.Mode().Perm()&0o004 == 0 {
		t.Fatal("the fix followed a symbolic link")
	}
	// A file is not a data directory.
	if _, err := PrivateDir(filepath.Join(dir, "sub", "f"), true); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file: %v", err)
	}
	if got := shellQuote("/a b/it's"); got != `'/a b/it'\''s'` {
		t.Fatalf("quoted %s", got)
	}
}

func TestSecretMode(t *testing.T) {
	const me, root = 1000, 0
	for _, tc := range []struct {
		mode        fs.FileMode
		owner, euid int
		ok          bool
	}{
		{0o600, me, me, true},
		{0o400, me, me, true},
		{0o640, me, me, false},
		{0o604, me, me, false},
		{0o644, me, me, false},
		// A root-owned Secret mount with fsGroup: group read is fine.
		{0o440, root, me, true},
		{0o640, root, me, true},
		{0o660, root, me, false},
		{0o644, root, me, false},
		{0o650, root, me, false},
		// Running as root, root's own key: no group access either.
		{0o600, root, root, true},
		{0o640, root, root, false},
	} {
		err := secretModeOK("/k", "test key", tc.mode, tc.owner, tc.euid)
		if (err == nil) != tc.ok {
			t.Errorf("mode %v owner %d euid %d: %v, want ok %v", tc.mode, tc.owner, tc.euid, err, tc.ok)
		}
	}
	if err := secretModeOK("/k", "test key", 0o644, me, me); err == nil || err.Error() != "test key /k is accessible to other users (mode -rw-r--r--): run chmod 600 /k" {
		t.Fatalf("message: %v", err)
	}
}
