package drift_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/drift"
	"github.com/stele-dev/stele/internal/stategen"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/state"
)

var driftEvents = flag.Int("drift-events", 100_000, "BenchmarkDrift: events in the generated log (the issue's target is 1,000,000 in 60 s)")

// BenchmarkDrift replays a generated log and compares it with a snapshot
// of 10,000 Graph objects (users, role assignments and eligibilities,
// applications with their secrets, CA policies, grants) built from the
// ledger's state with drift added: 1% of the objects dropped, 100 users
// the log never saw. It prints the time of each stage.
func BenchmarkDrift(b *testing.B) {
	const objects = 10_000
	for range b.N {
		g := stategen.New(4, 8000, 1500)
		// Events are generated in batches outside the timed replay: a
		// million would not fit in memory at once.
		var replay, replayCPU time.Duration
		st := state.New()
		batch := make([]*stelev1.IdentityEvent, 10_000)
		for done := 0; done < *driftEvents; done += len(batch) {
			batch = batch[:min(len(batch), *driftEvents-done)]
			for i := range batch {
				batch[i] = g.Next()
			}
			start, cpu0 := time.Now(), stategen.CPUTime()
			for i, ev := range batch {
				st.Apply(uint64(done+i), stategen.Source, ev)
			}
			replay += time.Since(start)
			replayCPU += stategen.CPUTime() - cpu0
		}
		at := stategen.Start.Add(time.Duration(*driftEvents) * time.Second)
		pages := graphPages(st.Current("", at), objects)
		t0 := time.Now()
		snap := drift.NewSnapshot(drift.Manifest{Tenant: "entra/" + stategen.Tenant, TakenAt: at.Add(time.Hour)})
		n := 0
		for _, p := range pages {
			if _, err := snap.AddPage(p.resource, p.body); err != nil {
				b.Fatal(err)
			}
			n += p.objects
		}
		parse := time.Since(t0)
		t1 := time.Now()
		findings := drift.Compare(st, snap, drift.DefaultPropagation)
		compare := time.Since(t1)
		if n != objects || len(findings) < 100 {
			b.Fatalf("%d objects, %d findings", n, len(findings))
		}
		b.ReportMetric(replay.Seconds(), "replay-s")
		b.ReportMetric(replayCPU.Seconds(), "replay-cpu-s")
		b.ReportMetric(parse.Seconds(), "parse-s")
		b.ReportMetric(compare.Seconds(), "compare-s")
		b.ReportMetric(float64(len(findings)), "findings")
		b.Logf("%d events replayed in %s (%.0f events/s; %s CPU); %d-object snapshot parsed in %s; compared in %s: %d findings; total %s",
			*driftEvents, replay.Round(time.Millisecond), float64(*driftEvents)/replay.Seconds(), replayCPU.Round(time.Millisecond), n,
			parse.Round(time.Millisecond), compare.Round(time.Millisecond), len(findings), (replay + parse + compare).Round(time.Millisecond))
	}
}

type graphPage struct {
	resource string
	body     []byte
	objects  int
}

// graphPages renders facts as Graph collection responses, at most limit
// objects in all, dropping every hundredth and adding 100 unknown users.
func graphPages(facts []*state.Fact, limit int) []graphPage {
	var users, assignments, eligible, policies, grants []any
	apps := map[string][]any{}
	var appOrder []string
	kept := 0
	for i, f := range facts {
		if i%100 == 99 {
			continue // dropped: drift
		}
		switch f.Type {
		case state.User:
			users = append(users, map[string]any{"id": f.Key, "userPrincipalName": f.Attrs["login"], "accountEnabled": f.Attrs["status"] == "enabled"})
		case state.DirectoryRole:
			p := strings.Split(f.Key, "|")
			o := map[string]any{"id": fmt.Sprintf("ra-%d", i), "principalId": p[0], "roleDefinitionId": p[1], "directoryScopeId": p[2], "appScopeId": nil}
			if p[3] == "eligible" {
				o["scheduleInfo"] = map[string]any{"startDateTime": "2026-01-01T00:00:00Z", "expiration": map[string]any{"type": "noExpiration", "endDateTime": nil}}
				eligible = append(eligible, o)
			} else {
				assignments = append(assignments, o)
			}
		case state.Credential:
			if _, ok := apps[f.Subject]; !ok {
				appOrder = append(appOrder, f.Subject)
				kept++ // the application object
			}
			apps[f.Subject] = append(apps[f.Subject], map[string]any{"keyId": f.Object, "displayName": nil, "startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"})
			continue
		case state.CAPolicy:
			policies = append(policies, map[string]any{"id": f.Key, "displayName": f.Attrs["display_name"], "state": f.Attrs["state"]})
		case state.PermissionGrant:
			grants = append(grants, map[string]any{"id": fmt.Sprintf("g-%d", i), "clientId": f.Subject, "consentType": "AllPrincipals", "principalId": nil, "resourceId": "r", "scope": f.Attrs["scopes"]})
		default:
			continue
		}
		kept++
		if kept >= limit-100 {
			break
		}
	}
	for i := range 100 {
		users = append(users, map[string]any{"id": fmt.Sprintf("unlogged-%d", i), "userPrincipalName": fmt.Sprintf("shadow%d@example.com", i), "accountEnabled": true})
	}
	var applications []any
	for _, a := range appOrder {
		applications = append(applications, map[string]any{"id": a, "appId": "app-" + a, "displayName": a, "keyCredentials": []any{}, "passwordCredentials": apps[a]})
	}
	page := func(resource string, vals []any) graphPage {
		if vals == nil {
			vals = []any{}
		}
		b, err := json.Marshal(map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#" + resource, "value": vals})
		if err != nil {
			panic(err)
		}
		return graphPage{resource, b, len(vals)}
	}
	return []graphPage{page("users", users), page("roleAssignments", assignments), page("roleEligibilitySchedules", eligible),
		page("applications", applications), page("conditionalAccessPolicies", policies), page("oauth2PermissionGrants", grants)}
}
