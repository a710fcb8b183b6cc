package witness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"github.com/stele-dev/stele/internal/testlog"
)

func init() {
	// Tessera logs through klog; keep test output readable.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
}

// tesseraLog is a real Tessera POSIX log in a directory.
type tesseraLog struct {
	dir      string
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader
	awaiter  *tessera.PublicationAwaiter
	cancel   context.CancelFunc
}

// logKey makes a log signing key for origin.
func logKey(t testing.TB, origin string) (note.Signer, string) {
	t.Helper()
	k := testlog.NewKey(t, origin)
	return k.Signer, k.VKey
}

// policyFor is a C2SP tlog-policy naming one witness.
func policyFor(vkey, url string) []byte {
	return fmt.Appendf(nil, "witness w1 %s %s\nquorum w1\n", vkey, url)
}

// startTessera opens a Tessera POSIX log in dir; with a policy, it
// publishes only checkpoints the witnesses cosigned.
func startTessera(t testing.TB, dir string, signer note.Signer, policy []byte) *tesseraLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(100*time.Millisecond).
		WithBatching(64, 20*time.Millisecond)
	if policy != nil {
		wg, err := tessera.NewWitnessGroupFromPolicy(policy)
		if err != nil {
			t.Fatal(err)
		}
		opts = opts.WithWitnesses(wg, &tessera.WitnessOptions{Timeout: 10 * time.Second})
	}
	app, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		cancel()
		t.Fatalf("tessera appender: %v", err)
	}
	l := &tesseraLog{dir: dir, appender: app, shutdown: shutdown, reader: reader, cancel: cancel,
		awaiter: tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 20*time.Millisecond)}
	t.Cleanup(l.stop)
	return l
}

func (l *tesseraLog) stop() {
	if l.cancel == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l.shutdown(ctx)
	l.cancel()
	l.cancel = nil
}

