package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/monitor"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// startProcessAt is startProcess on the given listen addresses, so that a
// restarted server is found where it was.
func startProcessAt(t *testing.T, dir, grpcAddr, httpAddr string, extra ...string) *proc {
	t.Helper()
	p := &proc{grpcAddr: grpcAddr, httpAddr: httpAddr, logs: &lockedBuffer{}}
	args := append([]string{"--data-dir", dir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--checkpoint-interval", "200ms"}, extra...)
	p.cmd = exec.Command(serverBinary(t), args...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	c, err := client.Dial(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	p.cli = c
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if _, err := c.Checkpoint(ctx); err == nil {
			return p
		} else if ctx.Err() != nil {
			t.Fatalf("server did not come up: %v\n%s", err, p.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runCLI runs the stele CLI in process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRotateLiveLog rotates a live log as docs/operations.md says, with
// events flowing and a monitor running: log 1 and its successor log 2 are
// witnessed by a real stele-witness; a producer appends all along; log 1 is
// stopped, frozen (stele-server freeze, naming log 2) and started again,
// read-only by itself; the producer, refused with FailedPrecondition
// naming log 2, moves there. Across the boundary: the monitor
// (monitor.Follower, started on log 1) reports log 1 frozen and goes on
// verifying log 2, and so does `stele monitor` started on log 1; `stele audit --follow-chain` audits both;
// `stele verify --log` of a receipt from log 1 verifies and reports the
// freeze; every event the producer sent is in exactly one of the logs; a
// forwarder (files sink) started on log 1 delivers every entry of both logs
// exactly once, in order, each with a receipt `stele verify` accepts with
// its own log's key; log 1's explorer serves its freeze statement and log
// 2's names log 1 as its predecessor.
func TestRotateLiveLog(t *testing.T) {
	start := time.Now()
	dirA := filepath.Join(t.TempDir(), "log-1")
	dirB := filepath.Join(t.TempDir(), "log-2")
	keyA, err := logkey.LoadOrCreate(dirA, "audit.stele.test/log-1", "", logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := logkey.LoadOrCreate(dirB, "audit.stele.test/log-2", "", logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	w := &witnessProc{dir: filepath.Join(t.TempDir(), "w"), addr: freeAddr(t), name: "w.stele.test/witness"}
	w.start(t)
	for _, k := range []*logkey.Key{keyA, keyB} {
		if out, err := exec.Command(binary(t, "stele-witness"), "add-log", "--data-dir", w.dir, "--origin", k.Signer.Name(), "--key", k.VKey).CombinedOutput(); err != nil {
			t.Fatalf("add-log: %v\n%s", err, out)
		}
	}
	wpub, err := os.ReadFile(filepath.Join(w.dir, "witness.pub"))
	if err != nil {
		t.Fatal(err)
	}
	policyPath, _ := writeWitnessPolicy(t, fmt.Sprintf("witness w %s http://%s/\nquorum w\n", strings.TrimSpace(string(wpub)), w.addr))
	pubA, pubB := filepath.Join(dirA, "log.pub"), filepath.Join(dirB, "log.pub")

	gA, hA := freeAddr(t), freeAddr(t)
	pA := startProcessAt(t, dirA, gA, hA, "--witness-policy", policyPath)
	urlA := "http://" + hA + "/"
	pB := startProcess(t, dirB, "--witness-policy", policyPath, "--predecessor-key", pubA, "--predecessor-url", urlA)
	urlB := "http://" + pB.httpAddr + "/"

	// A forwarder (files sink), configured with log 1 only and log 2's
	// gRPC server as its successor's: it learns log 2's key and URL from
	// log 1's freeze statement.
	fwdOut := filepath.Join(t.TempDir(), "files")
	fcfgJSON, _ := json.Marshal(map[string]any{
		"log":           map[string]any{"url": urlA, "key_file": pubA, "policy_file": policyPath},
		"server":        map[string]any{"address": gA},
		"successors":    map[string]any{keyB.Signer.Name(): map[string]any{"address": pB.grpcAddr}},
		"state_dir":     t.TempDir(),
		"poll_interval": "200ms",
		"batch_size":    25,
		"max_backoff":   "500ms",
		"sinks":         []any{map[string]any{"name": "files", "type": "files", "settings": map[string]any{"dir": fwdOut}}},
	})
	fcfg, err := forwarder.ParseConfig(fcfgJSON)
	if err != nil {
		t.Fatal(err)
	}
	fwd, closeFwd, err := forwarder.Open(fcfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(context.Background())
	fdone := make(chan struct{})
	go func() {
		defer close(fdone)
		fwd.Run(fctx)
	}()
	defer func() { fcancel(); <-fdone; closeFwd() }()

	// The monitor, started on log 1 only: monitor.Follower, as
	// `stele monitor` runs it (the CLI is run on the chain at the end).
	pol, err := client.ParsePolicy(mustRead(t, policyPath))
	if err != nil {
		t.Fatal(err)
	}
	lgA, err := client.NewTileLog(urlA, keyA.Verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		monMu     sync.Mutex
		monAlerts []monitor.Alert
		monAt     string // "origin size" the monitor has verified
	)
	monState := t.TempDir()
	follower, err := monitor.NewFollower(&client.Chain{Policy: pol}, lgA, func(link *client.ChainLink) (*monitor.Monitor, error) {
		st, err := client.NewStateStore(monState, link.Log.Verifier(), link.Log.ConsistencyProof)
		if err != nil {
			return nil, err
		}
		return monitor.New(monitor.Config{Log: link.Log, State: st, Policy: pol, Rules: monitor.DefaultRules(),
			Alert: func(a monitor.Alert) error {
				monMu.Lock()
				defer monMu.Unlock()
				monAlerts = append(monAlerts, a)
				return nil
			}})
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		for mctx.Err() == nil {
			follower.Step(mctx) // log 1 is down for a moment: the next step tries again
			if cp := follower.Monitor().Trusted(); cp != nil {
				monMu.Lock()
				monAt = fmt.Sprintf("%s %d", cp.Origin, cp.Size)
				monMu.Unlock()
			}
			select {
			case <-mctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { mcancel(); <-monDone }()
	monitorAt := func() (string, uint64) {
		monMu.Lock()
		defer monMu.Unlock()
		var o string
		var n uint64
		fmt.Sscanf(monAt, "%s %d", &o, &n)
		return o, n
	}

	// The producer: one event at a time, retried until a log takes it;
	// on a read-only refusal it moves to the successor the refusal names.
	type sent struct {
		origin string
		idx    uint64
	}
	var (
		mu       sync.Mutex
		accepted = map[string]sent{}
		onB      int
		refusal  *client.ReadOnlyError
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		target, origin := pA.cli, keyA.Signer.Name()
		for i := 0; ; i++ {
			id := fmt.Sprintf("rot-%05d", i)
			for {
				if ctx.Err() != nil {
					done <- nil
					return
				}
				actx, acancel := context.WithTimeout(ctx, 10*time.Second)
				rs, err := target.Append(actx, []*stelev1.Event{event("entra/rotation/audit", id, 300)})
				acancel()
				if ro, ok := client.AsReadOnly(err); ok {
					if ro.Successor != keyB.Signer.Name() || ro.SuccessorURL != urlB || ro.SuccessorKey != keyB.VKey {
						done <- fmt.Errorf("refusal names %+v, want log 2", ro)
						return
					}
					mu.Lock()
					refusal = ro
					mu.Unlock()
					target, origin = pB.cli, ro.Successor
					continue
				}
				if err == nil && rs[0].Code == int32(codes.OK) {
					mu.Lock()
					accepted[id] = sent{origin, rs[0].Index}
					if origin == keyB.Signer.Name() {
						onB++
					}
					mu.Unlock()
					break
				}
				if err == nil && rs[0].Code != int32(codes.Unavailable) && rs[0].Code != int32(codes.ResourceExhausted) {
					done <- fmt.Errorf("event %s refused: %d %s", id, rs[0].Code, rs[0].Message)
					return
				}
				// Log 1 is restarting (or pushing back): retry the same event.
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				o, n := monitorAt()
				t.Fatalf("timed out waiting for %s (monitor at %s %d)\nlog 1:\n%s", what, o, n, pA.logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	waitFor("events on log 1", time.Minute, func() bool { return count() >= 60 })
	waitFor("the monitor on log 1", time.Minute, func() bool { o, n := monitorAt(); return o == keyA.Signer.Name() && n > 0 })
	t.Logf("%v: log 1 running, monitored", time.Since(start))
	receiptA, err := pA.cli.Receipt(ctxT(t, time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}

	// Rotate, as docs/operations.md: stop log 1, freeze it naming log 2,
	// start it again (read-only by itself).
	pA.cmd.Process.Signal(syscall.SIGTERM)
	if err := pA.cmd.Wait(); err != nil {
		t.Fatalf("stopping log 1: %v\n%s", err, pA.logs)
	}
	out, err := exec.Command(serverBinary(t), "freeze", "--data-dir", dirA, "--witness-policy", policyPath,
		"--successor-key", pubB, "--successor-url", urlB).CombinedOutput()
	if err != nil {
		t.Fatalf("stele-server freeze: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "audit.stele.test/log-1 is frozen at size") {
		t.Fatalf("freeze printed:\n%s", out)
	}
	pA2 := startProcessAt(t, dirA, gA, hA, "--witness-policy", policyPath)
	if !strings.Contains(pA2.logs.String(), "frozen") {
		t.Errorf("the restarted log 1 does not say it is frozen:\n%s", pA2.logs)
	}

	t.Logf("%v: log 1 frozen and restarted", time.Since(start))
	waitFor("events on log 2", time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return onB >= 60 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	total, gotRefusal := len(accepted), refusal
	var lastB sent
	for _, s := range accepted {
		if s.origin == keyB.Signer.Name() && s.idx >= lastB.idx {
			lastB = s
		}
	}
	mu.Unlock()
	if gotRefusal == nil || !gotRefusal.Frozen {
		t.Fatalf("the producer was never refused by the frozen log: %+v", gotRefusal)
	}
	if _, err := pB.cli.Receipt(ctxT(t, time.Minute), lastB.idx); err != nil {
		t.Fatal(err)
	}

	// The monitor followed the chain: log 1 reported frozen, log 2 verified
	// past the producer's last event.
	waitFor("the monitor on log 2", time.Minute, func() bool {
		o, n := monitorAt()
		return o == keyB.Signer.Name() && n > lastB.idx
	})
	mcancel()
	<-monDone
	sawFrozen := false
	for _, a := range monAlerts {
		switch a.Type {
		case monitor.AlertRule:
		case monitor.AlertLogFrozen:
			sawFrozen = a.Origin == keyA.Signer.Name() && strings.Contains(a.Message, keyB.Signer.Name())
		default:
			t.Errorf("monitor alert across the rotation: %+v", a)
		}
	}
	if !sawFrozen {
		t.Errorf("the monitor did not report log 1 frozen with its successor: %+v", monAlerts)
	}

	// Every event the producer sent is in exactly one log, at the index
	// it was given.
	seen := map[string]string{}
	sizes := map[string]uint64{}
	for _, l := range []struct {
		url, pub string
		v        *logkey.Key
	}{{urlA, pubA, keyA}, {urlB, pubB, keyB}} {
		lg, err := client.NewTileLog(l.url, l.v.Verifier, nil)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := lg.Checkpoint(ctxT(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		sizes[cp.Origin] = cp.Size
		for i := uint64(0); i < cp.Size; i++ {
			b, err := lg.Entry(ctxT(t, time.Minute), i, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			lf, err := leaf.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := seen[lf.EventID]; dup {
				t.Errorf("event %s is in %s and %s", lf.EventID, prev, cp.Origin)
			}
			seen[lf.EventID] = cp.Origin
			if s, ok := accepted[lf.EventID]; ok && (s.origin != cp.Origin || s.idx != i) {
				t.Errorf("event %s: acknowledged at %s/%d, found at %s/%d", lf.EventID, s.origin, s.idx, cp.Origin, i)
			}
		}
	}
	for id, s := range accepted {
		if seen[id] != s.origin {
			t.Errorf("acknowledged event %s (%s/%d) is not in the logs", id, s.origin, s.idx)
		}
	}
	t.Logf("%d events: %d on log 1, %d on log 2", total, total-onB, onB)

	// The forwarder delivered log 1 to its end, then log 2: every entry
	// of both exactly once, in order, each record with its own log's
	// origin and a receipt `stele verify` accepts with its own log's key.
	// (Log 2 may have integrated one more event than the loop above saw:
	// an append the producer's stop cut off after it was sent.)
	sizeA := sizes[keyA.Signer.Name()]
	lgB, err := client.NewTileLog(urlB, keyB.Verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sizeB uint64
	waitFor("the forwarder on log 2", time.Minute, func() bool {
		cp, err := lgB.Checkpoint(ctxT(t, time.Minute))
		if err != nil {
			return false
		}
		sizeB = cp.Size
		st := fwd.Status()
		return st.Origin == keyB.Signer.Name() && st.Sinks[0].Next == sizeB
	})
	names, _ := filepath.Glob(filepath.Join(fwdOut, "*.jsonl"))
	slices.Sort(names)
	var lines []string
	for _, n := range names {
		lines = append(lines, strings.Split(strings.TrimSuffix(string(mustRead(t, n)), "\n"), "\n")...)
	}
	if uint64(len(lines)) != sizeA+sizeB {
		t.Fatalf("the forwarder delivered %d records; the logs hold %d + %d", len(lines), sizeA, sizeB)
	}
	rdir := t.TempDir()
	for i, line := range lines {
		origin, idx, pub := keyA.Signer.Name(), uint64(i), pubA
		if uint64(i) >= sizeA {
			origin, idx, pub = keyB.Signer.Name(), uint64(i)-sizeA, pubB
		}
		var d struct {
			Origin  string
			EventID string `json:"event_id"`
			Index   uint64
			Receipt string
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		if d.Origin != origin || d.Index != idx || (idx < sizes[origin] && seen[d.EventID] != origin) {
			t.Fatalf("record %d is %s/%d (event %s, in log %s), want %s/%d", i, d.Origin, d.Index, d.EventID, seen[d.EventID], origin, idx)
		}
		rp := filepath.Join(rdir, fmt.Sprintf("%d.tlog-proof", i))
		os.WriteFile(rp, []byte(d.Receipt), 0o644)
		if code, stdout, stderr := runCLI("verify", "--log-key", pub, rp); code != 0 || !strings.Contains(stdout, "receipt OK") {
			t.Fatalf("stele verify of record %d (%s/%d): exit %d\n%s%s", i, origin, idx, code, stdout, stderr)
		}
	}
	// The explorers: log 1's serves its freeze statement for the browser
	// to verify (TestExplorerChainInChromium drives the page), log 2's
	// names log 1 as its predecessor with log 1's statement.
	var exA, exB struct {
		Size        uint64
		Frozen      string
		Predecessor struct{ Origin, Frozen string }
	}
	for _, x := range []struct {
		url string
		v   any
	}{{urlA, &exA}, {urlB, &exB}} {
		resp, err := http.Get(x.url + "ui/api/log")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(x.v)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("explorer %s: %d %v", x.url, resp.StatusCode, err)
		}
	}
	frozenA := string(mustRead(t, filepath.Join(dirA, "log", "frozen")))
	if exA.Size != sizeA || exA.Frozen != frozenA || !strings.Contains(exA.Frozen, "successor "+keyB.Signer.Name()) {
		t.Errorf("log 1's explorer: size %d, frozen %q", exA.Size, exA.Frozen)
	}
	if exB.Size < sizeB || exB.Predecessor.Origin != keyA.Signer.Name() || exB.Predecessor.Frozen != frozenA {
		t.Errorf("log 2's explorer: %+v", exB)
	}

	t.Logf("%v: monitor followed; checking the logs", time.Since(start))
	// Audit of the chain, from log 1.
	code, stdout, stderr := runCLI("audit", "--log", urlA, "--log-key", pubA, "--policy", policyPath, "--follow-chain")
	if code != 0 || strings.Count(stderr, "audit OK") != 2 || !strings.Contains(stderr, "audit.stele.test/log-1 is frozen at size") {
		t.Fatalf("audit --follow-chain: exit %d\n%s", code, stderr)
	}
	var chainRep struct {
		Logs []struct {
			Verified   bool
			Checkpoint struct{ Origin string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &chainRep); err != nil || len(chainRep.Logs) != 2 || !chainRep.Logs[1].Verified || chainRep.Logs[1].Checkpoint.Origin != keyB.Signer.Name() {
		t.Fatalf("audit --follow-chain report: %v\n%s", err, stdout)
	}
	// Without --follow-chain: log 1 alone, reported frozen.
	if code, _, stderr := runCLI("audit", "--log", urlA, "--log-key", pubA); code != 0 || !strings.Contains(stderr, "successor is audit.stele.test/log-2") {
		t.Fatalf("audit of the frozen log: exit %d\n%s", code, stderr)
	}

	// A receipt from log 1 verifies, and says the log is frozen.
	rpath := filepath.Join(t.TempDir(), "r.tlog-proof")
	if err := os.WriteFile(rpath, receiptA, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI("verify", "--log-key", pubA, "--policy", policyPath, "--log", urlA, rpath)
	if code != 0 || !strings.Contains(stdout, "receipt OK") || !strings.Contains(stdout, "log frozen: log audit.stele.test/log-1 is frozen") || !strings.Contains(stdout, "audit.stele.test/log-2") {
		t.Fatalf("verify of a receipt from the frozen log: exit %d\n%s%s", code, stdout, stderr)
	}
	// And `stele monitor`, started on log 1, follows to log 2 at once,
	// reporting the freeze; with the state of the monitor above, it
	// resumes on log 2.
	code, stdout, stderr = runCLI("monitor", "--log", urlA, "--log-key", pubA, "--policy", policyPath, "--once", "--state", monState)
	if code != 0 || !strings.Contains(stderr, "monitor: audit.stele.test/log-2 verified at size") || !strings.Contains(stdout, `"type":"log_frozen"`) {
		t.Fatalf("monitor --once from log 1: exit %d\n%s%s", code, stdout, stderr)
	}
}
