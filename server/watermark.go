package server

import (
	"log/slog"
	"sync"

	"github.com/stele-dev/stele/internal/store"
)

// watermark tracks the log size below which every entry is in the dedup and
// leaf-hash indexes, and persists it so recovery only rescans the tail.
type watermark struct {
	store payloadStore
	log   *slog.Logger

	mu    sync.Mutex
	next  uint64              // every index below next is indexed
	ahead map[uint64]struct{} // indexed entries at or past next
}

func newWatermark(s payloadStore, l *slog.Logger, start uint64) *watermark {
	return &watermark{store: s, log: l, next: start, ahead: make(map[uint64]struct{})}
}

// done records that es are indexed. Call it after PutIndexes returned. A nil
// watermark (aws: the replicas' followIndexes moves the shared one) does
// nothing.
func (w *watermark) done(es []store.Indexed) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range es {
		if e.Index >= w.next {
			w.ahead[e.Index] = struct{}{}
		}
	}
	moved := false
	for {
		if _, ok := w.ahead[w.next]; !ok {
			break
		}
		delete(w.ahead, w.next)
		w.next++
		moved = true
	}
	if moved {
		if err := w.store.SetWatermark(w.next); err != nil {
			// Harmless for correctness: recovery rescans from an older mark.
			w.log.Warn("saving index watermark", "err", err)
		}
	}
}
