package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestRateLimits checks the per-identity limits over real gRPC: the policy's
// own rate, the server default, an exempt identity, a batch over the
// burst, a stream batch, and client.Submitter waiting out the RetryInfo.
func TestRateLimits(t *testing.T) {
	dir := t.TempDir()
	pf := writeFile(t, dir, "policy.json", policyJSON(t,
		map[string]any{"name": "limited", "token_sha256": tokenHash("tok-l"), "roles": []string{"producer"}, "sources": []string{"entra/l/*"}, "events_per_second": 0.5, "burst": 20},
		map[string]any{"name": "submitter", "token_sha256": tokenHash("tok-s"), "roles": []string{"producer"}, "sources": []string{"entra/s/*"}, "events_per_second": 10, "burst": 20},
		map[string]any{"name": "default", "token_sha256": tokenHash("tok-d"), "roles": []string{"producer"}, "sources": []string{"entra/d/*"}},
		map[string]any{"name": "exempt", "token_sha256": tokenHash("tok-x"), "roles": []string{"producer"}, "sources": []string{"entra/x/*"}, "events_per_second": 0},
	))
	as := startAuthServer(t, server.Config{AuthPolicyFile: pf, RateLimit: 0.2, RateBurst: 5})
	c, err := client.Dial(as.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	batch := func(src, prefix string, n int) []*stelev1.Event {
		evs := make([]*stelev1.Event, n)
		for i := range evs {
			evs[i] = event(src, fmt.Sprintf("%s-%d", prefix, i), 200)
		}
		return evs
	}
	appendAs := func(tok string, evs []*stelev1.Event) ([]*stelev1.AppendResult, error) {
		return c.Append(withToken(ctxT(t, 30*time.Second), tok), evs)
	}
	wantLimited := func(what string, err error) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "retry in") {
			t.Fatalf("%s: %v, want ResourceExhausted with a retry delay", what, err)
		}
		var hint time.Duration
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				hint = ri.RetryDelay.AsDuration()
			}
		}
		if hint <= 0 || hint > 30*time.Second {
			t.Fatalf("%s: RetryInfo delay %v", what, hint)
		}
	}

	// The identity's own limit: its burst passes, the next batch does not.
	rs, err := appendAs("tok-l", batch("entra/l/audit", "a", 20))
	if err != nil || rs[0].Code != 0 || rs[0].Index != 0 {
		t.Fatalf("first burst: %v %v", rs, err)
	}
	_, err = appendAs("tok-l", batch("entra/l/audit", "b", 5))
	wantLimited("over the identity's rate", err)
	// A batch over the burst can never pass.
	_, err = appendAs("tok-s", batch("entra/s/audit", "c", 21))
	wantCode(t, "batch over the burst", unwrap(err), codes.InvalidArgument)
	// The server default (1/s, burst 5) for an identity without its own.
	// (Its own ids: the same record under two tenants is refused as a
	// wrong-tenant copy, TestSameRecordUnderAnotherSource.)
	if _, err := appendAs("tok-d", batch("entra/d/audit", "da", 5)); err != nil {
		t.Fatal(err)
	}
	_, err = appendAs("tok-d", batch("entra/d/audit", "db", 1))
	wantLimited("over the default rate", err)
	// Exempt: no limit at all.
	for i := range 5 {
		if _, err := appendAs("tok-x", batch("entra/x/audit", fmt.Sprint(i), 50)); err != nil {
			t.Fatalf("exempt identity: %v", err)
		}
	}
	// Nothing of the refused batches was written: 20 + 5 + 250 entries.
	rs, err = appendAs("tok-x", batch("entra/x/audit", "last", 1))
	if err != nil || rs[0].Index != 275 {
		t.Fatalf("next index %v (%v), want 275: a refused batch was written", rs, err)
	}

	// A stream batch over the limit: every event gets the refusal.
	stream, err := c.Log.AppendStream(withToken(ctxT(t, 30*time.Second), "tok-d"))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stelev1.AppendStreamRequest{BatchId: 1, Events: batch("entra/d/audit", "s", 3)}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if codes.Code(r.Code) != codes.ResourceExhausted || !strings.Contains(r.Message, "rate limit") {
			t.Fatalf("stream batch over the limit: %v", r)
		}
	}
	stream.CloseSend()

	// client.Submitter waits the server's RetryInfo delay and gets every
	// event in: 60 events at 10/s, in batches of 20.
	tc, err := client.Dial(as.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(plainToken("tok-s")))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	var mu sync.Mutex
	var waits []time.Duration
	sub := &client.Submitter{Client: tc, BatchEvents: 20, MaxAttempts: 20, InitialBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second,
		OnRetry: func(_ int, wait time.Duration, _ error) { mu.Lock(); waits = append(waits, wait); mu.Unlock() }}
	start := time.Now()
	out, err := sub.Submit(ctxT(t, time.Minute), batch("entra/s/audit", "sub", 60))
	if err != nil {
		t.Fatalf("submitter: %v", err)
	}
	for i, r := range out {
		if !r.OK() {
			t.Fatalf("event %d: %v", i, r)
		}
	}
	if len(waits) == 0 {
		t.Fatal("the submitter never had to wait: the limit did not apply")
	}
	for _, w := range waits {
		// A 10 s backoff would mean the RetryInfo was ignored.
		if w > 3*time.Second {
			t.Errorf("submitter waited %v, not the server's retry hint", w)
		}
	}
	t.Logf("60 events at 10 events/s: %v, %d retries", time.Since(start).Round(time.Millisecond), len(waits))
}

func unwrap(err error) error {
	for err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
	return err
}

// plainToken sends a bearer token over a plaintext loopback connection
// (client.WithToken insists on TLS).
type plainToken string

func (p plainToken) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(p)}, nil
}

func (plainToken) RequireTransportSecurity() bool { return false }

// TestLimitConfig: limits that contradict each other are refused at start,
// naming the setting.
func TestLimitConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{MaxRecordBytes: 1 << 20, MaxRequestBytes: 1 << 20}, "must hold one record"},
		{server.Config{RateLimit: 5}, "rate burst 0"},
		{server.Config{RateLimit: -1, RateBurst: 1}, "rate limit -1"},
		{server.Config{MaxRequestBytes: 8 << 20, MaxInflightBytes: 4 << 20}, "max in-flight bytes"},
	} {
		c.cfg.DataDir = t.TempDir()
		c.cfg.Logger = quietLogger()
		s, err := server.New(context.Background(), c.cfg)
		if err == nil {
			s.Close(context.Background())
			t.Errorf("%+v accepted", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
