package forwarder

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stele-dev/stele/internal/durable"
)

// Cursor is a sink's durable position in the log.
type Cursor struct {
	// Next is the index of the first entry the sink has not confirmed.
	Next uint64 `json:"next"`
	// SendingTo, when above Next, is the end of a batch handed to the sink
	// and not yet confirmed: after a crash, entries [Next, SendingTo) are
	// sent again, and a sink without idempotent ids may then hold two
	// copies (counted in stele_forwarder_redelivered_total).
	SendingTo uint64 `json:"sending_to,omitempty"`
	Updated   string `json:"updated,omitempty"`
}

// cursorStore reads and writes one sink's cursor file.
type cursorStore struct{ path string }

func newCursorStore(stateDir, sink string) (*cursorStore, error) {
	dir := filepath.Join(stateDir, "cursors")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cursor directory: %w", err)
	}
	return &cursorStore{path: filepath.Join(dir, sink+".json")}, nil
}

// Load returns the stored cursor, or the zero cursor when there is none.
func (c *cursorStore) Load() (Cursor, error) {
	return readCursor(c.path)
}

func readCursor(path string) (Cursor, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("cursor: %w", err)
	}
	var cur Cursor
	if err := json.Unmarshal(b, &cur); err != nil {
		return Cursor{}, fmt.Errorf("cursor %s does not parse (fix or remove it to restart from entry 0): %v", path, err)
	}
	return cur, nil
}

// Save replaces the cursor atomically and durably.
func (c *cursorStore) Save(cur Cursor) error {
	cur.Updated = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	if err := durable.WriteAtomic(c.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	return nil
}
