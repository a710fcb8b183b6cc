package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/stele-dev/stele/history"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/ledger"
)

// historyCompleteness is what every answer says about itself.
const historyCompleteness = "each event listed is proven included in the signed checkpoint and matches its leaf's commitment; " +
	"that no event naming the subject is missing is only as sure as the index: complete for entries [0, size) when this index was built from the verified log by you"

type historyEvent struct {
	Index     uint64        `json:"index"`
	Source    string        `json:"source"`
	Kind      string        `json:"kind"`
	EventID   string        `json:"event_id"`
	EventTime string        `json:"event_time"`
	As        []string      `json:"as"`
	Actor     string        `json:"actor,omitempty"`
	Targets   []string      `json:"targets,omitempty"`
	Outcome   string        `json:"outcome,omitempty"`
	Problem   string        `json:"problem,omitempty"`
	Proof     *ledger.Proof `json:"proof"`
}

type historyOutput struct {
	Subject      string         `json:"subject"`
	Searched     []string       `json:"searched"`
	Origin       string         `json:"origin"`
	Checkpoint   treeHead       `json:"checkpoint"`
	IndexSize    uint64         `json:"index_size"`
	Unindexed    []uint64       `json:"unindexed"`
	Events       []historyEvent `json:"events"`
	Completeness string         `json:"completeness"`
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
	indexes, searched := x.Lookup(*subject)
	prover, err := ledger.NewProver(ctx, r.Log, cp)
	if err != nil {
		return logError(err)
	}
	out := historyOutput{Subject: *subject, Searched: searched, Origin: cp.Origin, Checkpoint: head(cp.Size, cp.Root), IndexSize: x.Size,
		Unindexed: x.Unindexed, Events: []historyEvent{}, Completeness: historyCompleteness}
	for _, i := range indexes {
		he, err := historyEntry(ctx, r, prover, i, searched)
		if err != nil {
			return ledgerError(err)
		}
		out.Events = append(out.Events, he)
	}
	if *asJSON {
		return writeJSON(e, out)
	}
	writeHistoryText(e.stdout, out)
	return nil
}

// historyEntry proves and reads one entry, re-deriving its view and saying
// how it names the subject.
func historyEntry(ctx context.Context, r *ledger.Reader, prover *ledger.Prover, i uint64, searched []string) (historyEvent, error) {
	p, err := prover.Prove(ctx, i, nil)
	if err != nil {
		return historyEvent{}, err
	}
	en, err := r.Read(ctx, i, p.Leaf)
	if err != nil {
		return historyEvent{}, err
	}
	he := historyEvent{Index: i, Proof: p, As: []string{}, Problem: en.Problem}
	if en.Leaf == nil {
		return he, nil
	}
	l := en.Leaf
	he.Source, he.Kind, he.EventID, he.EventTime = l.Source, l.Kind, l.EventID, l.EventTime.UTC().Format(time.RFC3339Nano)
	ev := en.Event
	if ev == nil {
		return he, nil
	}
	for _, m := range history.Mentions(l.Source, ev) {
		if slices.Contains(searched, m.Subject) && !slices.Contains(he.As, m.Role) {
			he.As = append(he.As, m.Role)
		}
	}
	if a := ev.GetActor(); a != nil {
		he.Actor = firstNonEmpty(a.GetLogin(), a.GetDisplayName(), a.GetId(), a.GetAppId())
	}
	for _, t := range ev.GetTargets() {
		he.Targets = append(he.Targets, firstNonEmpty(t.GetLogin(), t.GetDisplayName(), t.GetId()))
	}
	he.Outcome = strings.TrimPrefix(ev.GetOutcome().GetStatus().String(), "OUTCOME_STATUS_")
	return he, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
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
