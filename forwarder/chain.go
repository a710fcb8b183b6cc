package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
)

// ChainOptions wires a ChainForwarder: Options for the first log of the
// chain, and how to reach the logs that continue it.
type ChainOptions struct {
	Options
	// Chain reads and verifies each log's freeze statement (its Policy,
	// URLs and HTTPClient). Nil: a client.Chain with Options.Policy.
	Chain *client.Chain
	// Dial opens the payload reader of a successor log, named by its
	// origin (the successor's gRPC server comes from the configuration:
	// a freeze statement names only its tiles URL). close releases it.
	Dial func(origin string) (events EventReader, close func() error, err error)
}

// ChainForwarder delivers a chain of logs (temporal sharding,
// docs/operations.md "Rotating to a new log") to the same sinks: a
// Forwarder on the current log and, once that log is frozen and every sink
// has confirmed every entry up to its final checkpoint, a Forwarder on the
// successor its signed freeze statement names, verified with the key the
// statement names. Each log has its own trusted checkpoint, cursors and
// dead-letter files (the first log in the state directory, a successor in
// <state dir>/logs/<escaped origin>); the log followed now is recorded in
// <state dir>/chain.json, written only once every cursor of the frozen log
// is at its final size, so a crash at the boundary loses and repeats
// nothing. Records keep their own log's origin.
type ChainForwarder struct {
	o     ChainOptions
	chain *client.Chain
	log   *slog.Logger
	sinks []NamedSink // opened once, shared by every log's Forwarder

	mu       sync.Mutex // guards link and closeEv
	link     *client.ChainLink
	closeEv  func() error
	cur      atomic.Pointer[Forwarder]
	chainErr atomic.Pointer[string]
}

// chainState is <state dir>/chain.json: the log followed now, when it is
// not the first.
type chainState struct {
	Origin string `json:"origin"`
	// Key is the log's verifier key, as the signed freeze statement of
	// its predecessor named it.
	Key string `json:"key"`
	URL string `json:"url"`
	// StateDir is the log's state directory, relative to the forwarder's.
	StateDir string `json:"state_dir"`
}

const chainFile = "chain.json"

func readChainState(stateDir string) (*chainState, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, chainFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chain state: %w", err)
	}
	var s chainState
	if err := DecodeStrict(b, &s); err != nil || s.Origin == "" || s.Key == "" || s.URL == "" || s.StateDir == "" {
		return nil, fmt.Errorf("chain state %s does not parse (%v): it names the log followed now; restore it, or remove it to start again from the first log", filepath.Join(stateDir, chainFile), err)
	}
	return &s, nil
}

// logStateDir is the state directory of a successor log.
func logStateDir(origin string) string {
	return filepath.Join("logs", url.PathEscape(origin))
}

// sharedSink keeps a Forwarder's Run from closing a sink the next log's
// Forwarder goes on with.
type sharedSink struct{ Sink }

func (sharedSink) Close() error { return nil }

// NewChain opens the sinks and a Forwarder on the log the state directory
// says is followed now (the first log, o.Log, when it names none).
func NewChain(o ChainOptions) (*ChainForwarder, error) {
	if o.Config == nil || o.Log == nil || o.Events == nil {
		return nil, errors.New("forwarder: a config, a log and a payload reader are required")
	}
	c := &ChainForwarder{o: o, chain: o.Chain, log: o.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.chain == nil {
		c.chain = &client.Chain{Policy: o.Policy}
	}
	st, err := readChainState(o.Config.StateDir)
	if err != nil {
		return nil, err
	}
	sinks := o.Sinks
	if sinks == nil {
		if sinks, err = openSinks(o.Config); err != nil {
			return nil, err
		}
	}
	c.sinks = sinks
	link, events, closeEv, dir := &client.ChainLink{Log: o.Log, URL: o.Config.Log.URL}, o.Events, func() error { return nil }, o.Config.StateDir
	if st != nil {
		v, err := note.NewVerifier(st.Key)
		if err == nil && v.Name() != st.Origin {
			err = fmt.Errorf("the key is named %q", v.Name())
		}
		if err != nil {
			c.closeSinks()
			return nil, fmt.Errorf("chain state: log %s: %v", st.Origin, err)
		}
		u := st.URL
		if cu := c.chain.URLs[st.Origin]; cu != "" {
			u = cu
		}
		lg, err := client.NewTileLog(u, v, c.chain.HTTPClient)
		if err != nil {
			c.closeSinks()
			return nil, fmt.Errorf("log %s: %w", st.Origin, err)
		}
		if events, closeEv, err = c.dial(st.Origin); err != nil {
			c.closeSinks()
			return nil, err
		}
		link, dir = &client.ChainLink{Log: lg, URL: u}, filepath.Join(o.Config.StateDir, st.StateDir)
	}
	f, err := c.newForwarder(link, events, dir)
	if err != nil {
		closeEv()
		c.closeSinks()
		return nil, err
	}
	c.link, c.closeEv = link, closeEv
	c.cur.Store(f)
	return c, nil
}

func (c *ChainForwarder) dial(origin string) (EventReader, func() error, error) {
	if c.o.Dial == nil {
		return nil, nil, fmt.Errorf("log %s: no way to read its payloads: configure its server (successors.%q.address)", origin, origin)
	}
	ev, cl, err := c.o.Dial(origin)
	if err != nil {
		return nil, nil, fmt.Errorf("log %s: %w", origin, err)
	}
	return ev, cl, nil
}

// newForwarder makes the Forwarder of one log of the chain, with its own
// state directory and metrics registry, on the shared sinks.
func (c *ChainForwarder) newForwarder(link *client.ChainLink, events EventReader, dir string) (*Forwarder, error) {
	cfg := *c.o.Config
	cfg.StateDir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	shared := make([]NamedSink, len(c.sinks))
	for i, s := range c.sinks {
		shared[i] = NamedSink{Name: s.Name, Type: s.Type, Sink: sharedSink{s.Sink}}
	}
	o := c.o.Options
	o.Config, o.Log, o.Events, o.Sinks, o.Logger = &cfg, link.Log, events, shared, c.log.With("log", link.Origin())
	if link.Log != c.o.Log || o.Registry == nil {
		o.Registry = nil // every log's Forwarder registers its own metrics
	}
	return New(o)
}

func (c *ChainForwarder) closeSinks() {
	for _, s := range c.sinks {
		s.Sink.Close()
	}
}

// Current is the Forwarder of the log followed now.
func (c *ChainForwarder) Current() *Forwarder { return c.cur.Load() }

// Status is the current log's Forwarder's status.
func (c *ChainForwarder) Status() Status { return c.cur.Load().Status() }

// Handler serves the current log's /healthz, /status and /metrics; /healthz
// also answers 503 while the forwarder cannot move on to a frozen log's
// successor.
func (c *ChainForwarder) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := c.chainErr.Load(); e != nil && r.URL.Path == "/healthz" {
			http.Error(w, "following the chain of logs: "+*e, http.StatusServiceUnavailable)
			return
		}
		c.cur.Load().Handler().ServeHTTP(w, r)
	})
}

