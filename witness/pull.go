package witness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	tclient "github.com/transparency-dev/tessera/client"
)

// defaultPullInterval is how often a pulled log's checkpoint is fetched
// when its configuration gives no interval.
const defaultPullInterval = time.Minute

// RunPull fetches, every PullInterval, the checkpoint of each log
// configured with a PullURL, builds the consistency proof from the log's
// tiles and submits both like a pushed add-checkpoint. It follows
// configuration changes (AddLog, RemoveLog) and returns when ctx is done.
func (w *Witness) RunPull(ctx context.Context) {
	type puller struct {
		cfg    LogConfig
		cancel context.CancelFunc
		done   chan struct{}
	}
	running := map[string]*puller{}
	defer func() {
		for _, p := range running {
			p.cancel()
			<-p.done
		}
	}()
	for {
		w.mu.RLock()
		eff := w.effective()
		w.mu.RUnlock()
		for o, p := range running {
			c, ok := eff[o]
			if !ok || c.PullURL != p.cfg.PullURL || c.PullInterval != p.cfg.PullInterval {
				p.cancel()
				<-p.done
				delete(running, o)
			}
		}
		for o, c := range eff {
			if c.PullURL == "" || running[o] != nil {
				continue
			}
			pctx, cancel := context.WithCancel(ctx)
			p := &puller{cfg: c, cancel: cancel, done: make(chan struct{})}
			running[o] = p
			go func() {
				defer close(p.done)
				w.pullLoop(pctx, c)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		}
	}
}

func (w *Witness) pullLoop(ctx context.Context, c LogConfig) {
	every := time.Duration(c.PullInterval)
	if every == 0 {
		every = defaultPullInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := w.pullOnce(ctx, c.Origin); err != nil && ctx.Err() == nil {
			var e *Error
			if errors.As(err, &e) {
				w.m.pulls.WithLabelValues(c.Origin, "refused").Inc()
				w.log.Warn("pulled checkpoint refused", "origin", c.Origin, "url", c.PullURL, "status", e.Status, "reason", e.Reason, "err", e.Msg)
			} else {
				w.m.pulls.WithLabelValues(c.Origin, "fetch_error").Inc()
				w.log.Warn("pulling checkpoint failed", "origin", c.Origin, "url", c.PullURL, "err", err)
			}
		} else if err == nil {
			w.m.pulls.WithLabelValues(c.Origin, "ok").Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pullOnce fetches origin's checkpoint from its PullURL, builds the
// consistency proof from the latest cosigned size using the log's tiles
// and submits them. It returns the error submitVia returns (an *Error for a
// refusal), or a fetch error.
func (w *Witness) pullOnce(ctx context.Context, origin string) error {
	w.mu.RLock()
	c, ok := w.effective()[origin]
	w.mu.RUnlock()
	if !ok || c.PullURL == "" {
		return fmt.Errorf("log %q has no pull URL", origin)
	}
	u, err := url.Parse(c.PullURL)
	if err != nil {
		return err
	}
	f, err := tclient.NewHTTPFetcher(u, w.client)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("fetching checkpoint from %s: %w", c.PullURL, err)
	}
	cp, err := parseSignedCheckpoint(raw)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Reason: reasonMalformed, Msg: fmt.Sprintf("checkpoint from %s: %v", c.PullURL, err)}
	}
	if cp.Origin != origin {
		return &Error{Status: http.StatusBadRequest, Reason: reasonMalformed, Msg: fmt.Sprintf("checkpoint from %s has origin %q, want %q", c.PullURL, cp.Origin, origin)}
	}
	st, _, err := w.store.state(origin)
	if err != nil {
		return err
	}
	req := &request{Old: st.Size, Checkpoint: raw}
	if st.Size > 0 && st.Size < cp.Size {
		pb, err := tclient.NewProofBuilder(ctx, cp.Size, f.ReadTile)
		if err != nil {
			return err
		}
		p, err := pb.ConsistencyProof(ctx, st.Size, cp.Size)
		if err != nil {
			return fmt.Errorf("building consistency proof %d→%d from %s: %w", st.Size, cp.Size, c.PullURL, err)
		}
		for _, h := range p {
			if len(h) != 32 {
				return fmt.Errorf("tiles from %s hold a %d-byte hash", c.PullURL, len(h))
			}
			req.Proof = append(req.Proof, [32]byte(h))
		}
	} else if st.Size > cp.Size {
		// The log (or a cache in front of it) serves an older checkpoint:
		// nothing to cosign, and no rollback.
		return nil
	}
	_, err = w.submitVia(ctx, req, "pull "+c.PullURL)
	return err
}
