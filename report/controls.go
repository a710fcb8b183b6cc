package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/stele-dev/stele/audit"
)

// Statuses of claims and controls.
const (
	Evidenced     = "evidenced"
	Exception     = "exception"     // the evidence shows a failure
	NotEvidenced  = "not evidenced" // the report holds no evidence for it
	PartEvidenced = "partly evidenced"
)

// Control maps a framework requirement to the claims the report's
// evidence supports.
type Control struct {
	Framework string  `json:"framework"`
	ID        string  `json:"id"`
	Title     string  `json:"title"`
	Status    string  `json:"status"`
	Claims    []Claim `json:"claims"`
}

// Claim is one statement, with the report sections that evidence it.
// Status is Evidenced only when those sections show it.
type Claim struct {
	ID       string   `json:"id"`
	Text     string   `json:"text"`
	Status   string   `json:"status"`
	Evidence []string `json:"evidence"`
}

// claims derives every claim from the report's evidence; none is
// asserted without the evidence it names.
func claims(r *Report) map[string]Claim {
	c := map[string]Claim{}
	a := r.Audit
	auditOK := a != nil && r.AuditError == "" && a.Verified && a.FailureCount == 0
	auditStatus := func() string {
		if auditOK {
			return Evidenced
		}
		return Exception
	}
	size := uint64(0)
	if a != nil && a.Checkpoint != nil {
		size = a.Checkpoint.Size
	}

	st := NotEvidenced
	if r.Entries.Count > 0 && auditOK {
		st = Evidenced
	}
	c["recorded"] = Claim{Text: fmt.Sprintf("%d identity events from %d sources were admitted in the period; each is a leaf of the log, committed to by a signed checkpoint.",
		r.Entries.Count, len(r.Entries.Sources)), Status: st, Evidence: []string{"entries", "sources", "audit"}}

	text := fmt.Sprintf("The whole log verified at size %d: every entry bundle against the level-0 tiles, and the tree's root against the log-signed checkpoint.", size)
	if !auditOK {
		text = fmt.Sprintf("The full audit did not verify the log: %s.", auditProblem(r))
	}
	c["integrity"] = Claim{Text: text, Status: auditStatus(), Evidence: []string{"audit", "log"}}

	switch k := r.Consistency; {
	case k == nil:
		c["append_only"] = Claim{Text: "No checkpoint of the period was seen by the reporter, so no consistency across the period is shown.", Status: NotEvidenced, Evidence: []string{"checkpoints"}}
	case k.Verified:
		c["append_only"] = Claim{Text: fmt.Sprintf("The period's last checkpoint (size %d) extends its first (size %d): a consistency proof of %d hashes verified, as did each of the %d proofs between the checkpoints seen and the log's latest.",
			k.ToSize, k.FromSize, k.ProofHashes, len(k.Steps)), Status: Evidenced, Evidence: []string{"consistency", "checkpoints"}}
	default:
		c["append_only"] = Claim{Text: fmt.Sprintf("A consistency proof across the period FAILED: %s", firstNonEmpty(k.Error, stepError(k))), Status: Exception, Evidence: []string{"consistency"}}
	}

	met, total := 0, len(r.Checkpoints)
	for _, cp := range r.Checkpoints {
		if cp.PolicyMet != nil && *cp.PolicyMet {
			met++
		}
	}
	switch {
	case r.Policy == "":
		c["witnessed"] = Claim{Text: "No witness policy was given to the report, so independent witnessing is not shown.", Status: NotEvidenced, Evidence: []string{"witnesses"}}
	case total == 0:
		c["witnessed"] = Claim{Text: "No checkpoint of the period was seen, so its witnessing is not shown.", Status: NotEvidenced, Evidence: []string{"checkpoints"}}
	case met == total:
		c["witnessed"] = Claim{Text: fmt.Sprintf("All %d checkpoints of the period seen carry the witness policy's quorum of verified cosignatures.", total), Status: Evidenced, Evidence: []string{"checkpoints", "witnesses"}}
	default:
		c["witnessed"] = Claim{Text: fmt.Sprintf("%d of the %d checkpoints of the period seen lack the witness policy's quorum.", total-met, total), Status: Exception, Evidence: []string{"checkpoints", "witnesses"}}
	}

	var gaps uint64
	for _, s := range r.Entries.Sources {
		gaps += s.Gaps
	}
	if a != nil && r.AuditError == "" {
		c["anomalies"] = Claim{Text: fmt.Sprintf("The audit checked every entry for per-source sequence gaps and regressions, duplicate events and time anomalies: %d finding(s) over the whole log, listed with their entries for evaluation; %d source_seq number(s) missing in the period.",
			a.FindingCount, gaps), Status: Evidenced, Evidence: []string{"audit", "sources"}}
	} else {
		c["anomalies"] = Claim{Text: "The audit did not run to the end, so anomalies were not checked.", Status: Exception, Evidence: []string{"audit"}}
	}

	if r.Entries.Delay.Count > 0 {
		d := r.Entries.Delay
		c["timeliness"] = Claim{Text: fmt.Sprintf("Admission delay (event time to admission) over %d events: median %s, 99th percentile %s, maximum %s.",
			d.Count, secs(d.P50), secs(d.P99), secs(d.Max)), Status: Evidenced, Evidence: []string{"delay"}}
	} else {
		c["timeliness"] = Claim{Text: "No event was admitted in the period, so admission delay is not shown.", Status: NotEvidenced, Evidence: []string{"delay"}}
	}

	notV1 := 0
	if a != nil {
		for _, f := range a.Findings {
			if f.Kind == audit.FindNotLeafV1 {
				notV1++
			}
		}
	}
	st = Exception
	if auditOK && notV1 == 0 {
		st = Evidenced
	}
	c["no_personal_data"] = Claim{Text: fmt.Sprintf("Every leaf read is leaf v1 (%d are not): a leaf names the event and commits to its payload with a salted SHA-256 digest, so the public log holds no personal data.", notV1),
		Status: st, Evidence: []string{"audit"}}

	switch {
	case a != nil && a.PayloadsChecked > 0:
		st := Evidenced
		if countKind(a, audit.FindPayloadMismatch)+countKind(a, audit.FindPayloadUnavailable)+countKind(a, audit.FindErasedWithoutEvent) > 0 {
			st = Exception
		}
		c["payloads"] = Claim{Text: fmt.Sprintf("%d payloads were read from the operator's store and each matched its leaf's commitment; %d were erased, each with an erasure event in the log.",
			a.PayloadsChecked, a.PayloadsErased), Status: st, Evidence: []string{"audit"}}
	default:
		c["payloads"] = Claim{Text: "Payloads were not checked against their leaves (the report was made without reader access to the server).", Status: NotEvidenced, Evidence: []string{"audit"}}
	}

	withReason := 0
	for _, e := range r.Erasures {
		if e.Reason != "" {
			withReason++
		}
	}
	switch {
	case len(r.Erasures) == 0:
		c["erasure"] = Claim{Text: "No erasure was made in the period.", Status: NotEvidenced, Evidence: []string{"erasures"}}
	case withReason == len(r.Erasures) && auditOK:
		c["erasure"] = Claim{Text: fmt.Sprintf("%d payload(s) were erased in the period, each recorded as an erasure event in the log with its reason and request reference; the erased entries' leaves remain and the log still verifies.", len(r.Erasures)),
			Status: Evidenced, Evidence: []string{"erasures", "audit"}}
	default:
		c["erasure"] = Claim{Text: fmt.Sprintf("%d erasure event(s) in the period; the reasons of %d could not be read and checked.", len(r.Erasures), len(r.Erasures)-withReason),
			Status: PartEvidenced, Evidence: []string{"erasures"}}
	}
	if d := r.Drift; d != nil {
		c["drift"] = driftClaim(d)
	}
	if m := r.Monitor; m != nil {
		c["monitor_alerts"] = monitorClaim(m)
	}
	for k, v := range c {
		v.ID = k
		c[k] = v
	}
	return c
}

