package forwarder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stele-dev/stele/internal/durable"
)

// FilesConfig configures the files sink: JSON Lines, one Stele record
// document per line (its "ocsf" member is the OCSF event), in files
// rotated by size and age, each batch synced before it is confirmed.
type FilesConfig struct {
	// Dir is the directory the files are written in.
	Dir string `json:"dir"`
	// Prefix starts every file name (default "stele").
	Prefix string `json:"prefix,omitempty"`
	// MaxBytes starts a new file once the current one holds this many
	// bytes (default 100 MiB).
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// MaxAge starts a new file once the current one is this old (default
	// 24h).
	MaxAge Duration `json:"max_age,omitempty"`
}

func (c *FilesConfig) validate() error {
	if c.Dir == "" {
		return errors.New("dir is required")
	}
	if c.Prefix == "" {
		c.Prefix = "stele"
	}
	if strings.ContainsAny(c.Prefix, `/\`) {
		return fmt.Errorf("prefix %q must not hold a path separator", c.Prefix)
	}
	if c.MaxBytes < 0 || c.MaxAge < 0 {
		return errors.New("max_bytes and max_age must not be negative")
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 100 << 20
	}
	if c.MaxAge == 0 {
		c.MaxAge = Duration(24 * time.Hour)
	}
	return nil
}

// FilesSink writes JSON Lines files. It is idempotent: on open it reads
// the last complete line of the newest file and skips records up to that
// index, and cuts off a torn last line (a batch the crash interrupted,
// never confirmed), so a record is in the files exactly once.
//
// Files are named <prefix>-<first index, 20 digits>-<UTC time>.jsonl, so
// their names sort in log order. Records of the logs that continue a frozen
// one (ChainForwarder) go to files named
// <prefix>-L<n, 4 digits>-<first index>-<UTC time>.jsonl, n counting the
// logs of the chain after the first, so the names still sort in the order
// the records were written.
type FilesSink struct {
	cfg     FilesConfig
	f       *os.File
	size    int64
	opened  time.Time
	last    uint64 // index of the last record written, valid when haveAny
	origin  string // its log's origin: a successor log starts again at 0
	gen     int    // how many times the origin changed (the L<n> of file names)
	haveAny bool
}

func openFiles(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenFiles(*settings.(*FilesConfig))
}

// OpenFiles opens the files sink, resuming the newest file.
func OpenFiles(cfg FilesConfig) (*FilesSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("files sink: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("files sink: %w", err)
	}
	s := &FilesSink{cfg: cfg}
	names, err := s.files()
	if err != nil {
		return nil, err
	}
	// Walk back past empty files to the last record written.
	for i := len(names) - 1; i >= 0; i-- {
		idx, origin, ok, err := lastIndex(names[i])
		if err != nil {
			return nil, fmt.Errorf("files sink: %w", err)
		}
		if ok {
			s.last, s.origin, s.haveAny = idx, origin, true
			s.gen = fileGen(filepath.Base(names[i]), cfg.Prefix)
			break
		}
	}
	return s, nil
}

// Files lists the sink's files in log order.
func (s *FilesSink) files() ([]string, error) {
	m, err := filepath.Glob(filepath.Join(s.cfg.Dir, s.cfg.Prefix+"-*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("files sink: %w", err)
	}
	slices.Sort(m)
	return m, nil
}

// lastIndex cuts a torn last line off the file at path and returns the
// index and origin of its last complete line.
func lastIndex(path string) (uint64, string, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, "", false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", false, err
	}
	size := st.Size()
	// Find the end of the last complete line, then its start.
	end, err := lastByte(f, size, '\n')
	if err != nil {
		return 0, "", false, err
	}
	if end+1 != size {
		// A torn line: never confirmed, so never counted as delivered.
		if err := f.Truncate(end + 1); err != nil {
			return 0, "", false, fmt.Errorf("cutting a torn last line off %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return 0, "", false, err
		}
	}
	if end < 0 {
		return 0, "", false, nil
	}
	start, err := lastByte(f, end, '\n')
	if err != nil {
		return 0, "", false, err
	}
	line := make([]byte, end-start-1)
	if _, err := f.ReadAt(line, start+1); err != nil {
		return 0, "", false, err
	}
	var d struct {
		Index  *uint64 `json:"index"`
		Origin string  `json:"origin"`
	}
	if err := json.Unmarshal(line, &d); err != nil || d.Index == nil {
		return 0, "", false, fmt.Errorf("the last line of %s is not a Stele record (%v): move the file away", path, err)
	}
	return *d.Index, d.Origin, true, nil
}

// lastByte returns the offset of the last c before offset end, or -1.
func lastByte(f *os.File, end int64, c byte) (int64, error) {
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], c); i >= 0 {
			return end - n + int64(i), nil
		}
		end -= n
	}
	return -1, nil
}

// Idempotent: the sink skips what its files already hold.
func (s *FilesSink) Idempotent() bool { return true }

// Deliver appends the records and syncs the file.
func (s *FilesSink) Deliver(_ context.Context, items []*Item) error {
	var w *bufio.Writer
	for _, it := range items {
		if s.haveAny && it.Doc.Origin == s.origin && it.Doc.Index <= s.last {
			continue
		}
		if s.haveAny && it.Doc.Origin != s.origin {
			// The next log of a chain: its own files, after the last
			// log's.
			if w != nil {
				if err := s.flush(w); err != nil {
					return err
				}
				w = nil
			}
			s.gen++
			if err := s.rotate(it.Doc.Index); err != nil {
				return err
			}
		} else if s.f == nil || s.size >= s.cfg.MaxBytes || time.Since(s.opened) >= time.Duration(s.cfg.MaxAge) {
			if w != nil {
				if err := s.flush(w); err != nil {
					return err
				}
			}
			if err := s.rotate(it.Doc.Index); err != nil {
				return err
			}
			w = nil
		}
		if w == nil {
			w = bufio.NewWriterSize(s.f, 1<<20)
		}
		w.Write(it.JSON)
		w.WriteByte('\n')
		s.size += int64(len(it.JSON)) + 1
		s.last, s.origin, s.haveAny = it.Doc.Index, it.Doc.Origin, true
	}
	if w != nil {
		return s.flush(w)
	}
	return nil
}

func (s *FilesSink) flush(w *bufio.Writer) error {
	if err := w.Flush(); err != nil {
		return s.fail(err)
	}
	if err := s.f.Sync(); err != nil {
		return s.fail(err)
	}
	return nil
}

// fail closes the current file after a failed write: the next Deliver
// reopens, cutting what this one left half written.
func (s *FilesSink) fail(err error) error {
	name := s.f.Name()
	s.f.Close()
	s.f = nil
	idx, origin, ok, lerr := lastIndex(name)
	s.last, s.origin, s.haveAny = idx, origin, ok
	if lerr != nil {
		return fmt.Errorf("files sink: %v (and re-reading %s: %v)", err, name, lerr)
	}
	return fmt.Errorf("files sink: %w", err)
}

// rotate closes the current file and starts a new one whose first record
// is first.
func (s *FilesSink) rotate(first uint64) error {
	if s.f != nil {
		if err := s.f.Close(); err != nil {
			return fmt.Errorf("files sink: %w", err)
		}
		s.f = nil
	}
	now := time.Now().UTC()
	gen := ""
	if s.gen > 0 {
		gen = fmt.Sprintf("L%04d-", s.gen)
	}
	name := filepath.Join(s.cfg.Dir, fmt.Sprintf("%s-%s%020d-%s.jsonl", s.cfg.Prefix, gen, first, now.Format("20060102T150405Z")))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	if err := durable.SyncDir(s.cfg.Dir); err != nil {
		f.Close()
		return fmt.Errorf("files sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size, s.opened = f, st.Size(), now
	return nil
}

// fileGen is the L<n> of a file name, 0 for the first log's files.
func fileGen(name, prefix string) int {
	var n int
	if _, err := fmt.Sscanf(strings.TrimPrefix(name, prefix+"-"), "L%04d-", &n); err != nil {
		return 0
	}
	return n
}

// Close closes the current file.
func (s *FilesSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
