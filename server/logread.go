package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/leaf"
)

// forEachLeaf calls fn for every leaf in [start, end) of a tree of the given
// size, reading whole entry bundles.
func (s *Server) forEachLeaf(ctx context.Context, start, end, size uint64, fn func(idx uint64, data []byte) error) error {
	if end > size {
		return fmt.Errorf("range end %d is past the tree size %d", end, size)
	}
	for idx := start; idx < end; {
		bi := idx / layout.EntryBundleWidth
		raw, err := s.reader.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, size))
		if err != nil {
			return fmt.Errorf("reading entry bundle %d: %w", bi, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("parsing entry bundle %d: %w", bi, err)
		}
		first := bi * layout.EntryBundleWidth
		for ; idx < end && idx < first+uint64(len(b.Entries)); idx++ {
			if err := fn(idx, b.Entries[idx-first]); err != nil {
				return err
			}
		}
		if idx < end && idx < first+layout.EntryBundleWidth {
			return fmt.Errorf("entry bundle %d holds %d entries, want at least %d", bi, len(b.Entries), end-first)
		}
	}
	return nil
}

// readLeaf returns the leaf at idx in a tree of the given size.
func (s *Server) readLeaf(ctx context.Context, idx, size uint64) ([]byte, error) {
	var out []byte
	err := s.forEachLeaf(ctx, idx, idx+1, size, func(_ uint64, d []byte) error {
		out = d
		return nil
	})
	return out, err
}

// reindex brings the dedup and leaf-hash indexes up to the log size by
// reading every leaf past the saved watermark. With rebuild, it first drops
// both indexes and reads the whole log.
func (s *Server) reindex(ctx context.Context, size uint64, rebuild bool) error {
	if rebuild {
		if err := s.store.ResetIndexes(); err != nil {
			return err
		}
	}
	from, err := s.store.Watermark()
	if err != nil {
		return err
	}
	if from > size {
		return fmt.Errorf("the payload store has indexed %d entries but the log holds only %d: the data directory's log and store do not belong together", from, size)
	}
	if from == size {
		return nil
	}
	lvl := slog.LevelInfo
	if !rebuild && size-from < 4096 {
		// On aws every replica follows the log's tail this way each second.
		lvl = slog.LevelDebug
	}
	s.log.Log(ctx, lvl, "rebuilding dedup index from the log", "from", from, "to", size)
	const chunk = 4096
	batch := make([]store.Indexed, 0, chunk)
	flush := func() error {
		if err := s.store.PutIndexes(batch); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	seen := make(map[dedupKey]uint64)
	err = s.forEachLeaf(ctx, from, size, size, func(idx uint64, data []byte) error {
		l, err := leaf.Unmarshal(data)
		if err != nil {
			return fmt.Errorf("leaf %d does not parse as leaf v1: %w", idx, err)
		}
		k := dedupKey{l.Source, l.EventID}
		prev, ok := seen[k]
		if !ok {
			var err error
			prev, ok, err = s.store.LookupEvent(l.Source, l.EventID)
			if err != nil {
				return err
			}
		}
		if ok && prev != idx {
			// Keep the first; a later copy can only come from outside Stele.
			s.log.Warn("the log holds (source, event_id) twice; the dedup index keeps the first", "source", l.Source, "event_id", l.EventID, "first", prev, "again", idx)
			return nil
		}
		seen[k] = idx
		batch = append(batch, store.Indexed{Source: l.Source, EventID: l.EventID, LeafHash: leafHash(data), Index: idx})
		if len(batch) == chunk {
			clear(seen)
			return flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuilding the dedup index: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	return s.store.SetWatermark(size)
}
