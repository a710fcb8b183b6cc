package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/stele-dev/stele/history"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/ledger"
)

type historyOutput struct {
	Subject      string          `json:"subject"`
	Searched     []string        `json:"searched"`
	Origin       string          `json:"origin"`
	Checkpoint   treeHead        `json:"checkpoint"`
	IndexSize    uint64          `json:"index_size"`
	Unindexed    []uint64        `json:"unindexed"`
	Events       []history.Event `json:"events"`
	Completeness string          `json:"completeness"`
}

func cmdHistory(e *env, args []string) error {
	fl := newFlags("history")
	lf := addLedgerFlags(fl)
	subject := fl.String("subject", "", "UPN, object id, appId, service-principal id, Okta login, AWS ARN, IAM user name or access key id")
	indexPath := fl.String("index", "", "keep the subject index in this file and extend it on each run (default: build it in memory from the whole log)")
	rebuild := fl.Bool("rebuild", false, "with --index: build the index again from entry 0")
	asJSON := fl.Bool("json", false, "write JSON")
	if err := parseNoArgs(e, fl, args); err != nil {
		return err
	}
	if strings.TrimSpace(*subject) == "" {
		return usagef("--subject is required")
	}
	ctx, r, cp, done, err := lf.open()
	if err != nil {
		return err
	}
	defer done()
	x := history.New(cp.Origin)
	if *indexPath != "" && !*rebuild {
		b, err := os.ReadFile(*indexPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		default:
			if x, err = history.Unmarshal(b); err != nil {
				return fmt.Errorf("%s: %w (use --rebuild)", *indexPath, err)
			}
		}
	}
	if err := history.Update(ctx, r, cp, x); err != nil {
		return ledgerError(err)
	}
	if *indexPath != "" {
		b, err := x.Marshal()
		if err != nil {
			return err
		}
		if err := durable.WriteAtomic(*indexPath, b, 0o600); err != nil {
			return err
		}
	}
	prover, err := ledger.NewProver(ctx, r.Log, cp)
	if err != nil {
		return logError(err)
	}
	tl, err := history.Lookup(ctx, r, prover, x, *subject)
	if err != nil {
		return ledgerError(err)
	}
	out := historyOutput{Subject: *subject, Searched: tl.Searched, Origin: cp.Origin, Checkpoint: head(cp.Size, cp.Root), IndexSize: tl.IndexSize,
		Unindexed: tl.Unindexed, Events: tl.Events, Completeness: history.Completeness}
	if *asJSON {
		return writeJSON(e, out)
	}
	writeHistoryText(e.stdout, out)
	return nil
}

func writeHistoryText(w io.Writer, out historyOutput) {
	fmt.Fprintf(w, "history of %s (searched: %s) in %s at size %d\n", out.Subject, strings.Join(out.Searched, ", "), out.Origin, out.Checkpoint.Size)
	for _, h := range out.Events {
		fmt.Fprintf(w, "%s  #%d  %-36s %s as %s: %s -> %s", h.EventTime, h.Index, h.Kind, h.Source, strings.Join(h.As, "+"), h.Actor, strings.Join(h.Targets, ", "))
		if h.Outcome != "" && h.Outcome != "SUCCESS" {
			fmt.Fprintf(w, " [%s]", h.Outcome)
		}
		if h.Problem != "" {
			fmt.Fprintf(w, " [%s]", h.Problem)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d events, each with an inclusion proof in the checkpoint (size %d, root %s)\n", len(out.Events), out.Checkpoint.Size, out.Checkpoint.Root)
	if len(out.Unindexed) > 0 {
		fmt.Fprintf(w, "%d entries could not be indexed (erased or unreadable): %v\n", len(out.Unindexed), out.Unindexed)
	}
	fmt.Fprintf(w, "completeness: %s\n", out.Completeness)
}
