package forwarder

import (
	"context"
	"sync"

	"github.com/stele-dev/stele/client"
)

// itemCache shares the entries one sink read with the other sinks: each
// entry is read, verified and rendered once, however many sinks deliver
// it. A range being read is read once (the other sinks wait for it), and
// the items read are kept, at most limit of them (the oldest go first),
// for sinks a little behind. A sink further behind than that reads on its
// own, as it did before there was a cache: a slow sink never holds back
// the others, and memory stays bounded.
type itemCache struct {
	read  func(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*Item, error)
	limit int

	mu      sync.Mutex
	items   map[cacheKey]*Item
	order   []cacheKey // insertion order, for eviction
	flights []*flight
}

// cacheKey names an entry: its log (a chain of logs restarts the
// indexes) and index.
type cacheKey struct {
	origin string
	index  uint64
}

// flight is a range [from, end) of a log being read.
type flight struct {
	origin    string
	from, end uint64
	done      chan struct{}
}

func newItemCache(limit int, read func(context.Context, *client.Checkpoint, uint64, int) ([]*Item, error)) *itemCache {
	return &itemCache{read: read, limit: limit, items: map[cacheKey]*Item{}}
}

// get returns the items of entries [from, from+n) of the tree cp (at
// least one, fewer when cp ends first), from the cache where it holds
// them, else read (by this call, or by another sink's call reading them
// now).
func (c *itemCache) get(ctx context.Context, cp *client.Checkpoint, from uint64, n int) ([]*Item, error) {
	end := min(cp.Size, from+uint64(n))
	for {
		c.mu.Lock()
		var out []*Item
		i := from
		for ; i < end; i++ {
			it := c.items[cacheKey{cp.Origin, i}]
			if it == nil {
				break
			}
			out = append(out, it)
		}
		if i == end {
			c.mu.Unlock()
			return out, nil
		}
		// Wait for a flight reading entry i; else read from i up to the
		// next flight.
		var wait *flight
		stop := end
		for _, fl := range c.flights {
			if fl.origin != cp.Origin {
				continue
			}
			if fl.from <= i && i < fl.end {
				wait = fl
				break
			}
			if fl.from > i && fl.from < stop {
				stop = fl.from
			}
		}
		if wait != nil {
			c.mu.Unlock()
			select {
			case <-wait.done:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		fl := &flight{origin: cp.Origin, from: i, end: stop, done: make(chan struct{})}
		c.flights = append(c.flights, fl)
		c.mu.Unlock()

		got, err := c.read(ctx, cp, i, int(stop-i))

		c.mu.Lock()
		for k, x := range c.flights {
			if x == fl {
				c.flights = append(c.flights[:k], c.flights[k+1:]...)
				break
			}
		}
		if err == nil {
			for _, it := range got {
				c.put(cacheKey{cp.Origin, it.Doc.Index}, it)
			}
		}
		close(fl.done)
		c.mu.Unlock()
		if err != nil {
			if len(out) > 0 {
				return out, nil // what was cached; the rest is read on the next call
			}
			return nil, err
		}
		return append(out, got...), nil
	}
}

// put adds an item, evicting the oldest beyond the limit. c.mu is held.
func (c *itemCache) put(k cacheKey, it *Item) {
	if _, ok := c.items[k]; !ok {
		c.order = append(c.order, k)
	}
	c.items[k] = it
	for len(c.order) > c.limit {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
}
