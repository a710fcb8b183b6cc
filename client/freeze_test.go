package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
)

// freezeKey is a deterministic log key (the fuzzer's workers must agree).
func freezeKey(t testing.TB, origin string, seed byte) (note.Signer, note.Verifier, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)), origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v, vkey
}

func sampleFreeze(t testing.TB) (*client.Freeze, note.Signer, note.Verifier) {
	s, v, _ := freezeKey(t, "a.example/log", 1)
	_, _, succ := freezeKey(t, "b.example/log", 2)
	f := &client.Freeze{Origin: "a.example/log", Size: 42, Root: [32]byte{1, 2, 3}, Successor: "b.example/log", SuccessorKey: succ, SuccessorURL: "https://b.example/log/"}
	return f, s, v
}

func TestFreezeRoundTrip(t *testing.T) {
	f, s, v := sampleFreeze(t)
	raw, err := client.SignFreeze(f, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.ParseFreeze(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 42 || got.Root != f.Root || got.Successor != f.Successor || got.SuccessorKey != f.SuccessorKey || got.SuccessorURL != f.SuccessorURL {
		t.Fatalf("round trip: %+v", got)
	}
	sv, err := got.SuccessorVerifier()
	if err != nil || sv.Name() != "b.example/log" {
		t.Fatalf("successor verifier: %v", err)
	}
	if _, err := client.ParseCheckpoint(raw, v); err == nil {
		t.Fatal("a freeze statement parsed as a checkpoint")
	}
	// Without a successor.
	f2 := &client.Freeze{Origin: "a.example/log", Size: 0, Root: [32]byte{9}}
	raw2, err := client.SignFreeze(f2, s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.ParseFreeze(raw2, v); err != nil || got.Successor != "" {
		t.Fatalf("no successor: %v %v", got, err)
	}
}

// TestFreezeRefuses: each malformed statement is refused with the reason.
func TestFreezeRefuses(t *testing.T) {
	f, s, v := sampleFreeze(t)
	body := f.Body()
	rootLine := "root " + base64.StdEncoding.EncodeToString(f.Root[:]) + "\n"
	_, otherV, _ := freezeKey(t, "a.example/log", 7)
	for _, tc := range []struct {
		name, body, want string
		signer           note.Signer
		verifier         note.Verifier
	}{
		{"another key", body, "not signed by the log key", s, otherV},
		{"header", strings.Replace(body, "stele.dev/freeze/v1", "stele.dev/freeze/v2", 1), "first line", s, v},
		{"leading zero", strings.Replace(body, "size 42", "size 042", 1), "canonical decimal", s, v},
		{"negative", strings.Replace(body, "size 42", "size -1", 1), "canonical decimal", s, v},
		{"short root", strings.Replace(body, rootLine, "root AAAA\n", 1), "base64 of 32 bytes", s, v},
		{"order", strings.Replace(strings.Replace(body, "origin a.example/log\n", "", 1), "size 42\n", "size 42\norigin a.example/log\n", 1), "out-of-order", s, v},
		{"unknown line", body + "color blue\n", "unknown", s, v},
		{"repeated", body + "successor-url https://c.example/\n", "repeated", s, v},
		{"no value", strings.Replace(body, "size 42", "size", 1), "not \"key value\"", s, v},
		{"wrong origin", strings.Replace(body, "origin a.example/log", "origin c.example/log", 1), "freezes log", s, v},
		{"successor is itself", strings.Replace(body, "successor b.example/log", "successor a.example/log", 1), "new log", s, v},
		{"successor key name", strings.Replace(body, "successor b.example/log", "successor c.example/log", 1), "named", s, v},
		{"successor url", strings.Replace(body, "https://b.example/log/", "ftp://b.example/", 1), "http(s) URL", s, v},
		{"url without successor", "stele.dev/freeze/v1\norigin a.example/log\nsize 1\n" + rootLine + "successor-url https://b.example/\n", "without a successor", s, v},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := note.Sign(&note.Note{Text: tc.body}, tc.signer)
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.ParseFreeze(raw, tc.verifier)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := client.SignFreeze(&client.Freeze{Origin: "c.example/log"}, s); err == nil {
		t.Fatal("signed a statement for another origin")
	}
}

// TestChainFollow: a chain of three logs served over HTTP is followed to
// the open one; a frozen log whose checkpoint moved on is refused.
func TestChainFollow(t *testing.T) {
	type logSrv struct {
		s    note.Signer
		v    note.Verifier
		vkey string
		cp   []byte
		fz   []byte
		srv  *httptest.Server
	}
	mk := func(origin string, seed byte) *logSrv {
		l := &logSrv{}
		l.s, l.v, l.vkey = freezeKey(t, origin, seed)
		l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/checkpoint":
				w.Write(l.cp)
			case "/frozen":
				if l.fz == nil {
					http.NotFound(w, r)
					return
				}
				w.Write(l.fz)
			default:
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(l.srv.Close)
		return l
	}
	a, b, c := mk("a.example/log", 1), mk("b.example/log", 2), mk("c.example/log", 3)
	checkpoint := func(l *logSrv, origin string, size uint64, root [32]byte) {
		text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
		raw, err := note.Sign(&note.Note{Text: text}, l.s)
		if err != nil {
			t.Fatal(err)
		}
		l.cp = raw
	}
	freeze := func(l *logSrv, origin string, size uint64, root [32]byte, next *logSrv) {
		f := &client.Freeze{Origin: origin, Size: size, Root: root}
		if next != nil {
			f.Successor, f.SuccessorKey, f.SuccessorURL = next.v.Name(), next.vkey, next.srv.URL+"/"
		}
		raw, err := client.SignFreeze(f, l.s)
		if err != nil {
			t.Fatal(err)
		}
		l.fz = raw
	}
	checkpoint(a, "a.example/log", 10, [32]byte{10})
	freeze(a, "a.example/log", 10, [32]byte{10}, b)
	checkpoint(b, "b.example/log", 20, [32]byte{20})
	freeze(b, "b.example/log", 20, [32]byte{20}, c)
	checkpoint(c, "c.example/log", 5, [32]byte{5})
	ctx := context.Background()
	links, err := (&client.Chain{}).Follow(ctx, a.srv.URL, a.v)
	if err != nil || len(links) != 3 || links[2].Origin() != "c.example/log" || links[2].Freeze != nil || links[0].Final.Size != 10 {
		t.Fatalf("follow: %d links, %v", len(links), err)
	}
	// b grows after its freeze: refused.
	checkpoint(b, "b.example/log", 21, [32]byte{21})
	_, err = (&client.Chain{}).Follow(ctx, a.srv.URL, a.v)
	if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "must not change") {
		t.Fatalf("a frozen log that grew: %v", err)
	}
	// A loop back to a: refused.
	checkpoint(b, "b.example/log", 20, [32]byte{20})
	freeze(c, "c.example/log", 5, [32]byte{5}, a)
	_, err = (&client.Chain{}).Follow(ctx, a.srv.URL, a.v)
	if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "comes back") {
		t.Fatalf("a chain that loops: %v", err)
	}
}

func TestAsReadOnly(t *testing.T) {
	st, _ := status.New(codes.FailedPrecondition, "frozen").WithDetails(&errdetails.ErrorInfo{Reason: client.ReadOnlyReason, Domain: client.ErrorDomain,
		Metadata: map[string]string{client.MetaOrigin: "a", client.MetaFrozenSize: "7", client.MetaSuccessor: "b", client.MetaSuccessorURL: "https://b/"}})
	ro, ok := client.AsReadOnly(st.Err())
	if !ok || !ro.Frozen || ro.FrozenSize != 7 || ro.Successor != "b" || ro.SuccessorURL != "https://b/" {
		t.Fatalf("%+v %v", ro, ok)
	}
	if _, ok := client.AsReadOnly(status.Error(codes.FailedPrecondition, "other")); ok {
		t.Fatal("a FailedPrecondition without the detail read as read-only")
	}
	if _, ok := client.AsReadOnly(errors.New("x")); ok {
		t.Fatal("a plain error read as read-only")
	}
}

func FuzzParseFreeze(f *testing.F) {
	fz, s, v := sampleFreeze(f)
	raw, err := client.SignFreeze(fz, s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(fz.Body()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := client.ParseFreeze(data, v)
		if err != nil {
			if got != nil {
				t.Fatal("a statement returned with an error")
			}
			return
		}
		// Whatever parses is canonical and signs again to a statement
		// with the same body.
		again, err := client.SignFreeze(got, s)
		if err != nil {
			t.Fatalf("a parsed statement does not sign: %v", err)
		}
		if g2, err := client.ParseFreeze(again, v); err != nil || g2.Body() != got.Body() {
			t.Fatalf("re-signed statement: %v", err)
		}
	})
}
