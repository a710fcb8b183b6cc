package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"

	"github.com/stele-dev/stele/client"
)

// published is a checkpoint the log has published.
type published struct {
	raw  []byte
	size uint64
	root []byte
	// unwitnessed says why the checkpoint does not meet the witness
	// policy (empty when it does, or without a policy).
	unwitnessed string
}

// checkpoints follows the published checkpoint and wakes those waiting for
// a tree size to be covered.
type checkpoints struct {
	s      *Server
	policy *client.Policy // nil: every checkpoint counts

	mu      sync.Mutex
	cur     *published
	since   time.Time
	changed chan struct{}
}

func newCheckpoints(s *Server) *checkpoints {
	c := &checkpoints{s: s, policy: s.witnessPolicy(), changed: make(chan struct{}), since: time.Now()}
	_ = c.refresh(context.Background())
	return c
}

// publishedSize is the size of the latest published checkpoint, 0 before
// the first.
func (c *checkpoints) publishedSize() uint64 {
	if cp := c.latest(); cp != nil {
		return cp.size
	}
	return 0
}

func (c *checkpoints) run(ctx context.Context) {
	every := min(c.s.cfg.CheckpointInterval/10, 50*time.Millisecond)
	if c.s.st.Shared() != nil {
		// A log shared by replicas: each look is a GET from the object
		// store, from every replica.
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
			c.s.log.Warn("reading published checkpoint", "err", err)
		}
	}
}

func (c *checkpoints) refresh(ctx context.Context) error {
	raw, err := c.s.reader.ReadCheckpoint(ctx)
	if errors.Is(err, os.ErrNotExist) {
		c.observe(nil) // a new log whose first checkpoint is not out yet
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil && bytes.Equal(cur.raw, raw) {
		c.observe(cur)
		return nil
	}
	cp, _, _, err := log.ParseCheckpoint(raw, c.s.cfg.Origin, c.s.key.Verifier)
	if err != nil {
		return fmt.Errorf("the published checkpoint does not verify with the log key: %w", err)
	}
	p := &published{raw: raw, size: cp.Size, root: cp.Hash}
	if c.policy != nil {
		ccp, err := client.ParseCheckpoint(raw, c.s.key.Verifier)
		if err == nil {
			err = c.policy.Check(ccp)
		}
		if err != nil {
			p.unwitnessed = err.Error()
		}
	}
	c.mu.Lock()
	if c.cur == nil || p.size >= c.cur.size {
		c.cur = p
		c.since = time.Now()
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	c.observe(p)
	return nil
}

// observe updates the checkpoint metrics. p is the latest published
// checkpoint, nil before the first. Publishing is stalled when entries wait
// longer than a round of witnessing for a checkpoint, or when the latest
// checkpoint does not meet the witness policy (a restart with a new policy)
// for that long.
func (c *checkpoints) observe(p *published) {
	c.mu.Lock()
	age := time.Since(c.since)
	c.mu.Unlock()
	c.s.m.cpAge.Set(age.Seconds())
	var size uint64
	if p != nil {
		size = p.size
		c.s.m.cpSize.Set(float64(size))
	}
	patience := c.s.cfg.CheckpointInterval + c.s.cfg.WitnessTimeout + time.Second
	stalled := 0.0
	if n, err := c.s.reader.IntegratedSize(context.Background()); err == nil {
		c.s.m.treeSize.Set(float64(n))
		lag := n - min(n, size)
		c.s.m.lag.Set(float64(lag))
		if lag > 0 && age > patience {
			stalled = 1
		}
	}
	if age > patience && (p == nil && c.policy != nil || p != nil && p.unwitnessed != "") {
		stalled = 1
	}
	c.s.m.stalled.Set(stalled)
}

// latest returns the latest published checkpoint, or nil before the first.
func (c *checkpoints) latest() *published {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// waitFor waits until a published checkpoint covers size entries.
func (c *checkpoints) waitFor(ctx context.Context, size uint64) (*published, error) {
	for {
		c.mu.Lock()
		cur, ch := c.cur, c.changed
		c.mu.Unlock()
		if cur != nil && cur.size >= size {
			return cur, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TesseraLogHandler wraps the handler Tessera's klog output goes to (via
// klog.SetSlogLogger), rewording what would mislead an operator: on a new
// log, Tessera's "Failed to fetch old checkpoint: file does not exist"
// (there is no checkpoint yet) is logged as "new log: no checkpoint
// published yet".
func TesseraLogHandler(h slog.Handler) slog.Handler { return tesseraHandler{h} }

type tesseraHandler struct{ slog.Handler }

func (t tesseraHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Failed to fetch old checkpoint") && strings.Contains(r.Message, "does not exist") {
		r = slog.NewRecord(r.Time, r.Level, "new log: no checkpoint published yet", r.PC)
	}
	return t.Handler.Handle(ctx, r)
}

func (t tesseraHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return tesseraHandler{t.Handler.WithAttrs(as)}
}

func (t tesseraHandler) WithGroup(name string) slog.Handler {
	return tesseraHandler{t.Handler.WithGroup(name)}
}
