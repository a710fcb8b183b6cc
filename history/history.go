// Package history answers "everything that happened to this subject": an
// index from subjects (UPNs, object ids, appIds, service-principal ids,
// Okta logins, AWS ARNs and IAM user names, access-key ids) to the log
// entries naming them as actor or target, built by a follower from the
// verified log and rebuildable from it at any time.
//
// What an answer proves: every event it lists is in the log (each comes
// with an inclusion proof in a signed checkpoint), and its payload matches
// the leaf's commitment. What it does not prove: that no event naming the
// subject was left out. The index is built by whoever runs the follower;
// a client that built it itself from the whole verified log knows it is
// complete up to the checkpoint's size, anyone else has to trust the
// builder (docs/decisions.md describes how a verifiable index committed to
// the log would close that gap).
package history

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/ledger"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Index maps subjects to log indexes.
type Index struct {
	// Origin, Size and Root name the tree the index covers: entries
	// [0, Size) of the log Origin whose tree of that size has Root (hex).
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"`
	// Subjects maps a subject (lower case) to the indexes of the events
	// naming it, ascending.
	Subjects map[string][]uint64 `json:"subjects"`
	// Aliases links subjects the log shows to be one principal (an
	// object id and its UPN, both on one actor or target).
	Aliases map[string][]string `json:"aliases"`
	// Unindexed are entries whose event could not be read (erased,
	// unreadable): their subjects are unknown.
	Unindexed []uint64 `json:"unindexed"`
}

// New returns an empty index of a log.
func New(origin string) *Index {
	return &Index{Origin: origin, Subjects: map[string][]uint64{}, Aliases: map[string][]string{}, Unindexed: []uint64{}}
}

// Unmarshal reads an index file.
func Unmarshal(b []byte) (*Index, error) {
	var x Index
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("history index: %w", err)
	}
	if x.Subjects == nil || x.Aliases == nil {
		return nil, fmt.Errorf("history index: not an index file (no subjects)")
	}
	for s, idx := range x.Subjects {
		if !slices.IsSorted(idx) || uint64(len(idx)) > x.Size || (len(idx) > 0 && idx[len(idx)-1] >= x.Size) {
			return nil, fmt.Errorf("history index: subject %q has indexes out of order or beyond size %d", s, x.Size)
		}
	}
	return &x, nil
}

// Marshal writes an index file.
func (x *Index) Marshal() ([]byte, error) { return json.Marshal(x) }

// Skip records an entry whose event is unavailable.
func (x *Index) Skip(index uint64) {
	x.Unindexed = append(x.Unindexed, index)
	x.Size = max(x.Size, index+1)
}

// Add indexes the event at index (submitted under source). Entries must
// be added in log order.
func (x *Index) Add(index uint64, source string, ev *stelev1.IdentityEvent) {
	x.Size = max(x.Size, index+1)
	if source == erasureSource && ev.GetKind() == erasureKind {
		// The log's erasure event (server.ErasureRecord): the erased
		// entry's subjects leave the index, as its payload left the log.
		var rec struct {
			ErasedIndex *uint64 `json:"erased_index"`
		}
		if json.Unmarshal(ev.GetRawRecord(), &rec) == nil && rec.ErasedIndex != nil && *rec.ErasedIndex < index {
			x.erase(*rec.ErasedIndex)
		}
	}
	for _, s := range Subjects(source, ev) {
		l := x.Subjects[s]
		if n := len(l); n == 0 || l[n-1] != index {
			x.Subjects[s] = append(l, index)
		}
	}
	for _, pair := range aliasPairs(ev) {
		x.alias(pair[0], pair[1])
		x.alias(pair[1], pair[0])
	}
}

// The erasure events the server appends (server.ErasureSource,
// server.ErasureKind).
const (
	erasureSource = "stele/erasure"
	erasureKind   = "stele.erasure"
)

// erase drops an entry from every subject and lists it as unindexed.
func (x *Index) erase(i uint64) {
	for s, l := range x.Subjects {
		if j, ok := slices.BinarySearch(l, i); ok {
			if l = slices.Delete(l, j, j+1); len(l) == 0 {
				delete(x.Subjects, s)
			} else {
				x.Subjects[s] = l
			}
		}
	}
	if j, ok := slices.BinarySearch(x.Unindexed, i); !ok {
		x.Unindexed = slices.Insert(x.Unindexed, j, i)
	}
}

func (x *Index) alias(a, b string) {
	if !slices.Contains(x.Aliases[a], b) {
		x.Aliases[a] = append(x.Aliases[a], b)
	}
}

