package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/stele-dev/stele/internal/durable"
)

// CursorStore keeps each source's cursor in a file of its own in the state
// directory, <name>.cursor.json. A save is durable when it returns (synced,
// then renamed over the old file, then the directory synced), so after a
// crash a cursor is the old one or the new one, never a mix.
type CursorStore struct {
	dir string
}

// Cursor is what a cursor file holds: the source's own position and when
// it was saved.
type Cursor struct {
	// Position is the source's position (its own JSON shape).
	Position json.RawMessage `json:"position"`
	// Saved is when the cursor was written.
	Saved time.Time `json:"saved"`
	// Events is how many events the collector has had acknowledged from
	// this source, all runs together.
	Events uint64 `json:"events"`
}

// OpenCursorStore opens (creating) the state directory dir.
func OpenCursorStore(dir string) (*CursorStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &CursorStore{dir: dir}, nil
}

func (s *CursorStore) path(name string) string {
	return filepath.Join(s.dir, name+".cursor.json")
}

// Load returns the source's cursor, or a zero Cursor when it has none yet.
func (s *CursorStore) Load(name string) (Cursor, error) {
	var c Cursor
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading cursor of %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("cursor file %s is damaged (%v): restore it, or remove it and start with --from", s.path(name), err)
	}
	return c, nil
}

// Save replaces the source's cursor durably.
func (s *CursorStore) Save(name string, c Cursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := durable.WriteAtomic(s.path(name), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving cursor of %s: %w", name, err)
	}
	return nil
}