// add appends n entries and waits until a checkpoint covering them is
// published; it returns that checkpoint.
func (l *tesseraLog) add(t testing.TB, n int, tag string) []byte {
	t.Helper()
	var fs []tessera.IndexFuture
	for i := range n {
		fs = append(fs, l.appender.Add(context.Background(), tessera.NewEntry(fmt.Appendf(nil, "%s-%d", tag, i))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var cp []byte
	for _, f := range fs {
		_, c, err := l.awaiter.Await(ctx, f)
		if err != nil {
			t.Fatalf("awaiting publication: %v", err)
		}
		cp = c
	}
	return cp
}

// checkWitnessed checks that cp carries a valid log signature and a valid
// cosignature from the witness, and returns the size.
func checkWitnessed(t testing.TB, cp []byte, logVKey, witnessVKey, origin string) uint64 {
	t.Helper()
	lv, err := note.NewVerifier(logVKey)
	if err != nil {
		t.Fatal(err)
	}
	wv, err := fnote.NewVerifierForCosignatureV1(witnessVKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, note.VerifierList(lv, wv))
	if err != nil {
		t.Fatalf("published checkpoint does not verify: %v\n%s", err, cp)
	}
	var cosigned bool
	for _, s := range n.Sigs {
		if s.Name == wv.Name() && s.Hash == wv.KeyHash() {
			cosigned = true
		}
	}
	if !cosigned {
		t.Fatalf("published checkpoint has no cosignature from %s:\n%s", wv.Name(), cp)
	}
	c, err := parseCheckpointBody(n.Text)
	if err != nil || c.Origin != origin {
		t.Fatalf("checkpoint body %q: %v", n.Text, err)
	}
	return c.Size
}

func counterValue(t testing.TB, w *Witness, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := w.registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// TestTesseraInterop: Tessera's own witness client (an appender built with
// WithWitnesses and a tlog-policy naming this witness) gets valid
// cosignatures, over several checkpoints, including the 409 recovery when
// the log's first guess of the witness's size is its own published size.
func TestTesseraInterop(t *testing.T) {
	const origin = "example.com/tessera-log"
	signer, vkey := logKey(t, origin)
	w := newTestWitnessCfg(t, LogConfig{Origin: origin, Keys: []string{vkey}})
	dir := t.TempDir()

	// The log starts without witnesses and publishes size 5 on its own.
	l := startTessera(t, dir, signer, nil)
	l.add(t, 5, "a")
	l.stop()

	// Now with the witness: Tessera's first "old" is 5, the witness holds
	// nothing, answers 409 "0", and Tessera retries with old 0.
	l = startTessera(t, dir, signer, policyFor(w.VerifierKey(), w.srv.URL))
	var last uint64
	for i := range 4 {
		cp := l.add(t, 3+i, fmt.Sprintf("b%d", i))
		size := checkWitnessed(t, cp, vkey, w.VerifierKey(), origin)
		if size <= last {
			t.Fatalf("checkpoint size %d after %d", size, last)
		}
		last = size
		st, ok, err := w.state(origin)
		if err != nil || !ok || st.Size < size {
			t.Fatalf("witness state %d (%v, %v) behind published %d", st.Size, ok, err, size)
		}
	}
	if n := counterValue(t, w.Witness, "stele_witness_add_checkpoint_requests_total", map[string]string{"status": "409"}); n < 1 {
		t.Fatalf("no 409 was answered (%v): the old-size recovery path was not exercised", n)
	}
	if n := counterValue(t, w.Witness, "stele_witness_add_checkpoint_requests_total", map[string]string{"status": "200"}); n < 4 {
		t.Fatalf("%v cosignatures", n)
	}
	// A restart of the log: its first old is its own last published size,
	// which the witness holds, so it is answered directly.
	l.stop()
	l = startTessera(t, dir, signer, policyFor(w.VerifierKey(), w.srv.URL))
	size := checkWitnessed(t, l.add(t, 2, "c"), vkey, w.VerifierKey(), origin)
	if size != last+2 {
		t.Fatalf("size %d, want %d", size, last+2)
	}
	// The published checkpoint file itself carries the cosignature.
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	checkWitnessed(t, raw, vkey, w.VerifierKey(), origin)
}

// TestTesseraSplitView: two Tessera logs in two directories share one key
// (a forked log). The witness cosigns the first; the second's checkpoints
// are refused and recorded as evidence; the second never publishes a
// cosigned checkpoint.
func TestTesseraSplitView(t *testing.T) {
	const origin = "example.com/forked"
	signer, vkey := logKey(t, origin)
	w := newTestWitnessCfg(t, LogConfig{Origin: origin, Keys: []string{vkey}})
	policy := policyFor(w.VerifierKey(), w.srv.URL)

	a := startTessera(t, t.TempDir(), signer, policy)
	checkWitnessed(t, a.add(t, 5, "honest"), vkey, w.VerifierKey(), origin)

	// The fork publishes size 5 on its own, with other entries...
	bdir := t.TempDir()
	b := startTessera(t, bdir, signer, nil)
	b.add(t, 5, "evil")
	b.stop()
	// ...then asks the witness: old 5 matches, the proof cannot.
	b = startTessera(t, bdir, signer, policy)
	for i := range 3 {
		b.appender.Add(context.Background(), tessera.NewEntry(fmt.Appendf(nil, "evil-more-%d", i)))
	}
	var evs []Evidence
	for i := 0; len(evs) == 0; i++ {
		if i > 3000 {
			t.Fatal("no evidence recorded for the fork")
		}
		time.Sleep(10 * time.Millisecond)
		var err error
		if evs, err = w.Evidence(origin); err != nil {
			t.Fatal(err)
		}
	}
	if evs[0].Reason != "inconsistent_proof" || evs[0].Status != http.StatusUnprocessableEntity {
		t.Fatalf("evidence %+v", evs[0])
	}
	b.stop()
	raw, err := os.ReadFile(filepath.Join(bdir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	wv, _ := fnote.NewVerifierForCosignatureV1(w.VerifierKey())
	if _, err := note.Open(raw, note.VerifierList(wv)); err == nil {
		t.Fatalf("the fork published a checkpoint cosigned by the witness:\n%s", raw)
	}
	// The honest log carries on.
	checkWitnessed(t, a.add(t, 4, "honest-more"), vkey, w.VerifierKey(), origin)
	if got := getEvidence(t, w.srv.URL+"/evidence?origin="+origin); len(got) == 0 {
		t.Fatalf("evidence over HTTP: %d records", len(got))
	}
}
