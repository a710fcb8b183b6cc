package mirror

import (
	"bytes"
	"errors"
	"testing"

	"github.com/transparency-dev/tessera/api"
)

func TestCutBundle(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    string
		n    int
		want string // "" with ok false: an error
		ok   bool
	}{
		{"exact", "\x00\x01a\x00\x02bc", 2, "\x00\x01a\x00\x02bc", true},
		{"prefix of a larger bundle", "\x00\x01a\x00\x02bc", 1, "\x00\x01a", true},
		{"empty entry", "\x00\x00\x00\x01z", 2, "\x00\x00\x00\x01z", true},
		{"too few entries", "\x00\x01a", 2, "", false},
		{"truncated entry", "\x00\x05abc", 1, "", false},
		{"half a length prefix", "\x00\x01a\x00", 2, "", false},
		{"empty", "", 1, "", false},
		{"trailing bytes after the nth entry are cut", "\x00\x01a\xff", 1, "\x00\x01a", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cutBundle([]byte(tc.b), tc.n)
			if !tc.ok {
				if err == nil || !errors.Is(err, ErrVerification) {
					t.Fatalf("got %q, %v; want a verification error", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzCutBundle checks cutBundle against Tessera's own bundle parser:
// what it cuts parses there into exactly n entries, the first n of the
// input's, and it cuts whenever the input holds n whole entries.
func FuzzCutBundle(f *testing.F) {
	f.Add([]byte("\x00\x01a\x00\x02bc"), uint8(1))
	f.Add([]byte("\x00\x00"), uint8(1))
	f.Add([]byte("\x00\x05abc"), uint8(1))
	f.Add([]byte{}, uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, n8 uint8) {
		n := int(n8)
		if n == 0 {
			n = 256
		}
		cut, err := cutBundle(b, n)
		if err != nil {
			if !errors.Is(err, ErrVerification) {
				t.Fatalf("error does not wrap ErrVerification: %v", err)
			}
			var whole api.EntryBundle
			if whole.UnmarshalText(b) == nil && len(whole.Entries) >= n {
				t.Fatalf("refused a bundle of %d entries for n=%d: %v", len(whole.Entries), n, err)
			}
			return
		}
		if !bytes.HasPrefix(b, cut) {
			t.Fatal("the cut is not a prefix of the input")
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(cut); err != nil {
			t.Fatalf("tessera does not parse the cut: %v", err)
		}
		es := entries(cut)
		if len(eb.Entries) != n || len(es) != n {
			t.Fatalf("the cut holds %d (tessera) / %d entries, want %d", len(eb.Entries), len(es), n)
		}
		for i := range es {
			if !bytes.Equal(es[i], eb.Entries[i]) {
				t.Fatalf("entry %d differs from tessera's", i)
			}
		}
	})
}
