package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/eventfile"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

func cmdSubmit(e *env, args []string) error {
	fs := newFlags("submit")
	sf := addServerFlags(fs)
	source := fs.String("source", "", "source for lines that have none")
	batch := fs.Int("batch", 500, "events per Append request")
	parallel := fs.Int("parallel", 8, "Append requests in flight at once (results are still printed in line order)")
	attempts := fs.Int("attempts", 10, "send a batch at most this many times when it fails for a transient reason (Unavailable, ResourceExhausted, DeadlineExceeded)")
	keyFile := fs.String("signing-key", "", "sign every event with this Ed25519 key file (a note signer key PRIVATE+KEY+..., or the base64 32-byte seed); see docs/security.md")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one FILE (or - for standard input), got %d", len(pos))
	}
	if *batch < 1 {
		return usagef("--batch must be at least 1")
	}
	if *attempts < 1 {
		return usagef("--attempts must be at least 1")
	}
	if *parallel < 1 {
		return usagef("--parallel must be at least 1")
	}
	var in io.Reader = e.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var key ed25519.PrivateKey
	if *keyFile != "" {
		b, err := durable.ReadSecret(*keyFile, "signing key") // refused if others can read it
		if err != nil {
			return err
		}
		if key, err = client.ParseSigningKey(b); err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	sub := &client.Submitter{Client: c, BatchEvents: *batch, MaxAttempts: *attempts, AttemptTimeout: *sf.timeout, WaitForReady: true,
		OnRetry: func(attempt int, wait time.Duration, err error) {
			fmt.Fprintf(e.stderr, "submit: attempt %d failed (%s), retrying in %s\n", attempt, oneLine(rpcError(err).Error()), wait.Round(time.Millisecond))
		}}
	// One goroutine reads and parses lines into batches, up to --parallel
	// batches are submitted at once, and results are printed in line order.
	type lineBatch struct {
		lines  []eventfile.Line
		events []*stelev1.Event
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batches := make(chan lineBatch, 1)
	var readErr error
	go func() {
		defer close(batches)
		send := func(b lineBatch) bool {
			select {
			case batches <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		var b lineBatch
		r := eventfile.NewReader(in, *source)
		for {
			l, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr = err
				break
			}
			if l.Err == nil && key != nil {
				l.Err = client.SignEvent(l.Event, key)
			}
			b.lines = append(b.lines, l)
			if l.Err == nil {
				b.events = append(b.events, l.Event)
			}
			if len(b.events) >= *batch || len(b.lines) >= 4**batch {
				if !send(b) {
					return
				}
				b = lineBatch{}
			}
		}
		if len(b.lines) > 0 {
			send(b)
		}
	}()
	var admitted, dups, refused int
	ordered(ctx, *parallel, batches, func(b lineBatch) []client.SubmitResult {
		if len(b.events) == 0 {
			return nil
		}
		// A failed call leaves the events it could not submit with the
		// last error's code in their results.
		results, _ := sub.Submit(ctx, b.events)
		return results
	}, func(b lineBatch, results []client.SubmitResult) {
		out := bufio.NewWriter(e.stdout)
		defer out.Flush()
		next := 0
		for _, l := range b.lines {
			if l.Err != nil {
				refused++
				fmt.Fprintf(out, "line %d: error: %s\n", l.No, oneLine(l.Err.Error()))
				continue
			}
			r := results[next]
			next++
			switch {
			case !r.OK():
				refused++
				fmt.Fprintf(out, "line %d: error: %s: %s\n", l.No, r.Code, oneLine(r.Message))
			case r.Duplicate:
				dups++
				fmt.Fprintf(out, "line %d: index %d duplicate\n", l.No, r.Index)
			default:
				admitted++
				fmt.Fprintf(out, "line %d: index %d\n", l.No, r.Index)
			}
		}
	})
	if readErr != nil {
		return readErr
	}
	fmt.Fprintf(e.stderr, "%d admitted, %s, %d refused\n", admitted, plural(dups, "duplicate"), refused)
	if refused > 0 {
		return errFailed
	}
	return nil
}

func cmdCheckpoint(e *env, args []string) error {
	fs := newFlags("checkpoint")
	sf := addServerFlags(fs)
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := sf.request()
	defer cancel()
	resp, err := c.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{}, waitReady)
	if err != nil {
		return rpcError(err)
	}
	_, err = e.stdout.Write(resp.Checkpoint)
	return err
}

func indexFlag(fsIndex string) (uint64, error) {
	if fsIndex == "" {
		return 0, usagef("--index N is required")
	}
	n, err := strconv.ParseUint(fsIndex, 10, 64)
	if err != nil {
		return 0, usagef("--index must be a non-negative integer, got %q", fsIndex)
	}
	return n, nil
}

func cmdReceipt(e *env, args []string) error {
	fs := newFlags("receipt")
	sf := addServerFlags(fs)
	ef := addEntryFlags(fs)
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	byID, err := ef.byID()
	if err != nil {
		return err
	}
	var idx uint64
	if !byID {
		if idx, err = indexFlag(*ef.index); err != nil {
			return err
		}
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := sf.request()
	defer cancel()
	if byID {
		resp, err := ef.lookup(ctx, c)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(resp.Proof)
		return err
	}
	resp, err := c.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: idx}, waitReady)
	if err != nil {
		return rpcError(err)
	}
	_, err = e.stdout.Write(resp.Proof)
	return err
}

