package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/ledger"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/state"
)

// ledgerFlags are the flags of the commands that replay the log: the
// tlog-tiles API and key, and the server payloads are read from.
type ledgerFlags struct {
	tiles  tileFlags
	server *string
	policy *string
	conn   connFlags
}

func addLedgerFlags(fs *flag.FlagSet) ledgerFlags {
	return ledgerFlags{
		tiles:  addTileFlags(fs),
		server: fs.String("server", "", "read payloads from this Stele server (host:port; reader role); required"),
		policy: fs.String("policy", "", "a C2SP tlog-policy: the log's checkpoint must carry its quorum of witness cosignatures"),
		conn:   addConnFlags(fs),
	}
}

// open returns the command's context, a reader of the verified log and
// the log's verified checkpoint; done releases the connection and the
// context. A replay reads every entry, so --timeout bounds each request
// (payload calls; tile reads have the HTTP client's minute), not the
// whole walk; an interrupt stops it.
func (f ledgerFlags) open() (ctx context.Context, r *ledger.Reader, cp *client.Checkpoint, done func(), err error) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	lg, err := f.tiles.open()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if *f.server == "" {
		return nil, nil, nil, nil, usagef("--server HOST:PORT is required (payloads need the reader role)")
	}
	var policy *client.Policy
	if *f.policy != "" {
		b, err := os.ReadFile(*f.policy)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if policy, err = client.ParsePolicy(b); err != nil {
			return nil, nil, nil, nil, usagef("%s: %v", *f.policy, err)
		}
	}
	c, err := f.conn.dial(*f.server)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if cp, err = lg.Checkpoint(ctx); err != nil {
		c.Close()
		return nil, nil, nil, nil, logError(err)
	}
	if policy != nil {
		if err := policy.Check(cp); err != nil {
			c.Close()
			return nil, nil, nil, nil, fmt.Errorf("%w: %v", client.ErrVerification, err)
		}
	}
	r = &ledger.Reader{Log: lg, Payloads: payloadsOf(c, *f.tiles.timeout)}
	return ctx, r, cp, func() { c.Close(); cancel() }, nil
}

// payloadsOf reads payloads from a server, each call within timeout.
func payloadsOf(c *client.Client, timeout time.Duration) ledger.PayloadFunc {
	return func(ctx context.Context, index uint64) (*stelev1.GetEventResponse, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ev, err := c.Event(ctx, index)
		if err != nil {
			return nil, rpcError(err)
		}
		return ev, nil
	}
}

// replayLog replays entries [0, size) into a state. The caller's ctx bounds
// the whole walk.
func replayLog(ctx context.Context, r *ledger.Reader, cp *client.Checkpoint, size uint64) (*state.State, [32]byte, error) {
	st := state.New()
	root, err := r.Walk(ctx, cp, 0, size, func(en *ledger.Entry) error {
		applyEntry(st, en)
		return nil
	})
	return st, root, err
}

// applyEntry applies one verified entry to a state.
func applyEntry(st *state.State, en *ledger.Entry) {
	switch {
	case en.Leaf == nil:
		st.Skip(en.Index, "", "", en.Problem)
	case en.Event == nil:
		st.Skip(en.Index, en.Leaf.Source, en.Leaf.Kind, en.Problem)
	default:
		st.Apply(en.Index, en.Leaf.Source, en.Event)
	}
}

// sizeAt returns the longest prefix of the log whose entries were all
// admitted at or before t, reading leaves only.
func sizeAt(ctx context.Context, r *ledger.Reader, cp *client.Checkpoint, t time.Time) (uint64, error) {
	leaves := &ledger.Reader{Log: r.Log}
	n, stop := uint64(0), false
	_, err := leaves.Walk(ctx, cp, 0, cp.Size, func(en *ledger.Entry) error {
		if !stop && en.Leaf != nil && !en.Leaf.AdmittedTime.After(t) {
			n = en.Index + 1
		} else {
			stop = true
		}
		return nil
	})
	return n, err
}