// driftClaim states what a drift check given to the report shows.
func driftClaim(d *DriftEvidence) Claim {
	bad := 0
	for _, it := range slices.Concat(d.Findings, d.Deviations) {
		for _, ev := range it.Events {
			if !ev.Verified {
				bad++
			}
		}
	}
	of := fmt.Sprintf("A drift check of tenant %s (snapshot taken %s) against the log at size %d", firstNonEmpty(d.Tenant, "(all tenants)"), firstNonEmpty(d.TakenAt, "—"), d.Size)
	switch {
	case !d.TreeVerified:
		return Claim{Text: fmt.Sprintf("The drift check given is not of this log's history: %s.", d.TreeError), Status: Exception, Evidence: []string{"drift"}}
	case bad > 0:
		return Claim{Text: fmt.Sprintf("%d event(s) the drift check cites do not verify against the log.", bad), Status: Exception, Evidence: []string{"drift"}}
	case d.Mismatches > 0:
		return Claim{Text: fmt.Sprintf("%s found %d mismatch(es) between the tenant and what the log records (a change without a logged event, or a logged change the tenant does not show), listed with their events for evaluation; %d deviation(s) from the baseline.",
			of, d.Mismatches, len(d.Deviations)), Status: Exception, Evidence: []string{"drift"}}
	default:
		return Claim{Text: fmt.Sprintf("%s, proven to be the log's history, found the tenant as the log records it (%d change(s) not yet propagated) and %d deviation(s) from the baseline, listed with the events that caused them; every cited event's receipt verifies.",
			of, d.Propagating, len(d.Deviations)), Status: Evidenced, Evidence: []string{"drift"}}
	}
}

