package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/server"
)

// applyLifecycle sets the read-only and successor settings (docs/operations.md,
// "Rotating to a new log") on cfg.
func (s *settings) applyLifecycle(cfg *server.Config) error {
	cfg.ReadOnly = s.readOnly
	key, err := successorKey(s.successorKey)
	if err != nil {
		return err
	}
	if key == "" && s.successorURL != "" {
		return usageError{fmt.Errorf("--successor-url needs --successor-key (the successor's verifier key names its origin)")}
	}
	cfg.SuccessorKey, cfg.SuccessorURL = key, s.successorURL
	if cfg.PredecessorKey, err = keyArg("--predecessor-key", s.predecessorKey); err != nil {
		return err
	}
	if cfg.PredecessorKey == "" && s.predecessorURL != "" {
		return usageError{fmt.Errorf("--predecessor-url needs --predecessor-key (the predecessor's verifier key names its origin)")}
	}
	cfg.PredecessorURL = s.predecessorURL
	return nil
}

// successorKey takes a verifier key, or a file that holds one.
func successorKey(s string) (string, error) { return keyArg("--successor-key", s) }

// keyArg takes the verifier key flag gives, or a file that holds one.
func keyArg(flag, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := note.NewVerifier(strings.TrimSpace(s)); err == nil {
		return strings.TrimSpace(s), nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return "", usageError{fmt.Errorf("%s %q is neither a verifier key nor a readable file: %v", flag, s, err)}
	}
	// A log.pub lists the log's keys one a line, Ed25519 first: the freeze
	// statement names the successor by that one.
	k := ""
	if f := strings.Fields(string(b)); len(f) > 0 {
		k = f[0]
	}
	if _, err := note.NewVerifier(k); err != nil {
		return "", usageError{fmt.Errorf("%s: %s does not hold a signed-note verifier key: %v", flag, s, err)}
	}
	return k, nil
}

// freezeLog is `stele-server freeze`: publish the final checkpoint, sign and
// store the freeze statement, print it.
func freezeLog(ctx context.Context, cfg server.Config, timeout time.Duration, logger *slog.Logger) error {
	if cfg.ReadOnly {
		return usageError{fmt.Errorf("freeze writes the final checkpoint and the freeze statement: drop --read-only")}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
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
