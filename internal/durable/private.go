package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// FixPermissionsFlag is the flag the binaries take to tighten a data
// directory that other users can reach; errors name it.
const FixPermissionsFlag = "--fix-permissions"

// PrivateDir makes sure dir exists and that no other user can reach it.
// An absent dir is created with mode 0700, and an empty one that others
// can read but not write (mkdir under umask 022, say) is set to 0700: it
// exposes nothing yet. An existing one that holds files, or that others can
// write to, and whose mode grants anything to group or others, is refused
// with an error that says what to run; with fix it is tightened instead,
// with everything under it (group and other bits cleared; symbolic links
// are left alone). It returns the number of entries it changed.
//
// Only dir itself is checked at each start: once it is 0700, the modes
// of what it holds cannot expose anything to other users.
func PrivateDir(dir string, fix bool) (int, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, fmt.Errorf("creating data directory: %w", err)
		}
		// MkdirAll's mode is filtered by the umask, which can only take
		// bits away; chmod anyway so that the result never depends on it.
		return 0, os.Chmod(dir, 0o700)
	}
	if err != nil {
		return 0, fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("data directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return 0, nil
	}
	if fi.Mode().Perm()&0o022 == 0 {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
			return 1, os.Chmod(dir, 0o700)
		}
	}
	if !fix {
		return 0, fmt.Errorf("data directory %s is accessible to other users (mode %v): the payloads, salts and keys in it would be readable by them. Run\n\tchmod -R go-rwx %s\nor start with %s, which does the same",
			dir, fi.Mode().Perm(), shellQuote(dir), FixPermissionsFlag)
	}
	n := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if m := info.Mode().Perm(); m&0o077 != 0 {
			if err := os.Chmod(p, m&^0o077); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("tightening the permissions of %s: %w", dir, err)
	}
	return n, nil
}

// CheckSecretFile refuses a private key file that other users could read
// or change, wherever it lives. It follows PostgreSQL's rule for its
// server key: a file owned by this process's user must grant nothing to
// group or others (0600, 0400); a file owned by root (a Kubernetes Secret
// mounted with fsGroup, say) may be readable by its group (0640, 0440) but
// not writable by it, and grant nothing to others. what names the secret
// in errors, e.g. "log key".
func CheckSecretFile(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	uid := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = int(st.Uid)
	}
	return secretModeOK(path, what, fi.Mode().Perm(), uid, os.Geteuid())
}

func secretModeOK(path, what string, mode fs.FileMode, owner, euid int) error {
	bad := fs.FileMode(0o077)
	fix := "chmod 600 " + shellQuote(path)
	if owner == 0 && euid != 0 {
		bad, fix = 0o037, "chmod 640 "+shellQuote(path)+" (or 600)"
	}
	if mode&bad != 0 {
		return fmt.Errorf("%s %s is accessible to other users (mode %v): run %s", what, path, mode, fix)
	}
	return nil
}

// ReadSecret reads the secret file at path (trimmed) after CheckSecretFile.
func ReadSecret(path, what string) (string, error) {
	if err := CheckSecretFile(path, what); err != nil {
		return "", err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	return strings.TrimSpace(string(raw)), nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
