package server_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// diagnostic wraps a Graph directoryAudit record in the envelope Entra's
// diagnostic settings (Event Hub, storage) deliver it in.
func diagnostic(tenant string, graph []byte) []byte {
	return fmt.Appendf(nil, `{"time":"2026-11-25T10:00:00.1234567Z","resourceId":"/tenants/%s/providers/Microsoft.aadiam","operationName":"Add member to role","operationVersion":"1.0","category":"AuditLogs","tenantId":%q,"resultSignature":"None","durationMs":0,"correlationId":"c0ffee00-0000-4000-8000-000000000000","Level":4,"properties":%s}`, tenant, tenant, graph)
}

// TestSameEventFromGraphAndDiagnostics: backfilling from a Graph export
// while streaming diagnostic settings delivers each Entra event twice, in
// two formats. The second copy is a duplicate of the entry logged (its
// index), not AlreadyExists; different content under the same id still
// is, and so is a copy naming another tenant.
func TestSameEventFromGraphAndDiagnostics(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	const tenant = "11111111-1111-4111-8111-111111111111"
	src := "entra/" + tenant + "/audit"
	graph := event(src, "dup-1", 600)
	first := mustAppend(t, ts.cli, []*stelev1.Event{graph})[0]

	diag := event(src, "dup-1", 600)
	diag.Format, diag.Record = "entra.diagnostic", diagnostic(tenant, graph.Record)
	otherTenant := event(src, "dup-1", 600)
	otherTenant.Format, otherTenant.Record = "entra.diagnostic", diagnostic("22222222-2222-4222-8222-222222222222", graph.Record)
	changed := event(src, "dup-1", 600)
	changed.Format, changed.Record = "entra.diagnostic", diagnostic(tenant, bytes.Replace(graph.Record, []byte(`"result":"success"`), []byte(`"result":"failure"`), 1))
	if bytes.Equal(changed.Record, diag.Record) {
		t.Fatal("the changed record is not changed")
	}

	rs, err := ts.cli.Append(ctxT(t, 30e9), []*stelev1.Event{diag, changed, otherTenant})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[0]; r.Code != 0 || !r.Duplicate || r.Index != first.Index {
		t.Errorf("the diagnostic copy of a logged Graph event: %v, want a duplicate of index %d", r, first.Index)
	}
	for i, what := range []string{"", "a diagnostic record with another result", "a diagnostic record of another tenant"} {
		if i == 0 {
			continue
		}
		if r := rs[i]; codes.Code(r.Code) != codes.AlreadyExists || r.Index != first.Index {
			t.Errorf("%s under the same id: %v, want AlreadyExists naming index %d", what, r, first.Index)
		}
	}
	// And the other way round: a Graph copy of a logged diagnostic event.
	diag2 := event(src, "dup-2", 600)
	diag2.Format, diag2.Record = "entra.diagnostic", diagnostic(tenant, record("dup-2", 600))
	second := mustAppend(t, ts.cli, []*stelev1.Event{diag2})[0]
	if r := mustAppend(t, ts.cli, []*stelev1.Event{event(src, "dup-2", 600)})[0]; !r.Duplicate || r.Index != second.Index {
		t.Errorf("the Graph copy of a logged diagnostic event: %v, want a duplicate of index %d", r, second.Index)
	}
}

// TestSameRecordUnderAnotherSource: a provider record whose exact bytes are
// already logged under another source (a Graph export re-imported with the
// wrong --tenant: Graph records do not name their tenant) is refused with
// AlreadyExists naming the logged entry and its source, on both backends'
// code path (the posix store here; the MySQL one in the aws tests). A
// different record, and a generic json record repeated in two streams, are
// admitted.
func TestSameRecordUnderAnotherSource(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	right := "entra/11111111-1111-4111-8111-111111111111/audit"
	wrong := "entra/22222222-2222-4222-8222-222222222222/audit"
	first := mustAppend(t, ts.cli, []*stelev1.Event{event(right, "graph-1", 600)})[0]

	generic := func(src string) *stelev1.Event {
		return &stelev1.Event{Source: src, EventId: "j-1", Format: "json", Kind: "app.event",
			EventTime: event(src, "x", 10).EventTime, Record: []byte(`{"what":"the same bytes in two streams"}`)}
	}
	mustAppend(t, ts.cli, []*stelev1.Event{generic("app/one/events")})
	rs, err := ts.cli.Append(ctxT(t, 30e9), []*stelev1.Event{
		event(wrong, "graph-1", 600), // the same bytes under another tenant
		event(wrong, "graph-2", 600), // another record
		generic("app/two/events"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[0]; codes.Code(r.Code) != codes.AlreadyExists || r.Index != first.Index ||
		!strings.Contains(r.Message, "already logged at index 0 under source \""+right+"\"") {
		t.Errorf("the same record under another source: %v, want AlreadyExists naming index %d and %s", r, first.Index, right)
	}
	if r := rs[1]; r.Code != 0 || r.Duplicate {
		t.Errorf("another record under the second source: %v, want admitted", r)
	}
	if r := rs[2]; r.Code != 0 || r.Duplicate {
		t.Errorf("a generic json record repeated in another stream: %v, want admitted", r)
	}
	// Resubmitting the refused copy is refused again, not admitted later.
	if r := mustAppendRaw(t, ts, event(wrong, "graph-1", 600)); codes.Code(r.Code) != codes.AlreadyExists {
		t.Errorf("the refused copy resubmitted: %v", r)
	}
}

func mustAppendRaw(t *testing.T, ts *testServer, ev *stelev1.Event) *stelev1.AppendResult {
	t.Helper()
	rs, err := ts.cli.Append(ctxT(t, 30e9), []*stelev1.Event{ev})
	if err != nil {
		t.Fatal(err)
	}
	return rs[0]
}