// Run delivers the current log and, each time it is frozen and delivered
// to its end, its successor, until ctx ends; then it closes the sinks.
func (c *ChainForwarder) Run(ctx context.Context) error {
	defer c.closeSinks()
	defer func() {
		c.mu.Lock()
		c.closeEv()
		c.mu.Unlock()
	}()
	for {
		f := c.cur.Load()
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.Run(fctx)
		}()
		c.mu.Lock()
		link := c.link
		c.mu.Unlock()
		next, nf, closeEv, st := c.watch(ctx, f, link)
		cancel()
		<-done
		if next == nil {
			return ctx.Err()
		}
		// Every sink confirmed the frozen log to its end: record the move
		// durably, then deliver the successor.
		for attempt := 1; ; attempt++ {
			b, _ := json.Marshal(st)
			err := durable.WriteAtomic(filepath.Join(c.o.Config.StateDir, chainFile), append(b, '\n'), 0o600)
			if err == nil {
				break
			}
			c.fail(fmt.Errorf("recording the move to %s: %w", next.Origin(), err))
			select {
			case <-ctx.Done():
				closeEv()
				return ctx.Err()
			case <-time.After(time.Duration(c.o.Config.PollInterval)):
			}
		}
		c.mu.Lock()
		c.closeEv()
		c.link, c.closeEv = next, closeEv
		c.mu.Unlock()
		c.cur.Store(nf)
		c.chainErr.Store(nil)
		c.log.Info("log frozen and delivered to its end: forwarding its successor", "frozen", link.Freeze.String(), "successor", next.Origin(), "url", next.URL)
	}
}

func (c *ChainForwarder) fail(err error) {
	s := err.Error()
	c.chainErr.Store(&s)
	c.log.Error("following the chain of logs", "err", err)
}

// watch reads the current log's freeze statement every poll interval until
// the log is frozen with a successor, the Forwarder has verified the final
// checkpoint and every sink confirmed every entry of it; then it opens the
// successor's Forwarder. It returns a nil link when ctx ends.
func (c *ChainForwarder) watch(ctx context.Context, f *Forwarder, link *client.ChainLink) (*client.ChainLink, *Forwarder, func() error, *chainState) {
	said := false
	for {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second+time.Duration(c.o.Config.PollInterval))
		next, err := c.chain.Next(pctx, link)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil, nil, nil, nil
		case err != nil && errors.Is(err, client.ErrVerification):
			c.fail(fmt.Errorf("log %s: %w", link.Origin(), err))
		case err != nil:
			c.log.Warn("reading the log's freeze statement", "log", link.Origin(), "err", err)
		case link.Freeze == nil:
		case next == nil:
			if !said {
				c.log.Info("the log is frozen and names no successor: nothing follows it", "frozen", link.Freeze.String())
				said = true
			}
		case deliveredTo(f, link.Freeze):
			nf, closeEv, st, err := c.open(next, link.Freeze.SuccessorKey)
			if err == nil {
				return next, nf, closeEv, st
			}
			c.fail(fmt.Errorf("the successor of %s: %w", link.Origin(), err))
		}
		select {
		case <-ctx.Done():
			return nil, nil, nil, nil
		case <-time.After(time.Duration(c.o.Config.PollInterval)):
		}
	}
}

// deliveredTo says f has verified the frozen log's final checkpoint and
// every sink confirmed every entry in it.
func deliveredTo(f *Forwarder, fr *client.Freeze) bool {
	t := f.follow.Trusted()
	if t == nil || t.Size != fr.Size || t.Root != fr.Root {
		return false
	}
	for _, s := range f.Status().Sinks {
		if s.Next < fr.Size {
			return false
		}
	}
	return true
}

// open makes the Forwarder of a successor log.
func (c *ChainForwarder) open(next *client.ChainLink, key string) (*Forwarder, func() error, *chainState, error) {
	events, closeEv, err := c.dial(next.Origin())
	if err != nil {
		return nil, nil, nil, err
	}
	st := &chainState{Origin: next.Origin(), Key: key, URL: next.URL, StateDir: logStateDir(next.Origin())}
	f, err := c.newForwarder(next, events, filepath.Join(c.o.Config.StateDir, st.StateDir))
	if err != nil {
		closeEv()
		return nil, nil, nil, err
	}
	return f, closeEv, st, nil
}
