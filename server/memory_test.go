package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// rawMsg is a message sent exactly as encoded by the test (rawCodec), so
// that a test can send what no well-behaved client would: millions of
// empty events, invalid UTF-8 in a string field.
type rawMsg struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(*rawMsg); ok {
		return m.b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(*rawMsg); ok {
		m.b = append([]byte(nil), data...)
		return nil
	}
	return proto.Unmarshal(data, v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// emptyEvents is an encoded AppendRequest (field 1) or AppendStreamRequest
// (field 2) of about size bytes of empty events: 2 bytes each on the wire,
// a few hundred decoded.
func emptyEvents(field byte, size int) []byte {
	b := bytes.Repeat([]byte{field<<3 | 2, 0}, size/2)
	if field == 2 {
		b = append([]byte{0x08, 0x01}, b...) // batch_id 1
	}
	return b
}

func rawConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// vmRSS is the current resident set size of process pid.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestMemoryUnderHostileAppends reproduces issue 13's memory attack
// against the real binary with an access policy: unauthenticated unary
// Appends of 24 MiB of empty events (2 bytes each on the wire, about 110×
// that decoded), the same from an authenticated producer, and an
// authenticated AppendStream flood of 8 MiB batches of empty events, all
// at once while a well-behaved producer appends. The server's peak RSS
// must stay within 2× --max-inflight-bytes + 150 MiB and the producer must
// keep at least half its solo rate. It prints the numbers (go test
// ./server -run TestMemoryUnderHostileAppends -v). A watchdog ends the
// attack (and fails) if the server passes 4 GiB, to spare the machine.
func TestMemoryUnderHostileAppends(t *testing.T) {
	dir := t.TempDir()
	pol := policyJSON(t,
		map[string]any{"name": "steady", "token_sha256": tokenHash("tok-steady"), "roles": []string{"producer"}, "sources": []string{"entra/steady/audit"}},
		map[string]any{"name": "hostile", "token_sha256": tokenHash("tok-hostile"), "roles": []string{"producer"}, "sources": []string{"entra/hostile/audit"}},
	)
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policyFile, pol, 0o600); err != nil {
		t.Fatal(err)
	}
	const inflight = 64 << 20
	const ceiling = 2*inflight + 150<<20
	p := startProcess(t, filepath.Join(dir, "data"), "--auth-policy", policyFile,
		"--max-request-bytes", strconv.Itoa(32<<20), "--max-inflight-bytes", strconv.Itoa(inflight))
	defer p.cli.Close()
	pid := p.cmd.Process.Pid

	var seq atomic.Int64
	steady := func(d time.Duration) (rate float64, refused int64) {
		var admitted, bad atomic.Int64
		var calls sync.WaitGroup
		start := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for time.Since(start) < d {
			<-tick.C
			evs := make([]*stelev1.Event, 20)
			for i := range evs {
				evs[i] = event("entra/steady/audit", fmt.Sprintf("s%d", seq.Add(1)), 1024)
			}
			calls.Go(func() {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-steady"), 10*time.Second)
				defer cancel()
				// A well-behaved producer retries a pushback after the
				// hint, as client.Submitter does.
				for {
					rs, err := p.cli.Append(ctx, evs)
					if status.Code(err) == codes.ResourceExhausted && ctx.Err() == nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					if err != nil {
						bad.Add(int64(len(evs)))
						return
					}
					for _, r := range rs {
						if r.Code == 0 {
							admitted.Add(1)
						} else {
							bad.Add(1)
						}
					}
					return
				}
			})
		}
		calls.Wait()
		return float64(admitted.Load()) / time.Since(start).Seconds(), bad.Load()
	}

	const phase = 3 * time.Second
	solo, soloRefused := steady(phase)
	hwmSolo := vmHWM(t, pid)

	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	var peakSeen atomic.Int64
	wg.Go(func() {
		for !stopped() {
			if r := vmRSS(pid); r > 4<<30 {
				peakSeen.Store(r)
				halt()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	unary := emptyEvents(1, 24<<20)
	stream := emptyEvents(2, 8<<20)
	codesSeen := map[string]*atomic.Int64{}
	var codesMu sync.Mutex
	count := func(who string, err error) {
		k := who + ":" + status.Code(err).String()
		codesMu.Lock()
		c := codesSeen[k]
		if c == nil {
			c = new(atomic.Int64)
			codesSeen[k] = c
		}
		codesMu.Unlock()
		c.Add(1)
	}
	// Unauthenticated unary Appends, 2 callers on their own connections.
	for range 2 {
		conn := rawConn(t, p.grpcAddr)
		wg.Go(func() {
			for !stopped() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := conn.Invoke(ctx, stelev1.LogService_Append_FullMethodName, &rawMsg{unary}, &rawMsg{})
				cancel()
				count("anonymous unary", err)
			}
		})
	}
	// The same from an authenticated producer, 2 callers.
	for range 2 {
		conn := rawConn(t, p.grpcAddr)
		wg.Go(func() {
			for !stopped() {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-hostile"), 5*time.Second)
				err := conn.Invoke(ctx, stelev1.LogService_Append_FullMethodName, &rawMsg{unary}, &rawMsg{})
				cancel()
				count("producer unary", err)
			}
		})
	}
	// An authenticated AppendStream flood, 2 streams sending batches as fast
	// as they can and reading every answer.
	for range 2 {
		conn := rawConn(t, p.grpcAddr)
		wg.Go(func() {
			for !stopped() {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), "tok-hostile"), 5*time.Second)
				err := func() error {
					st, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "AppendStream", ServerStreams: true, ClientStreams: true}, stelev1.LogService_AppendStream_FullMethodName)
					if err != nil {
						return err
					}
					go func() {
						for !stopped() && st.SendMsg(&rawMsg{stream}) == nil {
						}
						st.CloseSend()
					}()
					for {
						if err := st.RecvMsg(&rawMsg{}); err != nil {
							return err
						}
					}
				}()
				cancel()
				if !errors.Is(err, io.EOF) {
					count("producer stream", err)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // let the attack build up
	during, duringRefused := steady(phase)
	halt()
	wg.Wait()
	hwm := vmHWM(t, pid)
	if r := peakSeen.Load(); r > hwm {
		hwm = r
	}

	fmt.Printf("memory: steady producer alone %.0f events/s (%d refused); under attack %.0f events/s (%d refused)\n", solo, soloRefused, during, duringRefused)
	codesMu.Lock()
	for k, v := range codesSeen {
		fmt.Printf("memory: attack calls %s: %d\n", k, v.Load())
	}
	codesMu.Unlock()
	fmt.Printf("memory: server peak RSS (VmHWM) %d MiB after the solo run, %d MiB after the attack; the ceiling is 2 × %d MiB + 150 MiB = %d MiB\n",
		hwmSolo>>20, hwm>>20, inflight>>20, ceiling>>20)

	if peakSeen.Load() > 0 {
		t.Errorf("the server passed 4 GiB (%d MiB) under the attack; the attack was stopped", peakSeen.Load()>>20)
	}
	if hwm > ceiling {
		t.Errorf("server peak RSS %d MiB, over the ceiling of %d MiB", hwm>>20, ceiling>>20)
	}
	if during < solo/2 {
		t.Errorf("the steady producer's rate fell from %.0f to %.0f events/s under the attack", solo, during)
	}
	if p.cmd.ProcessState == nil {
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("the server died under the attack: %v\n%s", err, p.logs)
		}
	}
}