// Lookup returns the indexes of the events naming subject or a subject
// the log shows to be the same principal, ascending, and the subjects
// searched.
func (x *Index) Lookup(subject string) (indexes []uint64, searched []string) {
	s := norm(subject)
	searched = []string{s}
	for _, a := range x.Aliases[s] {
		if !slices.Contains(searched, a) {
			searched = append(searched, a)
		}
	}
	for _, q := range searched {
		indexes = append(indexes, x.Subjects[q]...)
	}
	slices.Sort(indexes)
	return slices.Compact(indexes), searched
}

func norm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Role says how an event names a subject.
const (
	AsActor  = "actor"
	AsTarget = "target"
)

// Subjects returns every subject an event names, normalised (lower case),
// without duplicates.
func Subjects(source string, ev *stelev1.IdentityEvent) []string {
	var out []string
	for _, r := range Mentions(source, ev) {
		if !slices.Contains(out, r.Subject) {
			out = append(out, r.Subject)
		}
	}
	return out
}

// Mention is one subject named by an event, and how.
type Mention struct {
	Subject string
	Role    string
}

// Mentions returns the subjects an event names as actor or target.
func Mentions(source string, ev *stelev1.IdentityEvent) []Mention {
	var out []Mention
	add := func(role string, vals ...string) {
		for _, v := range vals {
			if v = norm(v); v != "" && v != "unknown" && !slices.Contains(out, Mention{v, role}) {
				out = append(out, Mention{v, role})
			}
		}
	}
	account := awsAccount(source, ev)
	if a := ev.GetActor(); a != nil {
		add(AsActor, a.GetId(), a.GetLogin(), a.GetAppId(), a.GetServicePrincipalId(), a.GetCredentialId())
		if strings.HasPrefix(a.GetDisplayName(), "arn:") {
			add(AsActor, a.GetDisplayName())
		}
		if strings.HasPrefix(a.GetIssuer(), "arn:") {
			add(AsActor, a.GetIssuer())
		}
		if account != "" && a.GetNativeType() == "IAMUser" && a.GetLogin() != "" {
			add(AsActor, "arn:aws:iam::"+account+":user/"+a.GetLogin())
		}
	}
	for _, t := range ev.GetTargets() {
		add(AsTarget, t.GetId(), t.GetLogin())
		for _, c := range t.GetChanges() {
			if strings.EqualFold(c.GetName(), "AppId") && c.GetNewValue().GetPresent() {
				add(AsTarget, strings.Trim(c.GetNewValue().GetValue(), `"[]`))
			}
		}
		if account != "" && t.GetNativeType() == "IAMUser" && t.GetLogin() != "" {
			add(AsTarget, "arn:aws:iam::"+account+":user/"+t.GetLogin())
		}
	}
	if p := ev.GetPrivilege(); p != nil {
		add(AsTarget, p.GetAssigneeId(), p.GetAssigneeLogin())
		if account != "" && p.GetAssigneeLogin() != "" && p.GetAssigneeId() == "" {
			add(AsTarget, "arn:aws:iam::"+account+":user/"+p.GetAssigneeLogin())
		}
	}
	if c := ev.GetCredential(); c != nil {
		add(AsTarget, c.GetKeyId())
	}
	if c := ev.GetConsent(); c != nil {
		add(AsTarget, c.GetClientId())
	}
	if p := ev.GetPolicy(); p != nil {
		add(AsTarget, p.GetId())
	}
	return out
}

// awsAccount is the AWS account of a CloudTrail entry, "" for others.
func awsAccount(source string, ev *stelev1.IdentityEvent) string {
	if ev.GetSource().GetProvider() != "aws" {
		return ""
	}
	if t := ev.GetSource().GetTenant(); t != "" {
		return t
	}
	if p := strings.SplitN(source, "/", 3); len(p) >= 2 && p[0] == "aws" {
		return p[1]
	}
	return ""
}

// aliasPairs are (id, login) pairs one actor or target carries.
func aliasPairs(ev *stelev1.IdentityEvent) [][2]string {
	var out [][2]string
	pair := func(a, b string) {
		if a, b = norm(a), norm(b); a != "" && b != "" && a != b && b != "unknown" {
			out = append(out, [2]string{a, b})
		}
	}
	if a := ev.GetActor(); a != nil {
		pair(a.GetId(), a.GetLogin())
		pair(a.GetServicePrincipalId(), a.GetAppId())
	}
	for _, t := range ev.GetTargets() {
		pair(t.GetId(), t.GetLogin())
	}
	if p := ev.GetPrivilege(); p != nil {
		pair(p.GetAssigneeId(), p.GetAssigneeLogin())
	}
	return out
}

