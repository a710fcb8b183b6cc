package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

func newEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(k ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

func signed(t *testing.T, ev *stelev1.Event, k ed25519.PrivateKey) *stelev1.Event {
	t.Helper()
	if err := client.SignEvent(ev, k); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestProducerSignatures runs a server whose access policy requires
// signatures on audit sources: signed events are admitted and verify later
// from their leaf; unsigned, forged, wrong-key and malformed ones are
// refused with nothing written; a source without the requirement still
// takes unsigned events. It also checks per-source read grants.
func TestProducerSignatures(t *testing.T) {
	k1, k3 := newEd25519(t), newEd25519(t)
	// k2 is listed in the policy as a signed-note verifier key.
	skey, vkey, err := note.GenerateKey(rand.Reader, "collector-2")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := client.ParseSigningKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pf := writeFile(t, dir, "policy.json", []byte(`{
  "signed_sources": ["entra/*/audit"],
  "identities": [
    {"name": "collector", "token_sha256": "`+tokenHash("tok-p")+`", "roles": ["producer"], "sources": ["entra/*/*"],
     "signing_keys": ["`+b64(k1)+`", "`+vkey+`"]},
    {"name": "t1-reader", "token_sha256": "`+tokenHash("tok-r1")+`", "roles": ["reader"], "read_sources": ["entra/t1/*"]},
    {"name": "reader", "token_sha256": "`+tokenHash("tok-r")+`", "roles": ["reader"]}
  ]}`))
	as := startAuthServer(t, server.Config{AuthPolicyFile: pf})
	c, err := client.Dial(as.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := func(tok string) context.Context { return withToken(ctxT(t, 30*time.Second), tok) }
	appendOne := func(ev *stelev1.Event) *stelev1.AppendResult {
		t.Helper()
		rs, err := c.Append(ctx("tok-p"), []*stelev1.Event{ev})
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		return rs[0]
	}
	wantOK := func(what string, r *stelev1.AppendResult, idx uint64) {
		t.Helper()
		if r.Code != 0 || r.Index != idx || r.Duplicate {
			t.Fatalf("%s: %v, want admitted at %d", what, r, idx)
		}
	}
	wantRefused := func(what string, r *stelev1.AppendResult, code codes.Code, msg string) {
		t.Helper()
		if codes.Code(r.Code) != code || !strings.Contains(r.Message, msg) {
			t.Errorf("%s: code %v %q, want %v containing %q", what, codes.Code(r.Code), r.Message, code, msg)
		}
	}

	wantOK("signed with a raw key", appendOne(signed(t, event("entra/t1/audit", "s1", 300), k1)), 0)
	wantRefused("unsigned on a signed source", appendOne(event("entra/t1/audit", "u1", 300)), codes.Unauthenticated, "requires a producer signature")
	forged := signed(t, event("entra/t1/audit", "f1", 300), k1)
	forged.Record = bytes.Replace(forged.Record, []byte("admin@"), []byte("mallory@"), 1)
	wantRefused("forged (record changed after signing)", appendOne(forged), codes.Unauthenticated, "does not verify")
	forged = signed(t, event("entra/t1/audit", "f2", 300), k1)
	forged.EventTime = timestamppb.New(forged.EventTime.AsTime().Add(time.Second))
	wantRefused("forged (event_time changed after signing)", appendOne(forged), codes.Unauthenticated, "does not verify")
	wantRefused("signed by a key not in the policy", appendOne(signed(t, event("entra/t1/audit", "w1", 300), k3)), codes.Unauthenticated, "not one of identity \"collector\"'s signing keys")
	bad := signed(t, event("entra/t1/audit", "m1", 300), k1)
	bad.ProducerSignature.Signature = bad.ProducerSignature.Signature[:10]
	wantRefused("malformed signature", appendOne(bad), codes.InvalidArgument, "is 10 bytes, want 64")
	// A signature by another identity's key also fails to verify when the
	// public key named is swapped.
	swapped := signed(t, event("entra/t1/audit", "x1", 300), k3)
	swapped.ProducerSignature.PublicKey = k1.Public().(ed25519.PublicKey)
	wantRefused("signature with another key's public key", appendOne(swapped), codes.Unauthenticated, "does not verify")
	// Nothing was written by the refusals: the next entries are 1, 2, 3.
	wantOK("signed with a note-verifier-listed key", appendOne(signed(t, event("entra/t2/audit", "s2", 300), k2)), 1)
	wantOK("unsigned on a source without the requirement", appendOne(event("entra/t1/signin", "u2", 300)), 2)
	// Client.WithSigningKey signs on the way out.
	sc, err := client.Dial(as.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), client.WithSigningKey(k1))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	rs, err := sc.Append(ctx("tok-p"), []*stelev1.Event{event("entra/t1/audit", "s3", 300)})
	if err != nil {
		t.Fatal(err)
	}
	wantOK("signed by WithSigningKey", rs[0], 3)
	// A record left for the normaliser to settle: SignEvent fills in
	// event_id, kind and event_time first, since the signature covers them.
	rec, err := os.ReadFile("../identity/testdata/golden/entra.directoryAudit/role-member-add-direct.json")
	if err != nil {
		t.Fatal(err)
	}
	bare := &stelev1.Event{Source: "entra/t1/audit", Format: "entra.directoryAudit", Record: rec}
	nosig := proto.CloneOf(bare)
	wantOK("signed, id/kind/time filled by SignEvent", appendOne(signed(t, bare, k1)), 4)
	if bare.Kind != "directory.role.member.add" || bare.EventId == "" || bare.EventTime == nil {
		t.Fatalf("SignEvent did not fill the event in: %v", bare)
	}
	// Signed by hand over the empty fields: refused, it would not verify
	// from the leaf.
	nosig.EventId = "other-id"
	nosig.ProducerSignature = &stelev1.ProducerSignature{PublicKey: k1.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(k1, leaf.ProducerMessage(nosig.Source, 0, nosig.EventId, "x.y", time.Unix(0, 0), nosig.Format, nosig.Record))}
	nosig.EventId = ""
	wantRefused("signed with kind and event_id left to the server", appendOne(nosig), codes.InvalidArgument, "must carry its own event_id, kind and event_time")

	// Later, anyone holding the leaf (from the public log) and the record
	// (from a reader) can check who signed.
	wantSigner := map[uint64]string{0: b64(k1), 1: b64(k2), 2: "", 3: b64(k1), 4: b64(k1)}
	logKey, err := note.NewVerifier(as.srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for idx, want := range wantSigner {
		raw, err := c.Receipt(ctx("tok-r"), idx)
		if err != nil {
			t.Fatal(err)
		}
		r, err := client.VerifyReceipt(raw, logKey)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := c.Event(ctx("tok-r"), idx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.VerifyEvent(r, ev.Leaf, ev.Salt, ev.Payload); err != nil {
			t.Errorf("entry %d: %v", idx, err)
		}
		if got := r.Signer(); got != want {
			t.Errorf("entry %d: signer %q, want %q", idx, got, want)
		}
		l, err := leaf.Unmarshal(r.LeafBytes)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			continue
		}
		if err := l.VerifySignature(ev.Format, ev.Record); err != nil {
			t.Errorf("entry %d: the signature in the leaf does not verify: %v", idx, err)
		}
		if err := l.VerifySignature(ev.Format, append([]byte(nil), ev.Record[:len(ev.Record)-1]...)); err == nil {
			t.Errorf("entry %d: the leaf's signature verifies over a different record", idx)
		}
	}

	// Read grants: t1-reader reads entra/t1/* only.
	if _, err := c.Event(ctx("tok-r1"), 0); err != nil {
		t.Errorf("t1-reader reading entra/t1/audit: %v", err)
	}
	if _, err := c.Event(ctx("tok-r1"), 2); err != nil {
		t.Errorf("t1-reader reading entra/t1/signin: %v", err)
	}
	_, err = c.Event(ctx("tok-r1"), 1)
	wantCode(t, "t1-reader reading entra/t2/audit", err, codes.PermissionDenied)
	if err != nil && !strings.Contains(err.Error(), `"entra/t2/audit"`) {
		t.Errorf("read denial %q does not name the source", err)
	}
	// Receipts hold no personal data: still open to it.
	if _, err := c.Receipt(ctx("tok-r1"), 1); err != nil {
		t.Errorf("t1-reader fetching a receipt of entra/t2: %v", err)
	}
}

// TestCLISignedSubmit signs with stele submit --signing-key and checks that
// stele verify --event names the key.
func TestCLISignedSubmit(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, filepath.Join(dir, "data"), server.Config{})
	skey, vkey, err := note.GenerateKey(rand.Reader, "collector")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := server.ParseSigningKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "collector.key")
	evFile := filepath.Join(dir, "events.jsonl")
	os.WriteFile(keyFile, []byte(skey+"\n"), 0o600)
	os.WriteFile(evFile, []byte(`{"source":"entra/t1/audit","event_id":"e1","kind":"user.update","event_time":"2026-01-02T03:04:05Z","format":"json","record":{"a":1}}`+"\n"), 0o600)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run("submit", "--server", ts.grpcAddr, "--signing-key", keyFile, evFile); code != 0 {
		t.Fatalf("submit: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := run("event", "--server", ts.grpcAddr, "--index", "0")
	if code != 0 {
		t.Fatalf("event: exit %d\n%s", code, errs)
	}
	os.WriteFile(filepath.Join(dir, "event.json"), []byte(out), 0o600)
	code, rc, errs := run("receipt", "--server", ts.grpcAddr, "--index", "0")
	if code != 0 {
		t.Fatalf("receipt: exit %d\n%s", code, errs)
	}
	os.WriteFile(filepath.Join(dir, "receipt"), []byte(rc), 0o600)
	code, out, errs = run("verify", "--log-key", filepath.Join(dir, "data", "log.pub"), "--event", filepath.Join(dir, "event.json"), filepath.Join(dir, "receipt"))
	want := "producer signature OK: signed by key " + base64.StdEncoding.EncodeToString(pub)
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("verify --event: exit %d, want %q in\n%s%s", code, want, out, errs)
	}
	if code, _, errs := run("submit", "--server", ts.grpcAddr, "--signing-key", evFile, evFile); code == 0 || !strings.Contains(errs, "signing key") {
		t.Errorf("submit with a bad key file: exit %d\n%s", code, errs)
	}
}
