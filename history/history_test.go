package history_test

import (
	"slices"
	"testing"

	"github.com/stele-dev/stele/history"
	"github.com/stele-dev/stele/internal/stategen"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestIndexEqualsScan: for every subject, the index's answer equals a full
// scan of the events for ones naming it (or an alias the scan finds the
// same way), in log order.
func TestIndexEqualsScan(t *testing.T) {
	const n = 5000
	g := stategen.New(3, 300, 40)
	evs := make([]*stelev1.IdentityEvent, n)
	x := history.New("example.com/log")
	for i := range evs {
		evs[i] = g.Next()
		x.Add(uint64(i), stategen.Source, evs[i])
	}
	if x.Size != n || len(x.Subjects) < 300 {
		t.Fatalf("size %d, %d subjects", x.Size, len(x.Subjects))
	}
	named := make([][]string, n)
	for i, ev := range evs {
		named[i] = history.Subjects(stategen.Source, ev)
	}
	for subject := range x.Subjects {
		got, searched := x.Lookup(subject)
		var want []uint64
		for i := range evs {
			for _, s := range named[i] {
				if slices.Contains(searched, s) {
					want = append(want, uint64(i))
					break
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: index %d events, scan %d", subject, len(got), len(want))
		}
	}
	// The round trip through the file keeps the answers.
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	y, err := history.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := x.Lookup("user7@example.com")
	c, _ := y.Lookup("USER7@example.com")
	if len(a) == 0 || !slices.Equal(a, c) {
		t.Errorf("after the round trip: %d vs %d events", len(a), len(c))
	}
}

func TestMentions(t *testing.T) {
	ev := &stelev1.IdentityEvent{
		Source:     &stelev1.IdentitySource{Provider: "aws", Tenant: "123456789012"},
		Actor:      &stelev1.Principal{NativeType: "IAMUser", Id: "AIDAEXAMPLE", Login: "alice", DisplayName: "arn:aws:iam::123456789012:user/alice", CredentialId: "AKIAALICE"},
		Targets:    []*stelev1.Target{{NativeType: "IAMUser", Login: "bob"}},
		Credential: &stelev1.CredentialFacet{KeyId: "AKIABOB"},
	}
	var got []string
	for _, m := range history.Mentions("aws/123456789012/cloudtrail", ev) {
		got = append(got, m.Role+" "+m.Subject)
	}
	want := []string{"actor aidaexample", "actor alice", "actor akiaalice", "actor arn:aws:iam::123456789012:user/alice",
		"target bob", "target arn:aws:iam::123456789012:user/bob", "target akiabob"}
	if !slices.Equal(got, want) {
		t.Errorf("mentions %q, want %q", got, want)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	for _, in := range []string{``, `{}`, `{"subjects":{},"aliases":{}, "size":1, "subjects":{"a":[3]}}`, `{"size":5,"subjects":{"a":[2,1]},"aliases":{}}`} {
		if _, err := history.Unmarshal([]byte(in)); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

// FuzzUnmarshal: an index file parses or is refused, never panics, and a
// parsed index answers lookups within its size.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"origin":"o","size":3,"root":"","subjects":{"a":[0,2]},"aliases":{"a":["b"]},"unindexed":[1]}`))
	f.Add([]byte(`{"subjects":{},"aliases":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := history.Unmarshal(data)
		if err != nil {
			return
		}
		for s := range x.Subjects {
			idx, _ := x.Lookup(s)
			if len(idx) > 0 && idx[len(idx)-1] >= x.Size {
				t.Fatalf("%s: index %d beyond size %d", s, idx[len(idx)-1], x.Size)
			}
		}
	})
}

// TestErasure: the log's erasure event takes the erased entry out of the
// index.
func TestErasure(t *testing.T) {
	x := history.New("o")
	g := stategen.New(5, 3, 3)
	var ev *stelev1.IdentityEvent
	for ev = g.Next(); len(history.Subjects(stategen.Source, ev)) < 2; ev = g.Next() {
	}
	x.Add(0, stategen.Source, ev)
	x.Add(1, stategen.Source, ev)
	s := history.Subjects(stategen.Source, ev)[1]
	erasure := &stelev1.IdentityEvent{Kind: "stele.erasure", RawRecord: []byte(`{"erased_index":0,"leaf_hash":"x","reason":"r"}`)}
	x.Add(2, "stele/erasure", erasure)
	if got, _ := x.Lookup(s); !slices.Equal(got, []uint64{1}) || !slices.Equal(x.Unindexed, []uint64{0}) {
		t.Errorf("after erasing entry 0: %v, unindexed %v", got, x.Unindexed)
	}
	// Only the server's erasure source counts.
	x.Add(3, "entra/t1/audit", &stelev1.IdentityEvent{Kind: "stele.erasure", RawRecord: []byte(`{"erased_index":1}`)})
	if got, _ := x.Lookup(s); !slices.Equal(got, []uint64{1}) {
		t.Errorf("a producer's look-alike erased entry 1: %v", got)
	}
}
