package drift_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/drift"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/eventfile"
	"github.com/stele-dev/stele/state"
)

const scenario = "testdata/scenario"

// replayFile replays an events file (the format stele submit reads) as if
// its lines were log entries 0, 1, …
func replayFile(t testing.TB, path string, limit int) *state.State {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := state.New()
	r := eventfile.NewReader(f, "")
	for i := uint64(0); ; i++ {
		l, err := r.Next()
		if errors.Is(err, io.EOF) || i == uint64(limit) {
			return st
		}
		if err != nil || l.Err != nil {
			t.Fatalf("line %d: %v %v", i+1, err, l.Err)
		}
		ev, err := identity.Normalize(l.Event.Format, l.Event.Record)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		st.Apply(i, l.Event.Source, ev)
	}
}

func uid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// TestScenario: a scripted tenant whose snapshot holds known drift (a
// Global Administrator granted outside the log, with the user created
// outside it; a client secret removed without an event; a CA policy
// disabled without an event; a logged role removal the tenant does not
// show; a removal logged five minutes before the snapshot), and an
// eligible assignment that was activated and expired, which must produce
// no finding. The findings and the baseline deviations must be exactly
// the expected ones.
func TestScenario(t *testing.T) {
	st := replayFile(t, filepath.Join(scenario, "events.jsonl"), -1)
	snap, err := drift.ReadSnapshot(filepath.Join(scenario, "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	const ga, ua = drift.GlobalAdministrator, "fe930be7-5e62-47db-91af-98c3a49a38b1"
	bob, carol, dave := uid(162), uid(163), uid(164)
	var got []string
	for _, f := range drift.Compare(st, snap, drift.DefaultPropagation) {
		got = append(got, fmt.Sprintf("%s %s %s %s %s/%s %s %v", f.Type, f.Key, f.Side, f.Field, f.Ledger, f.Live, f.Verdict, f.Events))
	}
	want := []string{
		"ca_policy " + uid(60) + " both_differ state enabled/disabled changed_without_logged_event [9]",
		"credential application|" + uid(82) + "|" + uid(91) + " ledger_only  present/absent changed_without_logged_event [8]",
		"directory_role " + bob + "|" + ga + "|/|active tenant_only  removed/present not_yet_propagated [5 15]",
		"directory_role " + carol + "|" + ga + "|/|active tenant_only  never logged/present changed_without_logged_event []",
		"directory_role " + dave + "|" + ua + "|/|active tenant_only  removed/present logged_change_missing_from_tenant [6 14]",
		"user " + carol + " tenant_only  never logged/present changed_without_logged_event []",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	b, err := os.ReadFile(filepath.Join(scenario, "baseline.json"))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := drift.ParseBaseline(b)
	if err != nil {
		t.Fatal(err)
	}
	names := func(tenant, id string) []string {
		if f := snap.Facts[tenant+"\x00user\x00"+id]; f != nil {
			return []string{f.Attrs["login"]}
		}
		return nil
	}
	devs := bl.Check("ledger", st.Current(snap.Tenant, snap.TakenAt), snap.TakenAt, names)
	var live []*state.Fact
	for _, f := range snap.Facts {
		live = append(live, f)
	}
	devs = append(devs, bl.Check("tenant", live, snap.TakenAt, names)...)
	got = nil
	for _, d := range devs {
		got = append(got, fmt.Sprintf("%s %s %s %v", d.Source, d.Rule, d.Key, d.Events))
	}
	cred := "application|" + uid(82) + "|"
	want = []string{
		"ledger credential_age " + cred + uid(90) + " [8]",
		"ledger credential_age " + cred + uid(91) + " [8]",
		"ledger tenant_wide_consent " + uid(70) + "|AllPrincipals| [13]",
		"tenant ca_policy_enabled " + uid(60) + " []",
		"tenant credential_age " + cred + uid(90) + " []",
		"tenant global_administrators " + carol + "|" + ga + "|/|active []",
		"tenant permanent_global_administrator " + bob + "|" + ga + "|/|active []",
		"tenant permanent_global_administrator " + carol + "|" + ga + "|/|active []",
		"tenant tenant_wide_consent " + uid(70) + "|AllPrincipals| []",
	}
	if !slices.Equal(got, want) {
		t.Errorf("deviations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The log up to Erin's activation (entries 0-11, before its expiry
	// event): compared with a snapshot taken during the activation that
	// lacks it, the active assignment is reported; with one taken after
	// its end (no expiry event logged yet), it is not: time-bound facts
	// are evaluated at the snapshot's time.
	upto := replayFile(t, filepath.Join(scenario, "events.jsonl"), 12)
	early := *snap
	early.TakenAt = time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	activeKey := uid(11) + "|e8611ab8-c189-46e8-94e1-60213ab1f814|/|active"
	found := false
	for _, f := range drift.Compare(upto, &early, drift.DefaultPropagation) {
		if f.Key == activeKey && f.Side == drift.LedgerOnly && f.Verdict == drift.Unlogged && slices.Equal(f.Events, []uint64{11}) {
			found = true
		}
	}
	if !found {
		t.Error("a snapshot taken during the PIM activation does not report the active assignment it lacks")
	}
	late := *snap
	late.TakenAt = time.Date(2026, 3, 7, 17, 0, 0, 0, time.UTC)
	for _, f := range drift.Compare(upto, &late, drift.DefaultPropagation) {
		if f.Key == activeKey {
			t.Errorf("an activation that ended before the snapshot is reported: %+v", f)
		}
	}
}
