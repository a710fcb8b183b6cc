package tiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/transparency-dev/tessera/api/layout"
)

// maxFileSize bounds what DirReader will read into memory. The largest
// legitimate resource is a full entry bundle of 256 maximum-size entries,
// each a 2-byte length prefix plus up to 65535 bytes (~16 MiB).
const maxFileSize = layout.EntryBundleWidth * (2 + 65535)

// DirReader returns a Reader for a log stored on a POSIX filesystem under
// root, in the tlog-tiles layout that Tessera's POSIX driver writes.
//
// Unlike Tessera's own POSIX LogReader, it reads exactly
// root/<layout path> and never falls back from a partial tile or entry bundle
// to the full one: a partial that does not exist (for example because it was
// garbage-collected after the full tile was written) is reported as
// fs.ErrNotExist, so the handler answers 404 and clients fall back themselves.
//
// All reads go through os.Root, so nothing outside root can be read, even via
// symlinks. Only regular files are read. Files are opened per request, so the
// directory may be replaced while the reader is in use.
//
// DirReader assumes the standard tlog-tiles entry bundle layout (not
// Tessera's CT layout).
func DirReader(root string) Reader {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	return dirReader{root: root}
}

type dirReader struct {
	root string
}

func (d dirReader) ReadCheckpoint(_ context.Context) ([]byte, error) {
	return d.read(layout.CheckpointPath)
}

func (d dirReader) ReadTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	return d.read(layout.TilePath(level, index, p))
}

func (d dirReader) ReadEntryBundle(_ context.Context, index uint64, p uint8) ([]byte, error) {
	return d.read(layout.EntriesPath(index, p))
}

// read returns the contents of the regular file at name, a slash-separated
// path relative to the log root. Errors mention only name, never the root.
func (d dirReader) read(name string) ([]byte, error) {
	root, err := os.OpenRoot(d.root)
	if err != nil {
		// The log directory itself is missing or unreadable: that is a
		// misconfiguration, not a missing resource.
		return nil, fmt.Errorf("open log root: %v", stripPath(err))
	}
	defer func() { _ = root.Close() }()

	// O_NONBLOCK: opening a FIFO cannot block (nor can a device); only a
	// regular file is then read. One open walks the path once.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, mapErr(name, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, mapErr(name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", name, fs.ErrNotExist)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s: file too large (%d bytes)", name, fi.Size())
	}
	// Tessera writes every file whole (a temporary file, renamed), so its
	// size is known: read it in one go, into a buffer of that size plus
	// one byte to see the end.
	b := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, b)
	switch err {
	case io.ErrUnexpectedEOF, io.EOF:
		return b[:n], nil
	case nil:
		// The file grew since the stat: read the rest, within the bound.
		b, err = io.ReadAll(io.MultiReader(bytes.NewReader(b), io.LimitReader(f, maxFileSize+1-int64(n))))
		if err != nil {
			return nil, mapErr(name, err)
		}
		if len(b) > maxFileSize {
			return nil, fmt.Errorf("%s: file too large", name)
		}
		return b, nil
	default:
		return nil, mapErr(name, err)
	}
}

// mapErr turns "does not exist" conditions into an error wrapping
// fs.ErrNotExist and strips any filesystem path from other errors.
func mapErr(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return fmt.Errorf("%s: %w", name, stripPath(err))
}

// stripPath drops the path from a *fs.PathError, keeping the op and cause.
func stripPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}
