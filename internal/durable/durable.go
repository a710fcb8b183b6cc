// Package durable writes small files (keys, public keys) so that once a
// call returns, the file and its directory entry survive a crash.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteExclusive creates path (which must not exist) with data and mode,
// fsyncs it and its directory.
func WriteExclusive(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteAtomic replaces path with data: readers see the old or the new
// content, never a mix, and the new content is durable on return.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := WriteExclusive(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes the directory's entries (new, renamed files) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadOrCreateSecret returns the contents (trimmed) of the secret file at
// path, first creating it with create() and mode 0600 when it is absent. An
// existing file that other users can access is refused (CheckSecretFile).
// what names the secret in errors, e.g. "log key".
func ReadOrCreateSecret(path, what string, create func() (string, error)) (string, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret, err := create()
		if err != nil {
			return "", fmt.Errorf("generating %s: %w", what, err)
		}
		if err := WriteExclusive(path, []byte(secret+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("saving new %s: %w", what, err)
		}
		return secret, nil
	}
	return ReadSecret(path, what)
}
