// Package durabletest checks file permissions for tests of the real
// binaries.
package durabletest

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Umask returns a hook that makes an exec.Cmd (not yet started) run under
// umask mask, through /bin/sh, as a careless service manager or shell might.
func Umask(mask string) func(*exec.Cmd) {
	return func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"/bin/sh", "-c", `umask ` + mask + ` && exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = "/bin/sh"
	}
}

// OpenToOthers lists the entries under dir (dir included) whose mode
// grants any access to group or others; symbolic links are skipped.
func OpenToOthers(t testing.TB, dir string) []string {
	t.Helper()
	var open []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o077 != 0 {
			open = append(open, fi.Mode().String()+" "+p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return open
}
