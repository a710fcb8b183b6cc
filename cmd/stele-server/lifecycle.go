package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/server"
)

// lifecycleFlags are the flags for serving a log read-only and freezing it
// (docs/operations.md, "Rotating to a new log").
type lifecycleFlags struct {
	readOnly      *bool
	successorKey  *string
	successorURL  *string
	freezeTimeout *time.Duration
}

func addLifecycleFlags(fs *flag.FlagSet) lifecycleFlags {
	return lifecycleFlags{
		readOnly:      fs.Bool("read-only", false, "serve the log (tiles, checkpoint, proofs, receipts, payloads) without ever appending: Append and EraseEvent answer FailedPrecondition; nothing is written. A frozen log is always served so"),
		successorKey:  fs.String("successor-key", "", "the verifier key (or a file holding it) of the log that continues this one; read-only refusals and `freeze` name it"),
		successorURL:  fs.String("successor-url", "", "where the successor log's tlog-tiles API is served (http(s) URL), named with --successor-key"),
		freezeTimeout: fs.Duration("freeze-timeout", 2*time.Minute, "freeze: how long to wait for the final checkpoint to be published and cosigned"),
	}
}

// apply sets the lifecycle settings on cfg.
func (l lifecycleFlags) apply(cfg *server.Config) error {
	cfg.ReadOnly = *l.readOnly
	key, err := successorKey(*l.successorKey)
	if err != nil {
		return err
	}
	if key == "" && *l.successorURL != "" {
		return usageError{fmt.Errorf("--successor-url needs --successor-key (the successor's verifier key names its origin)")}
	}
	cfg.SuccessorKey, cfg.SuccessorURL = key, *l.successorURL
	return nil
}

// successorKey takes a verifier key, or a file that holds one.
func successorKey(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := note.NewVerifier(strings.TrimSpace(s)); err == nil {
		return strings.TrimSpace(s), nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return "", usageError{fmt.Errorf("--successor-key %q is neither a verifier key nor a readable file: %v", s, err)}
	}
	k := strings.TrimSpace(string(b))
	if _, err := note.NewVerifier(k); err != nil {
		return "", usageError{fmt.Errorf("--successor-key: %s does not hold a signed-note verifier key: %v", s, err)}
	}
	return k, nil
}

// freezeLog is `stele-server freeze`: publish the final checkpoint, sign and
// store the freeze statement, print it.
func freezeLog(ctx context.Context, cfg server.Config, l lifecycleFlags, logger *slog.Logger) error {
	if cfg.ReadOnly {
		return usageError{fmt.Errorf("freeze writes the final checkpoint and the freeze statement: drop --read-only")}
	}
	ctx, cancel := context.WithTimeout(ctx, *l.freezeTimeout)
	defer cancel()
	succ := server.Successor{Key: cfg.SuccessorKey, URL: cfg.SuccessorURL}
	cfg.SuccessorKey, cfg.SuccessorURL = "", ""
	f, err := server.Freeze(ctx, cfg, succ)
	if err != nil {
		return err
	}
	logger.Info("frozen", "origin", f.Origin, "size", f.Size, "successor", f.Successor)
	fmt.Printf("%s\n", f)
	os.Stdout.Write(f.Raw)
	return nil
}