// parseAt reads --at: a tree size, or an RFC 3339 time.
func parseAt(s string) (size uint64, t time.Time, err error) {
	if s == "" {
		return 0, time.Time{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n, time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return 0, t, nil
	}
	return 0, time.Time{}, usagef("--at must be a tree size or an RFC 3339 time, got %q", s)
}

type stateOutput struct {
	Origin     string         `json:"origin"`
	Checkpoint treeHead       `json:"checkpoint"`
	Size       uint64         `json:"size"`
	Root       string         `json:"root"`
	AsOf       string         `json:"as_of,omitempty"`
	Tenant     string         `json:"tenant,omitempty"`
	Facts      []*state.Fact  `json:"facts"`
	Unused     []state.Unused `json:"unused"`
	Ignored    uint64         `json:"ignored"`
	Failed     uint64         `json:"failed"`
}

func cmdState(e *env, args []string) error {
	fs := newFlags("state")
	lf := addLedgerFlags(fs)
	at := fs.String("at", "", "replay the first SIZE entries, or the entries admitted up to an RFC 3339 TIME (default: the whole log at its checkpoint)")
	tenant := fs.String("tenant", "", "only this tenant (provider/tenant as in the source, e.g. entra/<tenant-id>)")
	asJSON := fs.Bool("json", false, "write JSON")
	all := fs.Bool("all", false, "also list facts that events removed, and time-bound facts that have ended")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	size, atTime, err := parseAt(*at)
	if err != nil {
		return err
	}
	ctx, r, cp, done, err := lf.open()
	if err != nil {
		return err
	}
	defer done()
	switch {
	case !atTime.IsZero():
		if size, err = sizeAt(ctx, r, cp, atTime); err != nil {
			return ledgerError(err)
		}
	case *at == "":
		size = cp.Size
	case size > cp.Size:
		return fmt.Errorf("%w: --at %d is beyond the log's checkpoint (size %d)", client.ErrVerification, size, cp.Size)
	}
	if isTerminal(e.stderr) {
		r.Progress = func(done, total uint64) { fmt.Fprintf(e.stderr, "\rstate: %d/%d entries   ", done, total) }
	}
	st, root, err := replayLog(ctx, r, cp, size)
	if r.Progress != nil {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return ledgerError(err)
	}
	asOf := atTime
	out := stateOutput{Origin: cp.Origin, Checkpoint: head(cp.Size, cp.Root), Size: size, Root: hex.EncodeToString(root[:]),
		Tenant: *tenant, Unused: st.Unused, Ignored: st.Ignored, Failed: st.Failed, Facts: []*state.Fact{}}
	if out.Unused == nil {
		out.Unused = []state.Unused{}
	}
	if !asOf.IsZero() {
		out.AsOf = asOf.UTC().Format(time.RFC3339Nano)
	}
	for _, f := range st.Facts() {
		if (*tenant == "" || f.Tenant == *tenant) && (*all || f.ActiveAt(asOf)) {
			out.Facts = append(out.Facts, f)
		}
	}
	if *asJSON {
		return writeJSON(e, out)
	}
	writeStateText(e.stdout, out, asOf)
	return nil
}

// ledgerError classifies an error from replaying the log.
func ledgerError(err error) error {
	if errors.Is(err, client.ErrVerification) {
		return err
	}
	return logError(err)
}

func writeStateText(w io.Writer, out stateOutput, asOf time.Time) {
	fmt.Fprintf(w, "state of %s at size %d (root %s), proven a prefix of the checkpoint at size %d\n", out.Origin, out.Size, out.Root, out.Checkpoint.Size)
	tenant := ""
	for _, f := range out.Facts {
		if f.Tenant != tenant {
			tenant = f.Tenant
			fmt.Fprintf(w, "\n%s\n", tenant)
		}
		fmt.Fprintf(w, "  %s\n", factLine(f, asOf))
	}
	fmt.Fprintf(w, "\n%d facts; %d events ignored (no state), %d failed (no effect), %d unused\n", len(out.Facts), out.Ignored, out.Failed, len(out.Unused))
	for _, u := range out.Unused {
		fmt.Fprintf(w, "  unused: entry %d %s %s: %s\n", u.Index, u.Source, u.Kind, u.Reason)
	}
}

// factLine is a fact on one line: type, key, attributes, state and the
// events behind it.
func factLine(f *state.Fact, asOf time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", f.Type, f.Key)
	for _, k := range slices.Sorted(maps.Keys(f.Attrs)) {
		fmt.Fprintf(&b, " %s=%q", k, f.Attrs[k])
	}
	if f.Until != nil {
		fmt.Fprintf(&b, " until=%s", f.Until.UTC().Format(time.RFC3339))
	}
	switch {
	case !f.Present:
		b.WriteString(" REMOVED")
	case !f.ActiveAt(asOf):
		b.WriteString(" ENDED")
	}
	ev := make([]string, len(f.Events))
	for i, x := range f.Events {
		ev[i] = strconv.FormatUint(x, 10)
	}
	fmt.Fprintf(&b, " [events %s]", strings.Join(ev, ","))
	return b.String()
}