// monitorClaim states what the monitor's alert stream shows.
func monitorClaim(m *MonitorEvidence) Claim {
	switch {
	case m.Unverified > 0:
		return Claim{Text: fmt.Sprintf("%d monitor alert(s) of the period cite entries whose receipts do not verify against the log.", m.Unverified), Status: Exception, Evidence: []string{"monitor"}}
	case m.Integrity > 0:
		return Claim{Text: fmt.Sprintf("The monitor raised %d alert(s) in the period saying the log misbehaved (fork, rollback, split view, an entry that is not leaf v1, or a checkpoint short of the witness policy).", m.Integrity),
			Status: Exception, Evidence: []string{"monitor"}}
	default:
		return Claim{Text: fmt.Sprintf("The monitor's alert stream holds %d alert(s) raised in the period, listed for evaluation; each that cites an entry carries a receipt that verifies against the log, and none says the log misbehaved. That the monitor ran for the whole period is not shown.", m.InPeriod),
			Status: Evidenced, Evidence: []string{"monitor"}}
	}
}

func countKind(a *audit.Report, kind string) int {
	n := 0
	for _, f := range a.Findings {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

func auditProblem(r *Report) string {
	switch {
	case r.AuditError != "":
		return r.AuditError
	case r.Audit == nil:
		return "no audit"
	case len(r.Audit.Failures) > 0:
		return fmt.Sprintf("%d failure(s), first: %s", r.Audit.FailureCount, r.Audit.Failures[0].Message)
	default:
		return "the root was not verified"
	}
}

func stepError(k *Consistency) string {
	for _, s := range k.Steps {
		if s.Error != "" {
			return fmt.Sprintf("size %d to %d: %s", s.FromSize, s.ToSize, s.Error)
		}
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func secs(s float64) string {
	switch {
	case s < 0:
		return fmt.Sprintf("%.3fs (event time after admission)", s)
	case s < 120:
		return fmt.Sprintf("%.3fs", s)
	case s < 7200:
		return fmt.Sprintf("%.1f min", s/60)
	default:
		return fmt.Sprintf("%.1f h", s/3600)
	}
}

// controlMap names, per framework requirement, the claims that bear on it
// ("drift" and "monitor_alerts" count only in reports given that evidence).
var controlMap = []struct {
	framework, id, title string
	claims               []string
}{
	{"ISO/IEC 27001:2022", "A.8.15", "Logging: logs that record activities are produced, stored, protected and analysed", []string{"recorded", "integrity", "append_only", "no_personal_data", "drift"}},
	{"ISO/IEC 27001:2022", "A.8.16", "Monitoring activities: anomalous behaviour is monitored and evaluated", []string{"anomalies", "witnessed", "timeliness", "monitor_alerts", "drift"}},
	{"ISO/IEC 27001:2022", "A.5.33", "Protection of records: records are protected from loss, destruction, falsification and unauthorised access", []string{"integrity", "append_only", "witnessed", "erasure", "monitor_alerts"}},
	{"SOC 2 (2017 TSC)", "CC7.2", "The entity monitors system components for anomalies indicative of malicious acts or errors", []string{"anomalies", "witnessed", "timeliness", "monitor_alerts", "drift"}},
	{"SOC 2 (2017 TSC)", "CC7.3", "The entity evaluates security events to determine whether they could or did result in a failure", []string{"anomalies", "erasure", "monitor_alerts"}},
	{"HIPAA Security Rule", "§164.312(b)", "Audit controls: mechanisms that record and examine activity", []string{"recorded", "integrity"}},
	{"HIPAA Security Rule", "§164.312(c)(1)", "Integrity: protect information from improper alteration or destruction", []string{"integrity", "append_only", "witnessed", "payloads"}},
	{"GDPR", "Art. 5(1)(f)", "Integrity and confidentiality of personal data", []string{"no_personal_data", "integrity", "payloads"}},
	{"GDPR", "Art. 17", "Right to erasure", []string{"erasure"}},
}

func controls(r *Report) []Control {
	cs := claims(r)
	var out []Control
	for _, m := range controlMap {
		ctl := Control{Framework: m.framework, ID: m.id, Title: m.title}
		ev, exc := 0, 0
		for _, id := range m.claims {
			cl, ok := cs[id]
			if !ok {
				continue // drift and monitor claims: only when their evidence was given
			}
			ctl.Claims = append(ctl.Claims, cl)
			switch cl.Status {
			case Evidenced:
				ev++
			case Exception:
				exc++
			}
		}
		switch {
		case exc > 0:
			ctl.Status = Exception
		case ev == len(ctl.Claims):
			ctl.Status = Evidenced
		case ev > 0:
			ctl.Status = PartEvidenced
		default:
			ctl.Status = NotEvidenced
		}
		out = append(out, ctl)
	}
	return out
}

// reverify lists the commands an auditor runs to check the report's
// evidence independently of whoever made it.
func reverify(r *Report) []string {
	pol := ""
	if r.Policy != "" {
		pol = " --policy policy.txt"
	}
	u := r.Log.URL
	cmds := []string{
		fmt.Sprintf("printf '%%s\\n' '%s' > log.pub   # compare its key hash with %s", r.Log.VerifierKey, r.Log.KeyHash),
		fmt.Sprintf("stele audit --log %s --log-key log.pub%s > audit.json", u, pol),
	}
	if k := r.Consistency; k != nil && k.FromSize > 0 {
		cmds = append(cmds, fmt.Sprintf("stele consistency --log %s --log-key log.pub --from-size %d --to-size %d   # the roots must be %s… and %s…",
			u, k.FromSize, k.ToSize, k.FromRoot[:16], k.ToRoot[:16]))
	}
	if r.Entries.FirstIndex != nil {
		cmds = append(cmds, fmt.Sprintf("stele proof --log %s --log-key log.pub --index %d", u, *r.Entries.FirstIndex))
	}
	cmds = append(cmds, "stele verify-report --key operator.pub REPORT-DIR   # the report's own signature")
	return cmds
}

// claimAnchor is the HTML id of a report section a claim names.
func claimAnchor(section string) string { return "sec-" + strings.ReplaceAll(section, "_", "-") }
