package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

func TestParseSigningKey(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "collector")
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	for _, c := range []struct {
		in, err string
	}{
		{skey, ""},
		{skey + "\n", ""},
		{base64.StdEncoding.EncodeToString(seed), ""},
		{base64.StdEncoding.EncodeToString(seed[:31]), "32-byte Ed25519 seed"},
		{vkey, "signer key"},
		{"PRIVATE+KEY+collector+00000000+" + strings.SplitN(skey, "+", 5)[4], "not a signed-note signer key"},
		{"", "32-byte Ed25519 seed"},
	} {
		k, err := ParseSigningKey(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want error %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
		}
		if c.in == skey {
			// The note verifier key names the same public key.
			v, _ := note.NewVerifier(vkey)
			s, _ := note.NewSigner(skey)
			n, _ := note.Sign(&note.Note{Text: "x\n"}, s)
			if _, err := note.Open(n, note.VerifierList(v)); err != nil {
				t.Fatal(err)
			}
			vb, _ := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
			if !k.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(vb[1:])) {
				t.Errorf("the signer key's public key is not the verifier key's")
			}
		}
	}
}

func TestSignEvent(t *testing.T) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	ev := &stelev1.Event{Source: "entra/t1/audit", EventId: "e1", Kind: "user.update", EventTime: timestamppb.New(time.Unix(1700000000, 5)), Format: "json", Record: []byte(`{"a":1}`)}
	if err := SignEvent(ev, k); err != nil {
		t.Fatal(err)
	}
	l := leaf.Leaf{Source: ev.Source, EventID: ev.EventId, Kind: ev.Kind, EventTime: ev.EventTime.AsTime(),
		Signature: &leaf.Signature{PublicKey: ev.ProducerSignature.PublicKey, Sig: ev.ProducerSignature.Signature}}
	if err := l.VerifySignature(ev.Format, ev.Record); err != nil {
		t.Fatal(err)
	}
	if err := SignEvent(&stelev1.Event{Source: "entra/t1/audit", EventId: "e1", Kind: "k", Format: "json", Record: []byte("{}")}, k); err == nil {
		t.Error("signed an event without event_time")
	}
	if err := SignEvent(&stelev1.Event{Source: "", EventId: "e1", Kind: "k", EventTime: ev.EventTime, Format: "json", Record: []byte("{}")}, k); err == nil {
		t.Error("signed an event without source")
	}
	if err := SignEvent(ev, k[:10]); err == nil {
		t.Error("signed with a truncated key")
	}
}

// FuzzParseSigningKey: key files never make the parser panic, and an
// accepted key signs and verifies.
func FuzzParseSigningKey(f *testing.F) {
	skey, _, _ := note.GenerateKey(rand.Reader, "c")
	f.Add(skey)
	f.Add("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("PRIVATE+KEY+c+00000000+AQ==")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSigningKey(s)
		if err != nil {
			return
		}
		sig := ed25519.Sign(k, []byte("m"))
		if !ed25519.Verify(k.Public().(ed25519.PublicKey), []byte("m"), sig) {
			t.Fatal("accepted key does not verify its own signature")
		}
	})
}
