package server_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// TestIdentityGoldenRoundTrip submits every golden identity fixture through
// the real server with event_id, kind and event_time left empty, then reads
// each back with GetEvent: the raw bytes are byte-identical to the input,
// the leaf carries the normaliser's id, kind and time, and the stored
// normalised view equals the golden one. A second delivery of every record
// is a duplicate of the same index.
func TestIdentityGoldenRoundTrip(t *testing.T) {
	paths, err := filepath.Glob("../identity/testdata/golden/*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	type fixture struct {
		path, format string
		record       []byte
	}
	var fs []fixture
	var evs []*stelev1.Event
	for _, p := range paths {
		if strings.HasSuffix(p, ".golden.json") {
			continue
		}
		rec, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		format := filepath.Base(filepath.Dir(p))
		view, err := identity.Normalize(format, rec)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		source := identity.SourceName(view)
		if source == "" {
			source = "test/" + format
		}
		fs = append(fs, fixture{p, format, rec})
		ev := &stelev1.Event{Source: source, Format: format, Record: rec, Origin: "file=" + filepath.Base(p) + " record=1"}
		if view.EventTime == nil {
			// The record has no time of its own; the producer must give one.
			ev.EventTime = timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
		}
		evs = append(evs, ev)
	}
	if len(evs) < 40 {
		t.Fatalf("only %d fixtures", len(evs))
	}
	ts := startServer(t, t.TempDir(), server.Config{})
	rs := mustAppend(t, ts.cli, evs)
	again := mustAppend(t, ts.cli, evs)
	for i, f := range fs {
		if !again[i].Duplicate || again[i].Index != rs[i].Index {
			t.Errorf("%s: redelivery got %+v, want a duplicate of %d", f.path, again[i], rs[i].Index)
		}
		got, err := ts.cli.Event(ctxT(t, time.Minute), rs[i].Index)
		if err != nil {
			t.Fatalf("%s: GetEvent: %v", f.path, err)
		}
		if !bytes.Equal(got.Record, f.record) {
			t.Errorf("%s: raw record in the log differs from the input", f.path)
		}
		p, err := payload.Unmarshal(got.Payload)
		if err != nil || !bytes.Equal(p.Record, f.record) || p.Format != f.format {
			t.Errorf("%s: payload %v, record/format differ", f.path, err)
			continue
		}
		stored, err := identity.Unmarshal(p.Normalized, p.Format, p.Record)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		if stored.Origin != evs[i].Origin {
			t.Errorf("%s: origin %q, want %q", f.path, stored.Origin, evs[i].Origin)
		}
		stored.Origin = ""
		js, err := identity.JSON(stored)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(f.path, ".json") + ".golden.json")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, want) {
			t.Errorf("%s: stored normalised view differs from the golden one:\n%s", f.path, js)
		}
		l, err := leaf.Unmarshal(got.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		timeOK := stored.EventTime == nil || l.EventTime.Equal(stored.EventTime.AsTime())
		if l.Kind != stored.Kind || l.EventID != stored.NativeId || !timeOK {
			t.Errorf("%s: leaf kind %q id %q time %s; normaliser says %q %q %s", f.path, l.Kind, l.EventID, l.EventTime, stored.Kind, stored.NativeId, stored.GetEventTime().AsTime())
		}
	}
}

