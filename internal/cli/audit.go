package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
)

func cmdAudit(e *env, args []string) error {
	fs := newFlags("audit")
	logURL := fs.String("log", "", "root URL of the log's tlog-tiles HTTP API, e.g. http://127.0.0.1:8080/")
	keyPath := fs.String("log-key", "", "the log's verifier key: its file (log.pub) or the key itself (name+hash+key)")
	allKeys := requireAllKeysFlag(fs)
	statePath := fs.String("state", "", "resume from, and save to, this state file (and FILE.dedup)")
	reportPath := fs.String("report", "", "write the JSON report to this file instead of standard output")
	workers := fs.Int("workers", 4, "parallel fetches")
	policyPath := fs.String("policy", "", "a C2SP tlog-policy: the checkpoint must carry its quorum of witness cosignatures")
	ahead := fs.Duration("max-event-ahead", audit.DefaultMaxEventAhead, "flag an event_time later than its admitted_time by more than this")
	back := fs.Duration("max-admitted-backstep", audit.DefaultMaxAdmittedBackstep, "flag an admitted_time earlier than the previous entry's by more than this")
	server := fs.String("server", "", "also check every payload against its leaf's commitment, fetching it from this Stele server (host:port; needs the reader role)")
	conn := addConnFlags(fs)
	follow := fs.Bool("follow-chain", false, "when the log is frozen, audit its successor too (verified with the key its freeze statement names), and so on to the open log; the report is then {\"logs\": [one report per log]}")
	cf := addChainFlags(fs)
	var successorServers stringList
	fs.Var(&successorServers, "successor-server", "ORIGIN=HOST:PORT: with --server and --follow-chain, check successor log ORIGIN's payloads on this server (repeatable)")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if *logURL == "" {
		return usagef("--log URL is required")
	}
	if *keyPath == "" {
		return usagef("--log-key FILE is required")
	}
	if *follow && *statePath != "" {
		return usagef("--state resumes one log: audit each log of the chain with its own --state, or drop --follow-chain")
	}
	if *workers < 1 {
		return usagef("--workers must be at least 1")
	}
	if *ahead <= 0 || *back <= 0 {
		return usagef("--max-event-ahead and --max-admitted-backstep must be positive")
	}
	v, err := readLogKey(*keyPath, *allKeys)
	if err != nil {
		return err
	}
	var st *audit.State
	if *statePath != "" {
		if st, err = audit.LoadState(*statePath); err != nil {
			return err
		}
	}
	cfg := audit.Config{LogURL: client.LogURL(*logURL), Verifier: v, Workers: *workers, State: st,
		MaxEventAhead: *ahead, MaxAdmittedBackstep: *back}
	if *policyPath != "" {
		text, err := os.ReadFile(*policyPath)
		if err != nil {
			return err
		}
		if cfg.Policy, err = client.ParsePolicy(text); err != nil {
			return err
		}
	}
	if *server != "" {
		c, err := conn.dial(*server)
		if err != nil {
			return err
		}
		defer c.Close()
		cfg.Payloads = payloadFetcher(c)
	}
	progress := isTerminal(e.stderr)
	if progress {
		cfg.Progress = func(read, total uint64, elapsed time.Duration) {
			rate := float64(read) / max(elapsed.Seconds(), 1e-9)
			fmt.Fprintf(e.stderr, "\raudit: %d/%d entries (%.0f%%), %.0f entries/s   ", read, total, 100*float64(read)/float64(max(total, 1)), rate)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	chain, err := cf.chain(cfg.Policy)
	if err != nil {
		return err
	}
	servers, err := originMap("--successor-server", successorServers)
	if err != nil {
		return err
	}
	first, err := client.NewTileLog(cfg.LogURL, v, nil)
	if err != nil {
		return usagef("%v", err)
	}
	link := &client.ChainLink{Log: first, URL: cfg.LogURL}
	var reps []*audit.Report
	var rep *audit.Report
	var newState *audit.State
	var runErr error
	earlierFailed := false // a finding in a log before the last
	for {
		// Whether the log is frozen is read before its audit, so that a
		// frozen log is audited to its final checkpoint.
		next, nextErr := chain.Next(ctx, link)
		if nextErr != nil && link.Freeze == nil {
			return nextErr
		}
		rep, newState, runErr = audit.Run(ctx, cfg)
		if progress {
			fmt.Fprintln(e.stderr)
		}
		reps = append(reps, rep)
		if runErr == nil && link.Freeze != nil && (rep.Checkpoint == nil || rep.Checkpoint.Size != link.Freeze.Size) {
			runErr = fmt.Errorf("%w: %s is frozen at size %d but was audited at another size", audit.ErrVerification, link.Origin(), link.Freeze.Size)
		}
		if runErr != nil || !*follow || link.Freeze == nil || link.Freeze.Successor == "" {
			break
		}
		if nextErr != nil {
			return nextErr
		}
		if summarizeAudit(e, rep, nil, link) != nil {
			earlierFailed = true
		}
		cfg.LogURL, cfg.Verifier, cfg.State, cfg.Payloads = next.URL, next.Log.Verifier(), nil, nil
		if addr := servers[next.Origin()]; addr != "" {
			c, err := conn.dial(addr)
			if err != nil {
				return err
			}
			defer c.Close()
			cfg.Payloads = payloadFetcher(c)
		}
		link = next
	}

	var out []byte
	if *follow {
		out, err = json.MarshalIndent(map[string]any{"logs": reps}, "", "  ")
	} else {
		out, err = json.MarshalIndent(rep, "", "  ")
	}
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if *reportPath != "" {
		err = durable.WriteAtomic(*reportPath, out, 0o644)
	} else {
		_, err = e.stdout.Write(out)
	}
	if err != nil {
		return err
	}
	if newState != nil && *statePath != "" {
		if err := newState.Save(*statePath); err != nil {
			return fmt.Errorf("saving state: %v", err)
		}
	}
	if err := summarizeAudit(e, rep, runErr, link); err != nil || !earlierFailed {
		return err
	}
	return errFailed
}

// summarizeAudit prints the one-line result of a log's audit, saying when
// the log is frozen and naming its successor.
func summarizeAudit(e *env, rep *audit.Report, runErr error, link *client.ChainLink) error {
	origin, size := "", uint64(0)
	if rep.Checkpoint != nil {
		origin, size = rep.Checkpoint.Origin, rep.Checkpoint.Size
	}
	frozen := ""
	if f := link.Freeze; f != nil {
		frozen = fmt.Sprintf("; %s", f)
	}
	rate := fmt.Sprintf("read %d entries in %.2fs (%.0f entries/s)", rep.EntriesRead, rep.Seconds, rep.EntriesPerSec)
	switch {
	case runErr != nil && !errors.Is(runErr, audit.ErrVerification):
		return runErr
	case runErr != nil && rep.FailureCount == 0:
		fmt.Fprintf(e.stderr, "audit FAILED: %s; %s\n", oneLine(runErr.Error()), rate)
		return errFailed
	case runErr != nil:
		fmt.Fprintf(e.stderr, "audit FAILED: %d failure(s), first: %s; %s\n", rep.FailureCount, oneLine(rep.Failures[0].Message), rate)
		return errFailed
	case rep.FindingCount > 0:
		fmt.Fprintf(e.stderr, "audit: %s verified at size %d, %d finding(s), first: %s; %s%s\n", origin, size, rep.FindingCount, oneLine(rep.Findings[0].Message), rate, frozen)
		return errFailed
	default:
		fmt.Fprintf(e.stderr, "audit OK: %s verified at size %d, no findings; %s%s\n", origin, size, rate, frozen)
		return nil
	}
}

// payloadFetcher fetches payloads for the audit's payload check over gRPC.
func payloadFetcher(c *client.Client) audit.PayloadFetcher {
	return func(ctx context.Context, index uint64) (*audit.StoredPayload, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ev, err := c.Event(ctx, index)
		if err != nil {
			return nil, err
		}
		if ev.Index != index {
			return nil, fmt.Errorf("asked for entry %d, the server answered with entry %d", index, ev.Index)
		}
		if t := ev.Tombstone; t != nil {
			return &audit.StoredPayload{Erased: true, ErasureIndex: t.ErasureIndex}, nil
		}
		return &audit.StoredPayload{Salt: ev.Salt, Payload: ev.Payload}, nil
	}
}

// isTerminal reports whether w is a character device (a terminal, in
// practice), without a dependency on x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
