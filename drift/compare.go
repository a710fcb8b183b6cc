package drift

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stele-dev/stele/state"
)

// Verdicts.
const (
	// Unlogged: the tenant changed and the ledger holds no event for it
	// (granted, removed or changed outside what the log recorded).
	Unlogged = "changed_without_logged_event"
	// Missing: the ledger logged a change the tenant does not show, long
	// enough ago that it should (a removal that did not happen, or was
	// undone without an event).
	Missing = "logged_change_missing_from_tenant"
	// NotYetPropagated: the ledger's last event about the fact is so
	// recent (within the propagation window of the snapshot's time, or
	// after it) that the snapshot may not show it yet.
	NotYetPropagated = "not_yet_propagated"
)

// Sides.
const (
	LedgerOnly = "ledger_only" // the ledger has the fact, the tenant does not
	TenantOnly = "tenant_only" // the tenant has it, the ledger does not
	Differ     = "both_differ" // both have it, with a different value
)

// DefaultPropagation is how long after a logged change a snapshot may
// still not show it.
const DefaultPropagation = 15 * time.Minute

// Finding is one mismatch between the ledger and the tenant.
type Finding struct {
	Tenant  string `json:"tenant"`
	Type    string `json:"type"`
	Key     string `json:"key"`
	Subject string `json:"subject,omitempty"`
	Object  string `json:"object,omitempty"`
	Side    string `json:"side"`
	// Field is the attribute that differs (state, status, scopes), for
	// Side Differ.
	Field   string `json:"field,omitempty"`
	Ledger  string `json:"ledger"`
	Live    string `json:"live"`
	Verdict string `json:"verdict"`
	// Events are the indexes of the last ledger events about the fact,
	// oldest first (at most three); empty when the ledger never saw it.
	Events []uint64 `json:"events"`
	// Attrs are the fact's attributes (the ledger's, else the tenant's).
	Attrs map[string]string `json:"attrs,omitempty"`
}

// ID identifies a finding for deduplication: the fact, side, field and
// the last event.
func (f Finding) ID() string {
	last := ""
	if n := len(f.Events); n > 0 {
		last = fmt.Sprint(f.Events[n-1])
	}
	return strings.Join([]string{f.Tenant, f.Type, f.Key, f.Side, f.Field, f.Ledger, f.Live, last}, "\x00")
}

// class is the comparison class of a fact (see factTypes).
func class(f *state.Fact) string {
	switch f.Type {
	case state.DirectoryRole:
		if strings.HasSuffix(f.Key, "|eligible") {
			return f.Type + "/eligible"
		}
		return f.Type + "/active"
	case state.Credential:
		owner, _, _ := strings.Cut(f.Key, "|")
		return f.Type + "/" + owner
	}
	return f.Type
}

// Compare compares the ledger's state with a snapshot of the same tenant.
// Only fact classes the snapshot covers are compared. The ledger's facts
// are evaluated at the snapshot's time: a time-bound assignment that ended
// before it is expected to be gone.
func Compare(led *state.State, snap *Snapshot, propagation time.Duration) []Finding {
	var out []Finding
	at := snap.TakenAt
	recent := func(f *state.Fact) bool {
		return !f.Changed.IsZero() && f.Changed.After(at.Add(-propagation))
	}
	seen := map[string]bool{}
	for _, lf := range led.Facts() {
		if lf.Tenant != snap.Tenant || !snap.Compared[class(lf)] {
			continue
		}
		seen[lf.ID()] = true
		sf := snap.Facts[lf.ID()]
		ledgerHas := lf.ActiveAt(at) && !(lf.Type == state.User && lf.Attr("status") == "deleted")
		fd := Finding{Tenant: lf.Tenant, Type: lf.Type, Key: lf.Key, Subject: lf.Subject, Object: lf.Object, Events: lastEvents(lf), Attrs: lf.Attrs}
		switch {
		case ledgerHas && sf == nil:
			fd.Side, fd.Ledger, fd.Live = LedgerOnly, "present", "absent"
			fd.Verdict = Unlogged
			if recent(lf) {
				fd.Verdict = NotYetPropagated
			}
			out = append(out, fd)
		case !ledgerHas && sf != nil:
			fd.Side, fd.Ledger, fd.Live = TenantOnly, absentWord(lf, at), "present"
			fd.Verdict = Missing
			if recent(lf) {
				fd.Verdict = NotYetPropagated
			}
			out = append(out, fd)
		case ledgerHas && sf != nil:
			for _, field := range compared[lf.Type] {
				lv, sv := lf.Attr(field), sf.Attr(field)
				if lv == "" || lv == "unknown" || sv == "" || lv == sv {
					continue
				}
				d := fd
				d.Side, d.Field, d.Ledger, d.Live = Differ, field, lv, sv
				d.Verdict = Unlogged
				if recent(lf) {
					d.Verdict = NotYetPropagated
				}
				out = append(out, d)
			}
		}
	}
	for id, sf := range snap.Facts {
		if seen[id] || !snap.Compared[class(sf)] {
			continue
		}
		out = append(out, Finding{Tenant: sf.Tenant, Type: sf.Type, Key: sf.Key, Subject: sf.Subject, Object: sf.Object,
			Side: TenantOnly, Ledger: "never logged", Live: "present", Verdict: Unlogged, Events: []uint64{}, Attrs: sf.Attrs})
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Key, b.Key), strings.Compare(a.Field, b.Field))
	})
	return out
}

// compared are the attributes compared when both sides have a fact.
var compared = map[string][]string{
	state.CAPolicy:        {"state"},
	state.User:            {"status"},
	state.PermissionGrant: {"scopes"},
}

func absentWord(f *state.Fact, at time.Time) string {
	switch {
	case !f.Present:
		return "removed"
	case f.Type == state.User && f.Attr("status") == "deleted":
		return "deleted"
	case !f.ActiveAt(at):
		return "ended " + f.Until.UTC().Format(time.RFC3339)
	}
	return "absent"
}

func lastEvents(f *state.Fact) []uint64 {
	return slices.Clone(f.Events[max(0, len(f.Events)-3):])
}
