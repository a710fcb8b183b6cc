package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/drift"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/ledger"
	"github.com/stele-dev/stele/monitor"
	"github.com/stele-dev/stele/payload"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdMonitor(e *env, args []string) error {
	fs := newFlags("monitor")
	tf := addTileFlags(fs)
	rulesPath := fs.String("rules", "", "alert rules file (JSON; default: the built-in identity-threat rules)")
	policyPath := fs.String("policy", "", "witness policy (C2SP tlog-policy) every checkpoint must meet")
	stateDir := fs.String("state", "", "trusted-state directory: resume after the last verified checkpoint")
	var witnesses, webhooks stringList
	fs.Var(&witnesses, "witness", "witness base URL to compare checkpoints with (repeatable)")
	fs.Var(&webhooks, "webhook", "POST each alert as JSON to this URL (repeatable)")
	once := fs.Bool("once", false, "process what the log holds now, then exit")
	interval := fs.Duration("interval", 10*time.Second, "how often to poll the log's checkpoint")
	printRules := fs.Bool("print-default-rules", false, "print the built-in rules and exit")
	server := fs.String("server", "", "read payloads from this Stele server (host:port; reader role) so rules can match event fields; without it such rules fire on kind alone, marked unchecked")
	conn := addConnFlags(fs)
	snapDir := fs.String("drift-snapshot", "", "after each step, compare the ledger's identity state with this Graph snapshot directory (re-read every step; needs --server); see docs/state.md")
	baselinePath := fs.String("baseline", "", "after each step, alert on every deviation from this baseline.json (needs --server)")
	propagation := fs.Duration("propagation", drift.DefaultPropagation, "with --drift-snapshot: a logged change this recent may not show in the tenant yet")
	cf := addChainFlags(fs)
	var successorServers stringList
	fs.Var(&successorServers, "successor-server", "ORIGIN=HOST:PORT: with --server, read the payloads of successor log ORIGIN from this server once the monitor follows the chain to it (repeatable)")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if (*snapDir != "" || *baselinePath != "") && *server == "" {
		return usagef("--drift-snapshot and --baseline need --server (payloads, reader role)")
	}
	if *printRules {
		_, err := e.stdout.Write(monitor.DefaultRulesJSON())
		return err
	}
	if *interval <= 0 {
		return usagef("--interval must be positive")
	}
	rules := monitor.DefaultRules()
	if *rulesPath != "" {
		b, err := os.ReadFile(*rulesPath)
		if err != nil {
			return err
		}
		if rules, err = monitor.ParseRules(b); err != nil {
			return usagef("%s: %v", *rulesPath, err)
		}
	}
	var policy *client.Policy
	if *policyPath != "" {
		b, err := os.ReadFile(*policyPath)
		if err != nil {
			return err
		}
		if policy, err = client.ParsePolicy(b); err != nil {
			return usagef("%s: %v", *policyPath, err)
		}
	}
	lg, err := tf.open()
	if err != nil {
		return err
	}
	chain, err := cf.chain(policy)
	if err != nil {
		return err
	}
	servers, err := originMap("--successor-server", successorServers)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	out := monitor.JSONLines(e.stdout)
	var hooks []func(monitor.Alert) error
	for _, u := range webhooks {
		hooks = append(hooks, monitor.Webhook(nil, u))
	}
	warn := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(e.stderr, "stele monitor: warning: %s\n", oneLine(s))
	}
	alert := func(a monitor.Alert) error {
		mu.Lock()
		err := out(a)
		mu.Unlock()
		for _, h := range hooks {
			if herr := h(a); herr != nil {
				warn(herr.Error())
			}
		}
		return err
	}
	cfg := monitor.Config{Log: lg, Rules: rules, Policy: policy, Witnesses: witnesses, Alert: alert, Warn: warn}
	if *server != "" {
		c, err := conn.dial(*server)
		if err != nil {
			return err
		}
		defer c.Close()
		cfg.Events = eventViews(c, *tf.timeout)
		if *snapDir != "" || *baselinePath != "" {
			r := &ledger.Reader{Log: lg, Payloads: payloadsOf(c, *tf.timeout)}
			df, err := newDriftFollower(r, *snapDir, *baselinePath, *propagation)
			if err != nil {
				return err
			}
			cfg.Checks = df.check
		}
	}
	// Each log of the chain gets its own monitor: its own trusted state
	// (one file per origin in --state) and payload server.
	first := true
	newMonitor := func(link *client.ChainLink) (*monitor.Monitor, error) {
		c := cfg
		c.Log = link.Log
		if !first {
			c.Events, c.Checks = nil, nil
			if addr := servers[link.Origin()]; addr != "" {
				cl, err := conn.dial(addr)
				if err != nil {
					return nil, err
				}
				c.Events = eventViews(cl, *tf.timeout)
			} else if *server != "" {
				warn(fmt.Sprintf("following successor log %s without its payloads (rules match on kind alone, marked unchecked): give --successor-server %s=HOST:PORT", link.Origin(), link.Origin()))
			}
			if *snapDir != "" || *baselinePath != "" {
				warn("drift and baseline checks stay with the first log of the chain")
			}
		}
		first = false
		if *stateDir != "" {
			st, err := client.NewStateStore(*stateDir, link.Log.Verifier(), link.Log.ConsistencyProof)
			if err != nil {
				return nil, err
			}
			c.State = st
		}
		return monitor.New(c)
	}
	f, err := monitor.NewFollower(chain, lg, newMonitor)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *once {
		sctx, cancel := context.WithTimeout(ctx, *tf.timeout)
		defer cancel()
		if err := f.Step(sctx); err != nil {
			if errors.Is(err, client.ErrVerification) {
				fmt.Fprintf(e.stderr, "stele monitor: %s\n", oneLine(err.Error()))
				return errFailed
			}
			return logError(err)
		}
		cp := f.Monitor().Trusted()
		fmt.Fprintf(e.stderr, "monitor: %s verified at size %d%s\n", cp.Origin, cp.Size, frozenNote(f.Current()))
		return nil
	}
	// Like m.Run, with a heartbeat on stderr for every newly verified
	// checkpoint, so a healthy monitor is seen to be working.
	var last *client.Checkpoint
	for {
		if err := f.Step(ctx); err != nil && ctx.Err() == nil {
			warn(err.Error())
		} else if cp := f.Monitor().Trusted(); cp != nil && (last == nil || cp.Origin != last.Origin || cp.Size != last.Size || cp.Root != last.Root) {
			last = cp
			mu.Lock()
			fmt.Fprintf(e.stderr, "monitor: %s verified at size %d%s\n", cp.Origin, cp.Size, frozenNote(f.Current()))
			mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// eventViews reads an entry's payload from the server, checks it against
// the leaf the monitor verified, and renders the event as the rules see it:
// normalised afresh from the raw record by this build's normaliser (the
// raw record is what the log commits to; the stored view is not trusted).
func eventViews(c *client.Client, timeout time.Duration) func(context.Context, uint64, *leaf.Leaf) (map[string]any, error) {
	return func(ctx context.Context, index uint64, l *leaf.Leaf) (map[string]any, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ev, err := c.Event(ctx, index)
		if err != nil {
			return nil, rpcError(err)
		}
		if ev.Tombstone != nil {
			return nil, nil
		}
		if err := l.VerifyPayload(ev.Salt, ev.Payload); err != nil {
			return nil, fmt.Errorf("%w: entry %d: the server's payload is not the one the log commits to: %v", client.ErrVerification, index, err)
		}
		p, err := payload.Unmarshal(ev.Payload)
		if err != nil {
			return nil, err
		}
		ie, err := identity.Normalize(p.Format, p.Record)
		if err != nil {
			return nil, err
		}
		return monitor.View(ie)
	}
}