func cmdEvent(e *env, args []string) error {
	fs := newFlags("event")
	sf := addServerFlags(fs)
	ef := addEntryFlags(fs)
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	byID, err := ef.byID()
	if err != nil {
		return err
	}
	var idx uint64
	if !byID {
		if idx, err = indexFlag(*ef.index); err != nil {
			return err
		}
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := sf.request()
	defer cancel()
	var resp *stelev1.GetEventResponse
	if byID {
		if resp, err = ef.lookup(ctx, c); err != nil {
			return err
		}
	} else if resp, err = c.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: idx}, waitReady); err != nil {
		return rpcError(err)
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
	if err != nil {
		return err
	}
	if resp.Tombstone != nil {
		fmt.Fprintf(e.stderr, "%v\n", &client.ErasedError{Index: resp.Index, Tombstone: resp.Tombstone})
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

func cmdVerify(e *env, args []string) error {
	fs := newFlags("verify")
	keyPath := fs.String("log-key", "", "the log's verifier key: its file (log.pub) or the key itself (name+hash+key)")
	allKeys := requireAllKeysFlag(fs)
	eventPath := fs.String("event", "", "the event as 'stele event' writes it, to check against the receipt")
	// RECEIPT may also be a record stele-forwarder delivered, as a SIEM
	// returns it (see verifyForwarded).
	policyPath := fs.String("policy", "", "a C2SP tlog-policy: the receipt's checkpoint must carry its quorum of witness cosignatures")
	logURL := fs.String("log", "", "also ask the log (its tlog-tiles URL) whether it is frozen, and if so check the receipt against its final checkpoint and name its successor (chain.go)")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one RECEIPT file (or -), got %d", len(pos))
	}
	if *keyPath == "" {
		return usagef("--log-key FILE is required")
	}
	v, err := readLogKey(*keyPath, *allKeys)
	if err != nil {
		return err
	}
	var policy *client.Policy
	if *policyPath != "" {
		text, err := os.ReadFile(*policyPath)
		if err != nil {
			return err
		}
		if policy, err = client.ParsePolicy(text); err != nil {
			return err
		}
	}
	raw, err := readFileArg(e, pos[0])
	if err != nil {
		return err
	}
	fail := func(err error) error {
		fmt.Fprintf(e.stderr, "verification FAILED: %v\n", err)
		return errFailed
	}
	if isForwardedRecord(raw) {
		if *eventPath != "" {
			return usagef("--event is for a receipt: a forwarded record carries its event")
		}
		return verifyForwarded(e, raw, v, policy, fail)
	}
	r, err := client.VerifyReceipt(raw, v)
	if err != nil {
		return fail(err)
	}
	if policy != nil {
		if err := policy.Check(r.Checkpoint); err != nil {
			return fail(err)
		}
	}
	fmt.Fprintf(e.stdout, "receipt OK: entry %d (source %s, event_id %s, kind %s) is in %s at tree size %d\n",
		r.Index, r.Leaf.Source, r.Leaf.EventID, r.Leaf.Kind, r.Checkpoint.Origin, r.Checkpoint.Size)
	if policy != nil {
		fmt.Fprintln(e.stdout, "witnesses OK: the checkpoint meets the witness policy")
	}
	if *logURL != "" {
		if err := verifyLogState(e, *logURL, v, policy, r); err != nil {
			return fail(err)
		}
	}
	if k := r.Signer(); k != "" && *eventPath == "" {
		fmt.Fprintf(e.stdout, "producer signature: the leaf names key %s (verify it with --event)\n", k)
	}
	if *eventPath == "" {
		return nil
	}
	eb, err := os.ReadFile(*eventPath)
	if err != nil {
		return err
	}
	var ev stelev1.GetEventResponse
	if err := protojson.Unmarshal(eb, &ev); err != nil {
		return fail(fmt.Errorf("event file %s is not the JSON 'stele event' writes: %v", *eventPath, err))
	}
	if ev.Index != r.Index {
		return fail(fmt.Errorf("event is entry %d but the receipt is for entry %d", ev.Index, r.Index))
	}
	if ev.Tombstone != nil {
		// Not a failure of the log: the receipt verified, and the payload
		// was lawfully erased, so there is nothing to check it against.
		if !bytes.Equal(r.LeafBytes, ev.Leaf) {
			return fail(fmt.Errorf("the event file's leaf is not the receipt's leaf"))
		}
		fmt.Fprintf(e.stdout, "event ERASED: %v\n", &client.ErasedError{Index: ev.Index, Tombstone: ev.Tombstone})
		return nil
	}
	p, err := client.VerifyEvent(r, ev.Leaf, ev.Salt, ev.Payload)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "event OK: the payload (format %s, record %d bytes) matches the leaf's salted commitment\n", p.Format, len(p.Record))
	if k := r.Signer(); k != "" {
		fmt.Fprintf(e.stdout, "producer signature OK: signed by key %s\n", k)
	}
	return nil
}

// plural is "1 duplicate", "2 duplicates".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
