package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tclient "github.com/transparency-dev/tessera/client"
	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/awstest"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestReplicasSharedBackend runs three stele-server processes on one aws
// backend (MariaDB + versitygw), with producers on all three, and SIGKILLs
// one mid-ingest. The producers of the killed replica fail over to the
// survivors and resubmit what was not acknowledged. Afterwards every
// acknowledged event is in the log exactly once at its acknowledged index,
// the log verifies with the audit library, the survivors keep serving, and
// the same event sent to two replicas at once is admitted once.
func TestReplicasSharedBackend(t *testing.T) {
	env := awstest.New(t)
	flags := append(env.Flags(), "--checkpoint-interval", "1s", "--claim-lease", "4s")
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	reps := make([]*proc, 3)
	reps[0] = startProcess(t, dirs[0], flags...)
	keyFile := filepath.Join(dirs[0], logkey.PrivateFile)
	for i := 1; i < 3; i++ {
		// The other replicas read the first one's key (--log-key).
		reps[i] = startProcess(t, dirs[i], append(flags, "--log-key", keyFile)...)
	}
	v, err := logkey.ReadVerifier(filepath.Join(dirs[0], logkey.PublicFile))
	if err != nil {
		t.Fatal(err)
	}

	type ack struct {
		ev  *stelev1.Event
		idx uint64
	}
	var (
		mu    sync.Mutex
		acked = map[string]ack{} // source \x00 event_id
	)
	record := func(ev *stelev1.Event, r *stelev1.AppendResult) {
		k := ev.Source + "\x00" + ev.EventId
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := acked[k]; ok && prev.idx != r.Index {
			t.Errorf("%s acknowledged at %d and at %d", ev.EventId, prev.idx, r.Index)
		}
		acked[k] = ack{ev, r.Index}
	}
	var killed atomic.Bool
	// send submits evs to replica first, failing over to the survivors,
	// until every event is acknowledged (or the test's time is up).
	send := func(first int, evs []*stelev1.Event) error {
		deadline := time.Now().Add(90 * time.Second)
		rep := first
		var last string
		for len(evs) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d events still unacknowledged (%s); replica logs:\n%s\n---\n%s", len(evs), last, reps[0].logs, reps[1].logs)
			}
			if rep == 2 && killed.Load() {
				rep = 0
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			rs, err := reps[rep].cli.Append(ctx, evs)
			cancel()
			if err != nil {
				last = fmt.Sprintf("replica %d: %v", rep, err)
				rep = (rep + 1) % 2 // the replica died (or is slow): another one
				time.Sleep(100 * time.Millisecond)
				continue
			}
			var rest []*stelev1.Event
			for i, r := range rs {
				switch codes.Code(r.Code) {
				case codes.OK:
					record(evs[i], r)
				case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
					// Another replica's claim (maybe the dead one's): retry.
					rest = append(rest, evs[i])
					last = fmt.Sprintf("replica %d: %s %s", rep, codes.Code(r.Code), r.Message)
				default:
					return fmt.Errorf("%s refused: %s %s", evs[i].EventId, codes.Code(r.Code), r.Message)
				}
			}
			if len(rest) > 0 {
				time.Sleep(200 * time.Millisecond)
			}
			evs = rest
		}
		return nil
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for w := range 6 {
		wg.Go(func() {
			for b := 0; !stop.Load(); b++ {
				evs := make([]*stelev1.Event, 40)
				for i := range evs {
					evs[i] = event(fmt.Sprintf("entra/replica-%d/audit", w), fmt.Sprintf("w%d-b%d-i%d", w, b, i), 600)
				}
				if err := send(w%3, evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	time.Sleep(2500 * time.Millisecond)
	if err := reps[2].cmd.Process.Kill(); err != nil { // SIGKILL mid-ingest
		t.Fatal(err)
	}
	reps[2].cmd.Wait()
	killed.Store(true)
	time.Sleep(2500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d events acknowledged by the replicas", len(acked))

	ctx := ctxT(t, 3*time.Minute)
	// The survivors keep serving: a fresh event on each, with a receipt.
	for i := range 2 {
		rs := mustAppend(t, reps[i].cli, []*stelev1.Event{event("entra/after/audit", fmt.Sprintf("after-%d", i), 300)})
		rc, err := reps[i].cli.Receipt(ctx, rs[0].Index)
		if err != nil {
			t.Fatalf("receipt from survivor %d: %v", i, err)
		}
		if _, err := client.VerifyReceipt(rc, v); err != nil {
			t.Fatalf("survivor %d's receipt: %v", i, err)
		}
	}

	// The same events sent to two replicas at once are admitted once.
	dups := make([]*stelev1.Event, 30)
	for i := range dups {
		dups[i] = event("entra/twice/audit", fmt.Sprintf("twice-%d", i), 400)
	}
	var res [2][]*stelev1.AppendResult
	var dwg sync.WaitGroup
	for i := range 2 {
		dwg.Go(func() { res[i] = mustAppend(t, reps[i].cli, dups) })
	}
	dwg.Wait()
	for i := range dups {
		a, b := res[0][i], res[1][i]
		if a.Index != b.Index || a.Duplicate == b.Duplicate {
			t.Fatalf("%s sent to two replicas: %+v and %+v, want one admission and one duplicate at the same index", dups[i].EventId, a, b)
		}
		record(dups[i], a)
	}

	// Wait until the published checkpoint covers everything acknowledged.
	var maxIdx uint64
	for _, a := range acked {
		maxIdx = max(maxIdx, a.idx)
	}
	if _, err := reps[0].cli.Receipt(ctx, maxIdx); err != nil {
		t.Fatal(err)
	}
	// Every acknowledged event is in the log once, at its index.
	u, _ := url.Parse("http://" + reps[1].httpAddr + "/")
	f, err := tclient.NewHTTPFetcher(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, v, v.Name())
	if err != nil {
		t.Fatal(err)
	}
	inLog := map[string]uint64{}
	for bi := uint64(0); bi*256 < cp.Size; bi++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range b.Entries {
			idx := bi*256 + uint64(j)
			l, err := leaf.Unmarshal(e)
			if err != nil {
				t.Fatalf("entry %d: %v", idx, err)
			}
			k := l.Source + "\x00" + l.EventID
			if prev, ok := inLog[k]; ok {
				t.Fatalf("(%s, %s) is in the log twice: %d and %d", l.Source, l.EventID, prev, idx)
			}
			inLog[k] = idx
		}
	}
	for k, a := range acked {
		if got, ok := inLog[k]; !ok || got != a.idx {
			t.Fatalf("%s acknowledged at %d, in the log at %d (present %v)", a.ev.EventId, a.idx, got, ok)
		}
	}
	rep, _, err := audit.Run(ctx, audit.Config{LogURL: u.String(), Verifier: v})
	if err != nil {
		t.Fatalf("audit: %v (%+v)", err, rep.Failures)
	}
	for _, fd := range rep.Findings {
		if fd.Kind == audit.FindDuplicate {
			t.Fatalf("audit finds a duplicate: %+v", fd)
		}
	}
	// Payloads are shared: a survivor serves the killed replica's events.
	checked := 0
	for _, a := range acked {
		if checked == 20 {
			break
		}
		ev, err := reps[checked%2].cli.Event(ctx, a.idx)
		if err != nil {
			t.Fatalf("event %d: %v", a.idx, err)
		}
		if string(ev.Record) != string(a.ev.Record) {
			t.Fatalf("event %d: record differs", a.idx)
		}
		checked++
	}
	t.Logf("log of %d entries verifies and audits clean; %d acknowledged events each once", cp.Size, len(acked))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("ran out of time")
	}
}
