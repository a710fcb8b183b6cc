package forwarder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
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

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/forwarder/record"
	"github.com/stele-dev/stele/server"
)

// startLogAt is startLog for a log with its own origin, served at the
// given addresses ("127.0.0.1:0" for any) so that it can be stopped and
// served again where it was. stop closes it (and is idempotent).
func startLogAt(t testing.TB, dir, origin, grpcAddr, httpAddr string) (l *testLog, stop func()) {
	t.Helper()
	srv, err := server.New(context.Background(), server.Config{DataDir: dir, Origin: origin, CheckpointInterval: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCOptions()...)
	srv.RegisterGRPC(gs)
	go gs.Serve(gl)
	hs := &http.Server{Handler: srv.HTTPHandler()}
	go hs.Serve(hl)
	c, err := client.Dial(gl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		c.Close()
		gs.Stop()
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("closing log %s: %v", origin, err)
		}
	}
	t.Cleanup(stop)
	return &testLog{dir: dir, grpcAddr: gl.Addr().String(), httpURL: "http://" + hl.Addr().String() + "/",
		keyFile: filepath.Join(dir, "log.pub"), cli: c, verifier: v}, stop
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKillForwarderAcrossRotation runs the real stele-forwarder binary on a
// log that is frozen and continued by a successor log while the forwarder
// runs (docs/operations.md, "Rotating to a new log"), and SIGKILLs it at
// random moments -torture-cycles times around the boundary. In the end the
// files sink holds every entry of the frozen log, then every entry of the
// successor, each exactly once, in order, each record carrying its own
// log's origin and a receipt that verifies against its own log's key (the
// successor's key learnt from the signed freeze statement).
func TestKillForwarderAcrossRotation(t *testing.T) {
	bin := forwarderBinary(t)
	t0 := time.Now()
	dirA, dirB := t.TempDir(), t.TempDir()
	a, stopA := startLogAt(t, dirA, "a.stele.test/log", "127.0.0.1:0", "127.0.0.1:0")
	b, _ := startLogAt(t, dirB, "b.stele.test/log", "127.0.0.1:0", "127.0.0.1:0")
	evs := goldenEvents(t, 500)
	sizeA := slices.Max(a.appendAll(t, evs[:200])) + 1
	var sizeB uint64

	out := filepath.Join(t.TempDir(), "files")
	state := t.TempDir()
	set := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	cfgPath := filepath.Join(t.TempDir(), "forwarder.json")
	os.WriteFile(cfgPath, set(map[string]any{
		"log":           map[string]any{"url": a.httpURL, "key_file": a.keyFile},
		"server":        map[string]any{"address": a.grpcAddr},
		"successors":    map[string]any{"b.stele.test/log": map[string]any{"address": b.grpcAddr}},
		"state_dir":     state,
		"poll_interval": "100ms",
		"batch_size":    20,
		"max_backoff":   "500ms",
		"sinks":         []any{map[string]any{"name": "files", "type": "files", "settings": set(map[string]any{"dir": out, "max_bytes": 100000})}},
	}), 0o600)
	logs := &lockedBuf{}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		return cmd
	}
	where := func() string {
		cs, _ := os.ReadFile(filepath.Join(state, "chain.json"))
		if len(cs) == 0 {
			return fmt.Sprintf("on log a at %d", cursorAt(t, state, "files"))
		}
		return fmt.Sprintf("on log b at %d", cursorAt(t, filepath.Join(state, "logs", "b.stele.test%2Flog"), "files"))
	}

	// The rotation, while the forwarder runs and is killed: more events on
	// log a, then a is stopped, frozen naming b, and served again (read
	// only, by itself); b takes the rest.
	rotated := make(chan error, 1)
	go func() {
		rotated <- func() error {
			time.Sleep(300 * time.Millisecond)
			sizeA = slices.Max(a.appendAll(t, evs[200:300])) + 1
			stopA()
			bkey, err := os.ReadFile(b.keyFile)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := server.Freeze(ctx, server.Config{DataDir: dirA, Logger: quiet(), CheckpointInterval: 100 * time.Millisecond},
				server.Successor{Key: strings.Fields(string(bkey))[0], URL: b.httpURL}); err != nil {
				return err
			}
			startLogAt(t, dirA, "", a.grpcAddr, strings.TrimSuffix(strings.TrimPrefix(a.httpURL, "http://"), "/"))
			sizeB = slices.Max(b.appendAll(t, evs[300:500])) + 1
			return nil
		}()
	}()
	for c := range *tortureCycles + 2 {
		cmd := start()
		// Kill it while it delivers: once its position moved (or after
		// 5s), at a random moment within the next 300ms.
		before := where()
		for wait := time.Now().Add(5 * time.Second); where() == before && time.Now().Before(wait); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("%v: cycle %d: killed %s", time.Since(t0).Round(time.Millisecond), c, where())
	}
	if err := <-rotated; err != nil {
		t.Fatalf("rotating log a to b: %v", err)
	}
	t.Logf("%v: rotated", time.Since(t0).Round(time.Millisecond))
	started := strings.Count(logs.String(), `"msg":"forwarding"`)
	cmd := start()
	deadline := time.Now().Add(2 * time.Minute)
	bState := filepath.Join(state, "logs", "b.stele.test%2Flog")
	for cursorAt(t, bState, "files") < sizeB {
		if time.Now().After(deadline) {
			t.Fatalf("not delivered to the end of log b: %s\n%s", where(), logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%v: delivered", time.Since(t0).Round(time.Millisecond))
	// Stop it once it runs (it may have had nothing left to deliver).
	for strings.Count(logs.String(), `"msg":"forwarding"`) == started && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("forwarder did not stop cleanly on SIGTERM: %v", err)
	}

	lines := readLines(t, out)
	if uint64(len(lines)) != sizeA+sizeB {
		t.Fatalf("files: %d lines for %d entries of log a and %d of log b", len(lines), sizeA, sizeB)
	}
	for i, line := range lines {
		origin, idx, v := "a.stele.test/log", uint64(i), a.verifier
		if uint64(i) >= sizeA {
			origin, idx, v = "b.stele.test/log", uint64(i)-sizeA, b.verifier
		}
		var d struct {
			Origin string
			Index  uint64
		}
		if err := json.Unmarshal(line, &d); err != nil || d.Origin != origin || d.Index != idx {
			t.Fatalf("files: line %d holds %s/%d, want %s/%d (%v)", i, d.Origin, d.Index, origin, idx, err)
		}
		if _, err := record.Verify(line, v, nil); err != nil {
			t.Fatalf("files: line %d (%s/%d): %v", i, origin, idx, err)
		}
	}
	// The state names the log followed now, with the key the freeze
	// statement gave; the frozen log's cursor stays at its final size.
	if got := cursorAt(t, state, "files"); got != sizeA {
		t.Errorf("log a's cursor is %d, want its final size %d", got, sizeA)
	}
	cs, err := os.ReadFile(filepath.Join(state, "chain.json"))
	if err != nil || !strings.Contains(string(cs), `"origin":"b.stele.test/log"`) {
		t.Errorf("chain.json: %s %v", cs, err)
	}
}
