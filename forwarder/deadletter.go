package forwarder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// deadLetters appends records a sink refused for good to a JSON Lines file,
// synced before the cursor moves past them.
type deadLetters struct {
	mu   sync.Mutex
	path string
}

type deadLetter struct {
	Time     string          `json:"time"`
	Sink     string          `json:"sink"`
	Index    uint64          `json:"index"`
	Error    string          `json:"error"`
	Document json.RawMessage `json:"document"`
}

func newDeadLetters(stateDir, sink string) (*deadLetters, error) {
	dir := filepath.Join(stateDir, "deadletter")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dead-letter directory: %w", err)
	}
	return &deadLetters{path: filepath.Join(dir, sink+".jsonl")}, nil
}

// Add appends the refused items and syncs the file.
func (d *deadLetters) Add(sink string, items []*Item, errs []error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var buf []byte
	for i, it := range items {
		b, err := json.Marshal(deadLetter{Time: now, Sink: sink, Index: it.Doc.Index, Error: errs[i].Error(), Document: it.JSON})
		if err != nil {
			f.Close()
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("dead-letter file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return f.Close()
}
