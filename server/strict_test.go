package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// TestInvalidUTF8IsInvalidArgument sends the real binary requests whose
// string fields hold invalid UTF-8 (which no protobuf library would
// marshal): the caller's error, InvalidArgument, not the server's
// Internal.
func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	p := startProcess(t, t.TempDir())
	defer p.cli.Close()
	conn := rawConn(t, p.grpcAddr)
	var ev []byte
	ev = protowire.AppendTag(ev, 1, protowire.BytesType)
	ev = protowire.AppendString(ev, "entra/\xff/audit")
	var appendReq []byte
	appendReq = protowire.AppendTag(appendReq, 1, protowire.BytesType)
	appendReq = protowire.AppendBytes(appendReq, ev)
	var eraseReq []byte
	eraseReq = protowire.AppendTag(eraseReq, 2, protowire.BytesType)
	eraseReq = protowire.AppendString(eraseReq, "reason \xc3\x28")
	for _, c := range []struct {
		method string
		req    []byte
	}{
		{stelev1.LogService_Append_FullMethodName, appendReq},
		{stelev1.LogService_EraseEvent_FullMethodName, eraseReq},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := conn.Invoke(ctx, c.method, &rawMsg{c.req}, &rawMsg{})
		cancel()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s with invalid UTF-8: %v, want InvalidArgument naming UTF-8", c.method, err)
		}
	}
}

// TestEraseTextIsPrintable: an erasure's reason and request reference go
// into the public log and reports; like an event's origin they must be
// printable text, checked by the real binary.
func TestEraseTextIsPrintable(t *testing.T) {
	p := startProcess(t, t.TempDir())
	defer p.cli.Close()
	rs := mustAppend(t, p.cli, []*stelev1.Event{event("entra/t/audit", "e1", 300)})
	for _, c := range []struct{ reason, ref string }{
		{"gdpr art. 17\x1b[2J", "ticket-1"},
		{"gdpr art. 17", "ticket-1\nforged: line"},
		{"gdpr\x00", "ticket-1"},
	} {
		_, err := p.cli.Erase(ctxT(t, 10*time.Second), rs[0].Index, c.reason, c.ref)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "non-printable") {
			t.Errorf("erase with reason %q, reference %q: %v, want InvalidArgument (non-printable)", c.reason, c.ref, err)
		}
	}
	if _, err := p.cli.Erase(ctxT(t, 10*time.Second), rs[0].Index, "gdpr art. 17 — request", "ticket-1"); err != nil {
		t.Errorf("erase with printable text: %v", err)
	}
}

// TestPolicyReloadSeesSameSizeSameTimeReplacement revokes a token by
// replacing the policy file with one of the same size and modification
// time, in place (cp -p) and by rename (rsync -a): the real binary must
// refuse the token at once, without a SIGHUP.
func TestPolicyReloadSeesSameSizeSameTimeReplacement(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.json")
	pol := func(tok string) []byte {
		return policyJSON(t, map[string]any{"name": "p", "token_sha256": tokenHash(tok), "roles": []string{"producer"}, "sources": []string{"entra/*/audit"}})
	}
	if err := os.WriteFile(pf, pol("tok-a"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(pf)
	if err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, filepath.Join(dir, "data"), "--auth-policy", pf)
	defer p.cli.Close()
	appendAs := func(tok, id string) error {
		_, err := p.cli.Append(withToken(ctxT(t, 10*time.Second), tok), []*stelev1.Event{event("entra/t/audit", id, 300)})
		return err
	}
	if err := appendAs("tok-a", "a1"); err != nil {
		t.Fatalf("token a before the replacement: %v", err)
	}
	steps := []struct {
		name, next string
		replace    func(b []byte) error
	}{
		{"in place (cp -p)", "tok-b", func(b []byte) error { return os.WriteFile(pf, b, 0o600) }},
		{"by rename (rsync -a)", "tok-c", func(b []byte) error {
			tmp := filepath.Join(dir, ".policy.json.tmp")
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				return err
			}
			return os.Rename(tmp, pf)
		}},
	}
	prev := "tok-a"
	for _, st := range steps {
		if err := st.replace(pol(st.next)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(pf, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if now, err := os.Stat(pf); err != nil || now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
			t.Fatalf("%s: the replacement differs in size or time: %v %v", st.name, now, err)
		}
		if err := appendAs(prev, "x"+st.next); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: the revoked token: %v, want Unauthenticated", st.name, err)
		}
		if err := appendAs(st.next, "ok"+st.next); err != nil {
			t.Errorf("%s: the new token: %v", st.name, err)
		}
		prev = st.next
	}
}