// Update brings x up to cp's size: it reads entries [x.Size, cp.Size)
// through r, proving that the log's tree of size x.Size still has x.Root
// (so the index and the log are one history), and indexes them. On error
// x may be partly updated: discard it, do not save it.
func Update(ctx context.Context, r *ledger.Reader, cp *client.Checkpoint, x *Index) error {
	if x.Origin != cp.Origin {
		return fmt.Errorf("history index is of log %q, not %q: rebuild it", x.Origin, cp.Origin)
	}
	if cp.Size < x.Size {
		return fmt.Errorf("%w: the log's checkpoint (size %d) is smaller than the index (size %d)", client.ErrVerification, cp.Size, x.Size)
	}
	var from [32]byte
	if x.Size > 0 {
		b, err := hex.DecodeString(x.Root)
		if err != nil || len(b) != 32 {
			return fmt.Errorf("history index: root %q is not a SHA-256 hash", x.Root)
		}
		from = [32]byte(b)
	} else {
		from = [32]byte(rfc6962.DefaultHasher.EmptyRoot())
	}
	root, err := r.Extend(ctx, cp, x.Size, from, func(en *ledger.Entry) error {
		if en.Event == nil {
			x.Skip(en.Index)
			return nil
		}
		x.Add(en.Index, en.Leaf.Source, en.Event)
		return nil
	})
	if err != nil {
		return err
	}
	x.Size, x.Root = cp.Size, hex.EncodeToString(root[:])
	return nil
}

// Completeness is what every timeline says about itself.
const Completeness = "each event listed is proven included in the signed checkpoint and matches its leaf's commitment; " +
	"that no event naming the subject is missing is only as sure as the index: complete for entries [0, size) when this index was built from the verified log by you"

// Event is one event of a subject's timeline: the leaf's fields, how the
// event names the subject, a summary of its re-derived view, and its
// inclusion proof in the checkpoint.
type Event struct {
	Index     uint64        `json:"index"`
	Source    string        `json:"source"`
	Kind      string        `json:"kind"`
	EventID   string        `json:"event_id"`
	EventTime string        `json:"event_time"`
	As        []string      `json:"as"`
	Actor     string        `json:"actor,omitempty"`
	Targets   []string      `json:"targets,omitempty"`
	Outcome   string        `json:"outcome,omitempty"`
	Problem   string        `json:"problem,omitempty"`
	Proof     *ledger.Proof `json:"proof"`
}

// Timeline is a subject's history: the events naming it (or a subject
// the log shows to be the same principal), in log order, each proven
// included in the prover's checkpoint.
type Timeline struct {
	Subject   string   `json:"subject"`
	Searched  []string `json:"searched"`
	IndexSize uint64   `json:"index_size"`
	Unindexed []uint64 `json:"unindexed"`
	Events    []Event  `json:"events"`
}

// Lookup answers a subject's timeline from x (brought up to the prover's
// checkpoint by Update): each event is proven and read through r.
func Lookup(ctx context.Context, r *ledger.Reader, prover *ledger.Prover, x *Index, subject string) (*Timeline, error) {
	indexes, searched := x.Lookup(subject)
	tl := &Timeline{Subject: subject, Searched: searched, IndexSize: x.Size, Unindexed: x.Unindexed, Events: []Event{}}
	if tl.Unindexed == nil {
		tl.Unindexed = []uint64{}
	}
	for _, i := range indexes {
		ev, err := entry(ctx, r, prover, i, searched)
		if err != nil {
			return nil, err
		}
		tl.Events = append(tl.Events, ev)
	}
	return tl, nil
}

// entry proves and reads one entry, re-deriving its view and saying how
// it names the subject.
func entry(ctx context.Context, r *ledger.Reader, prover *ledger.Prover, i uint64, searched []string) (Event, error) {
	p, err := prover.Prove(ctx, i, nil)
	if err != nil {
		return Event{}, err
	}
	en, err := r.Read(ctx, i, p.Leaf)
	if err != nil {
		return Event{}, err
	}
	he := Event{Index: i, Proof: p, As: []string{}, Problem: en.Problem}
	if en.Leaf == nil {
		return he, nil
	}
	l := en.Leaf
	he.Source, he.Kind, he.EventID, he.EventTime = l.Source, l.Kind, l.EventID, l.EventTime.UTC().Format(time.RFC3339Nano)
	ev := en.Event
	if ev == nil {
		return he, nil
	}
	for _, m := range Mentions(l.Source, ev) {
		if slices.Contains(searched, m.Subject) && !slices.Contains(he.As, m.Role) {
			he.As = append(he.As, m.Role)
		}
	}
	if a := ev.GetActor(); a != nil {
		he.Actor = cmp.Or(a.GetLogin(), a.GetDisplayName(), a.GetId(), a.GetAppId())
	}
	for _, t := range ev.GetTargets() {
		he.Targets = append(he.Targets, cmp.Or(t.GetLogin(), t.GetDisplayName(), t.GetId()))
	}
	he.Outcome = strings.TrimPrefix(ev.GetOutcome().GetStatus().String(), "OUTCOME_STATUS_")
	return he, nil
}
