package forwarder

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder/record"
)

// fakeRead returns items for [from, from+n), counting the entries it was
// asked for, after a pause so that concurrent callers overlap.
type fakeRead struct {
	entries atomic.Int64
	calls   atomic.Int64
	fail    atomic.Bool
}

func (r *fakeRead) read(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*Item, error) {
	r.calls.Add(1)
	time.Sleep(20 * time.Millisecond)
	if r.fail.Load() {
		return nil, errors.New("read failed")
	}
	end := min(cp.Size, from+uint64(n))
	r.entries.Add(int64(end - from))
	var out []*Item
	for i := from; i < end; i++ {
		out = append(out, &Item{Doc: &record.Document{Origin: cp.Origin, Index: i}})
	}
	return out, nil
}

func checkItems(t *testing.T, items []*Item, origin string, from uint64, n int) {
	t.Helper()
	if len(items) != n {
		t.Fatalf("got %d items from %d, want %d", len(items), from, n)
	}
	for k, it := range items {
		if it.Doc.Origin != origin || it.Doc.Index != from+uint64(k) {
			t.Fatalf("item %d is %s/%d, want %s/%d", k, it.Doc.Origin, it.Doc.Index, origin, from+uint64(k))
		}
	}
}

// TestItemCacheShares: sinks reading the same entries at once read them
// once; a sink behind within the limit reads from the cache; one further
// behind reads on its own; another log's entries are never mixed in; a
// failed read is not cached.
func TestItemCacheShares(t *testing.T) {
	ctx := context.Background()
	var r fakeRead
	c := newItemCache(300, r.read)
	cp := &client.Checkpoint{Origin: "a", Size: 1000}

	// Five sinks in lockstep, each asking for the same batch at once.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			items, err := c.get(ctx, cp, 0, 100)
			if err != nil {
				t.Error(err)
				return
			}
			checkItems(t, items, "a", 0, 100)
		})
	}
	wg.Wait()
	if got := r.entries.Load(); got != 100 {
		t.Fatalf("five sinks in lockstep read %d entries, want 100 (each once)", got)
	}

	// Overlapping: the cached prefix plus a read of the rest only.
	items, err := c.get(ctx, cp, 50, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkItems(t, items, "a", 50, 100)
	if got := r.entries.Load(); got != 150 {
		t.Fatalf("read %d entries in all, want 150", got)
	}

	// Cut at the checkpoint's size.
	items, _ = c.get(ctx, &client.Checkpoint{Origin: "a", Size: 170}, 120, 100)
	checkItems(t, items, "a", 120, 50)

	// Another log with the same indexes: its own entries.
	items, _ = c.get(ctx, &client.Checkpoint{Origin: "b", Size: 1000}, 0, 10)
	checkItems(t, items, "b", 0, 10)
	if got := r.entries.Load(); got != 180 { // 120-150 were cached
		t.Fatalf("read %d entries in all, want 180", got)
	}

	// Beyond the limit the oldest entries are gone and read again.
	c.get(ctx, cp, 200, 300)
	if len(c.items) > 300 {
		t.Fatalf("the cache holds %d items, over its limit of 300", len(c.items))
	}
	before := r.entries.Load()
	items, _ = c.get(ctx, cp, 0, 10)
	checkItems(t, items, "a", 0, 10)
	if r.entries.Load() != before+10 {
		t.Fatal("evicted entries were not read again")
	}

	// A failed read returns its error and caches nothing.
	r.fail.Store(true)
	if _, err := c.get(ctx, cp, 900, 10); err == nil {
		t.Fatal("a failed read returned no error")
	}
	r.fail.Store(false)
	items, err = c.get(ctx, cp, 900, 10)
	if err != nil {
		t.Fatal(err)
	}
	checkItems(t, items, "a", 900, 10)
	if len(c.flights) != 0 {
		t.Fatalf("%d flights left behind", len(c.flights))
	}
}
