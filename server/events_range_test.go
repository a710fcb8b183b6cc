package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestGetEvents checks the range read against GetEvent entry by entry, its
// authorisation (roles, read grants), erased entries, the cut at the
// published size and the bounds of a call.
func TestGetEvents(t *testing.T) {
	dir := t.TempDir()
	pf := writeFile(t, dir, "policy.json", []byte(`{"identities": [
    {"name": "collector", "token_sha256": "`+tokenHash("tok-p")+`", "roles": ["producer"], "sources": ["entra/*/*"]},
    {"name": "t1-reader", "token_sha256": "`+tokenHash("tok-r1")+`", "roles": ["reader"], "read_sources": ["entra/t1/*"]},
    {"name": "reader", "token_sha256": "`+tokenHash("tok-r")+`", "roles": ["reader"]},
    {"name": "admin", "token_sha256": "`+tokenHash("tok-a")+`", "roles": ["admin"]}
  ]}`))
	as := startAuthServer(t, server.Config{AuthPolicyFile: pf})
	c, err := client.Dial(as.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := func(tok string) context.Context {
		c := ctxT(t, 30*time.Second)
		if tok == "" {
			return c
		}
		return withToken(c, tok)
	}
	// Entries 0-2 are of entra/t1/audit, 3-5 of entra/t2/audit; erasing 1
	// appends its erasure event at 6.
	var evs []*stelev1.Event
	for i := range 6 {
		src := "entra/t1/audit"
		if i >= 3 {
			src = "entra/t2/audit"
		}
		evs = append(evs, event(src, "ge-"+string(rune('a'+i)), 400))
	}
	rs, err := c.Append(ctx("tok-p"), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Code != 0 || r.Index != uint64(i) {
			t.Fatalf("append %d: %v", i, r)
		}
	}
	if _, err := c.Erase(ctx("tok-a"), 1, "GDPR Art. 17", "REQ-1"); err != nil {
		t.Fatal(err)
	}
	// GetEvent waits until a checkpoint covers the erasure event.
	want := make([]*stelev1.GetEventResponse, 7)
	for i := range want {
		ev, err := c.Event(ctx("tok-r"), uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		ev.Proof = nil
		want[i] = ev
	}
	if want[1].Tombstone == nil || want[6].Tombstone != nil {
		t.Fatalf("entry 1 should be erased and 6 not: %v, %v", want[1].Tombstone, want[6].Tombstone)
	}

	for _, tc := range []struct {
		name     string
		tok      string
		start    uint64
		count    uint32
		first, n int // the entries answered
		code     codes.Code
		msg      string
		only     bool // payload_only
	}{
		{name: "all", tok: "tok-r", start: 0, count: 7, first: 0, n: 7},
		{name: "cut at the published size", tok: "tok-r", start: 2, count: 1000, first: 2, n: 5},
		{name: "payload only", tok: "tok-r", start: 0, count: 7, first: 0, n: 7, only: true},
		{name: "one erased", tok: "tok-r", start: 1, count: 1, first: 1, n: 1},
		{name: "admin reads", tok: "tok-a", start: 0, count: 7, first: 0, n: 7},
		{name: "granted sources only", tok: "tok-r1", start: 0, count: 3, first: 0, n: 3},
		{name: "a source not granted", tok: "tok-r1", start: 0, count: 7, code: codes.PermissionDenied, msg: `"entra/t2/audit"`},
		{name: "producer", tok: "tok-p", start: 0, count: 1, code: codes.PermissionDenied, msg: "lacks the reader role"},
		{name: "no credentials", start: 0, count: 1, code: codes.Unauthenticated},
		{name: "unknown token", tok: "tok-x", start: 0, count: 1, code: codes.Unauthenticated},
		{name: "count zero", tok: "tok-r", start: 0, count: 0, code: codes.InvalidArgument, msg: "ask for fewer"},
		{name: "count over the limit", tok: "tok-r", start: 0, count: 1001, code: codes.InvalidArgument, msg: "ask for fewer"},
		{name: "past the end", tok: "tok-r", start: 100, count: 1, code: codes.NotFound, msg: "no entry at index 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Log.GetEvents(ctx(tc.tok), &stelev1.GetEventsRequest{Start: tc.start, Count: tc.count, PayloadOnly: tc.only})
			if tc.code != codes.OK {
				wantCode(t, tc.name, err, tc.code)
				if err != nil && !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q does not say %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Events) != tc.n || resp.TreeSize < 7 {
				t.Fatalf("%d events (tree size %d), want %d", len(resp.Events), resp.TreeSize, tc.n)
			}
			for i, ev := range resp.Events {
				w := want[tc.first+i]
				if tc.only {
					if w.Tombstone == nil && (len(w.Record) == 0 || w.Format == "" || len(w.Payload) == 0) {
						t.Fatalf("entry %d: GetEvent answered no record, format or payload: the case checks nothing", tc.first+i)
					}
					w = proto.Clone(w).(*stelev1.GetEventResponse)
					w.Record, w.Format, w.Normalized = nil, "", nil
				}
				if !proto.Equal(ev, w) {
					t.Errorf("entry %d: GetEvents answered\n%v\nGetEvent\n%v", tc.first+i, ev, w)
				}
			}
		})
	}
}

// TestGetEventsBounded checks that a range whose payloads pass the
// response bound comes in several answers, each under it, none lost.
func TestGetEventsBounded(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	var evs []*stelev1.Event
	for i := range 12 {
		evs = append(evs, event("entra/t1/audit", "big-"+string(rune('a'+i)), 900<<10))
	}
	mustAppend(t, ts.cli, evs)
	ctx := ctxT(t, time.Minute)
	var got []*stelev1.GetEventResponse
	calls := 0
	for uint64(len(got)) < uint64(len(evs)) {
		resp, err := ts.cli.Log.GetEvents(ctx, &stelev1.GetEventsRequest{Start: uint64(len(got)), Count: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Events) == 0 {
			t.Fatal("an empty answer")
		}
		if n := proto.Size(resp); n > 4<<20 {
			t.Errorf("answer of %d bytes, over gRPC's default 4 MiB receive limit", n)
		}
		got = append(got, resp.Events...)
		calls++
	}
	if calls < 3 {
		t.Errorf("%d calls for 12 events of 900 KiB: the response bound did not cut them", calls)
	}
	for i, ev := range got {
		if ev.Index != uint64(i) || string(ev.Record) != string(evs[i].Record) {
			t.Fatalf("answer %d is entry %d, record of %d bytes", i, ev.Index, len(ev.Record))
		}
	}
	// The client's method gives the same, from any start.
	es, err := ts.cli.Events(ctx, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[0].Index != 5 {
		t.Fatalf("client Events(5, 3): %d answers", len(es))
	}
}