// TestIdentityAdmission: what the server does with normalised formats.
func TestIdentityAdmission(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	read := func(name string) []byte {
		b, err := os.ReadFile("../identity/testdata/golden/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	audit := read("entra.directoryAudit/role-member-add-direct.json")
	unknown := read("entra.directoryAudit/unknown-activity.json")
	noID := read("json/without-id.json")
	cases := []struct {
		name string
		ev   *stelev1.Event
		code codes.Code
		msg  string
	}{
		{"kind and id given and right", &stelev1.Event{Source: "t/a", Format: "entra.directoryAudit", Record: audit, Kind: "directory.role.member.add", EventId: "Directory_00000000-0000-4000-8000-000000000101_ABCDE_123456789"}, codes.OK, ""},
		{"wrong kind", &stelev1.Event{Source: "t/b", Format: "entra.directoryAudit", Record: audit, Kind: "user.create"}, codes.InvalidArgument, `kind "user.create" differs from "directory.role.member.add"`},
		{"wrong id", &stelev1.Event{Source: "t/b", Format: "entra.directoryAudit", Record: audit, EventId: "x"}, codes.InvalidArgument, `event_id "x" differs from the record's own id "Directory_`},
		{"unparseable", &stelev1.Event{Source: "t/b", Format: "entra.directoryAudit", Record: []byte(`{"id":"1","activityDateTime":"yesterday"}`)}, codes.InvalidArgument, `activityDateTime "yesterday" is not an RFC 3339 time`},
		{"wrong shape", &stelev1.Event{Source: "t/b", Format: "entra.diagnostic", Record: []byte(`{"id":"1","category":"AuditLogs"}`)}, codes.InvalidArgument, "properties is missing"},
		{"no time anywhere", &stelev1.Event{Source: "t/b", Format: "json", Record: noID}, codes.InvalidArgument, "event_time is missing and the json record has no time of its own"},
		{"unknown activity admitted", &stelev1.Event{Source: "t/c", Format: "entra.directoryAudit", Record: unknown}, codes.OK, ""},
		{"bad origin", &stelev1.Event{Source: "t/d", Format: "entra.directoryAudit", Record: audit, Origin: "file=a\nrecord=1"}, codes.InvalidArgument, "origin has a non-printable character"},
	}
	for _, c := range cases {
		rs, err := ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{c.ev})
		if err != nil {
			t.Fatal(err)
		}
		if codes.Code(rs[0].Code) != c.code || !strings.Contains(rs[0].Message, c.msg) {
			t.Errorf("%s: %v %q, want %v containing %q", c.name, codes.Code(rs[0].Code), rs[0].Message, c.code, c.msg)
		}
		if c.name == "unknown activity admitted" && rs[0].Code == 0 {
			got, err := ts.cli.Event(ctxT(t, time.Minute), rs[0].Index)
			if err != nil {
				t.Fatal(err)
			}
			v, err := identity.Unmarshal(got.Normalized, got.Format, got.Record)
			if err != nil {
				t.Fatal(err)
			}
			if v.Kind != "entra.audit.unknown" || len(v.Flags) != 1 || v.Flags[0] != identity.FlagUnknownActivity {
				t.Errorf("unknown activity stored as kind %q flags %v", v.Kind, v.Flags)
			}
		}
	}
	// A record without an id gets its content id when the producer gives
	// none, and a redelivery of it is a duplicate.
	ev := &stelev1.Event{Source: "t/e", Format: "json", Record: noID, Kind: "vpn.connect", EventTime: timestamppb.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))}
	r1 := mustAppend(t, ts.cli, []*stelev1.Event{ev})
	r2 := mustAppend(t, ts.cli, []*stelev1.Event{ev})
	if !r2[0].Duplicate || r2[0].Index != r1[0].Index {
		t.Fatalf("content-id redelivery: %+v then %+v", r1[0], r2[0])
	}
	got, err := ts.cli.Event(ctxT(t, time.Minute), r1[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := leaf.Unmarshal(got.Leaf)
	if l.EventID != identity.ContentID(noID) || l.Kind != "vpn.connect" {
		t.Errorf("leaf event_id %q kind %q, want %q vpn.connect", l.EventID, l.Kind, identity.ContentID(noID))
	}
}

// TestEveryFormatHasANormaliser: the server admits exactly the formats the
// identity package normalises.
func TestEveryFormatHasANormaliser(t *testing.T) {
	if got, want := strings.Join(server.Formats(), ","), strings.Join(identity.Formats(), ","); got != want {
		t.Fatalf("server formats %s, normalisers %s", got, want)
	}
}

// TestTenantFromSource: a Graph record does not name its tenant; admitted
// under entra/<tenant>/audit, its stored view carries that tenant, flagged
// tenant_from_source, and a view re-derived from the payload (identity.Views)
// keeps it. A record that names its tenant keeps its own.
func TestTenantFromSource(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	const tenant = "33333333-3333-4333-8333-333333333333"
	graph := event("entra/"+tenant+"/audit", "tfs-1", 500)
	diag := event("entra/"+tenant+"/audit", "tfs-2", 500)
	diag.Format, diag.Record = "entra.diagnostic", diagnostic(tenant, record("tfs-2", 500))
	rs := mustAppend(t, ts.cli, []*stelev1.Event{graph, diag})
	for i, want := range []bool{true, false} {
		got, err := ts.cli.Event(ctxT(t, time.Minute), rs[i].Index)
		if err != nil {
			t.Fatal(err)
		}
		p, err := payload.Unmarshal(got.Payload)
		if err != nil {
			t.Fatal(err)
		}
		stored, current, curErr, err := identity.Views(p)
		if err != nil || curErr != nil {
			t.Fatal(err, curErr)
		}
		for what, v := range map[string]*stelev1.IdentityEvent{"stored": stored, "re-derived": current} {
			if v.GetSource().GetTenant() != tenant {
				t.Errorf("event %d: %s view's tenant %q, want %q", i, what, v.GetSource().GetTenant(), tenant)
			}
			if slices.Contains(v.Flags, identity.FlagTenantFromSource) != want {
				t.Errorf("event %d: %s view's flags %v: tenant_from_source should be %v", i, what, v.Flags, want)
			}
		}
	}
}
