package client_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/mldsaref"
)

const pqOrigin = "example.com/pq-interop"

// pqBody is a checkpoint body of size 7.
var pqBody = mldsaref.Checkpoint{Origin: pqOrigin, Size: 7, Hash: [32]byte{1, 2, 3}}

func bodyText(c mldsaref.Checkpoint) string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// newPQLog makes a log key pair with an ML-DSA-44 key, as a new
// stele-server does, and returns it with the seed of log-mldsa.key.
func newPQLog(t *testing.T) (*logkey.Key, [32]byte) {
	t.Helper()
	dir := t.TempDir()
	k, err := logkey.LoadOrCreate(dir, pqOrigin, "", logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, logkey.MLDSAPrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimSpace(string(raw)), "+", 5)
	b, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(b) != 33 || b[0] != 0x06 {
		t.Fatalf("log-mldsa.key is not PRIVATE+KEY+name+id+base64(0x06 || seed): %d bytes", len(b))
	}
	return k, [32]byte(b[1:])
}

// TestMLDSACheckpointInterop: a Stele log's ML-DSA-44 checkpoint
// signature verifies with an independent implementation (mldsaref: the
// spec's message layout written afresh, Cloudflare circl's ML-DSA-44), the
// same seed gives the same public key in both, and a signature made by
// circl verifies with Stele's verifier.
func TestMLDSACheckpointInterop(t *testing.T) {
	k, seed := newPQLog(t)
	raw, err := note.Sign(&note.Note{Text: bodyText(pqBody)}, k.Signer, k.MLDSA.Signer)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := mldsaref.ParseVKey(k.MLDSA.VKey)
	if err != nil {
		t.Fatalf("circl cannot read Stele's ML-DSA-44 vkey: %v", err)
	}
	ts, err := ref.VerifyNote(raw)
	if err != nil {
		t.Fatalf("circl does not verify Stele's ML-DSA-44 checkpoint signature: %v", err)
	}
	if d := time.Since(time.Unix(int64(ts), 0)); d < -time.Minute || d > time.Minute {
		t.Fatalf("signature timestamp %d is not now", ts)
	}
	// Same FIPS 204 key generation from the seed in both libraries.
	circl := mldsaref.NewSigner(pqOrigin, seed)
	if circl.VKey() != k.MLDSA.VKey {
		t.Fatal("circl derives another public key from log-mldsa.key's seed")
	}
	// circl signs; Stele's verifier (transparency-dev/formats over filippo.io/mldsa) checks.
	line, err := circl.SignLine(pqBody, uint64(time.Now().Unix()))
	if err != nil {
		t.Fatal(err)
	}
	byCircl := []byte(bodyText(pqBody) + "\n" + line)
	pqOnly, err := client.NewLogVerifier(k.MLDSA.VKey)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := client.ParseCheckpoint(byCircl, pqOnly)
	if err != nil {
		t.Fatalf("Stele refuses a checkpoint signed by circl: %v", err)
	}
	if cp.Size != 7 || cp.Origin != pqOrigin {
		t.Fatalf("parsed %+v", cp)
	}
	// log.pub (both keys): the circl-signed checkpoint passes, and not
	// when both keys are required.
	both, err := client.NewLogVerifier(k.VKeys()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ParseCheckpoint(byCircl, both); err != nil {
		t.Fatalf("either key: %v", err)
	}
	if _, err := client.ParseCheckpoint(byCircl, both.RequireAll()); err == nil || !strings.Contains(err.Error(), "no Ed25519 signature by the log key") {
		t.Fatalf("both keys required, ML-DSA-44 only: %v", err)
	}
	// Tampering: another size, another root, another origin's name.
	for name, body := range map[string]mldsaref.Checkpoint{
		"size": {Origin: pqOrigin, Size: 8, Hash: pqBody.Hash},
		"root": {Origin: pqOrigin, Size: 7, Hash: [32]byte{9}},
	} {
		if _, err := client.ParseCheckpoint([]byte(bodyText(body)+"\n"+line), both); err == nil || !strings.Contains(err.Error(), "invalid signature") {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	// Extension lines are not covered by an ML-DSA-44 signature.
	ext := []byte(bodyText(pqBody) + "extension\n\n" + line)
	if _, err := client.ParseCheckpoint(ext, pqOnly); err == nil || !strings.Contains(err.Error(), "do not cover them") {
		t.Fatalf("extension lines under an ML-DSA-44 signature only: %v", err)
	}
}

// TestPolicyMixedKeyTypes: a tlog-policy naming one witness by its
// Ed25519 (0x04) key and another by its ML-DSA-44 (0x06) key; the ML-DSA-44
// cosignature is made by circl, so the policy check is interop too.
func TestPolicyMixedKeyTypes(t *testing.T) {
	k, _ := newPQLog(t)
	logRaw, err := note.Sign(&note.Note{Text: bodyText(pqBody)}, k.Signer, k.MLDSA.Signer)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := client.NewLogVerifier(k.VKeys()...)
	if err != nil {
		t.Fatal(err)
	}
	ed := newWitnessKey(t, "w1.example/ed")
	pq := mldsaref.NewSigner("w2.example/pq", [32]byte{42})
	pqLine, err := pq.SignLine(pqBody, uint64(time.Now().Unix()))
	if err != nil {
		t.Fatal(err)
	}
	edSigned, err := note.Sign(&note.Note{Text: bodyText(pqBody)}, ed.signer)
	if err != nil {
		t.Fatal(err)
	}
	edLine := string(edSigned[len(bodyText(pqBody))+1:])
	policy := func(q string) *client.Policy {
		p, err := client.ParsePolicy(fmt.Appendf(nil, "witness w1 %s http://127.0.0.1:1/\nwitness w2 %s http://127.0.0.1:2/\ngroup g %s w1 w2\nquorum g\n", ed.vkey, pq.VKey(), q))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(raw []byte, p *client.Policy) error {
		cp, err := client.ParseCheckpoint(raw, lv)
		if err != nil {
			t.Fatal(err)
		}
		return p.Check(cp)
	}
	all := append(append([]byte{}, logRaw...), edLine+pqLine...)
	onlyEd := append(append([]byte{}, logRaw...), edLine...)
	onlyPQ := append(append([]byte{}, logRaw...), pqLine...)
	if err := check(all, policy("all")); err != nil {
		t.Errorf("both witnesses, all: %v", err)
	}
	if err := check(onlyEd, policy("all")); err == nil || !strings.Contains(err.Error(), "not by [w2.example/pq]") {
		t.Errorf("Ed25519 witness only, all: %v", err)
	}
	if err := check(onlyPQ, policy("all")); err == nil || !strings.Contains(err.Error(), "not by [w1.example/ed]") {
		t.Errorf("ML-DSA-44 witness only, all: %v", err)
	}
	if err := check(onlyPQ, policy("any")); err != nil {
		t.Errorf("ML-DSA-44 witness only, any: %v", err)
	}
	if err := check(onlyEd, policy("any")); err != nil {
		t.Errorf("Ed25519 witness only, any: %v", err)
	}
	// A cosignature by the ML-DSA-44 witness over another tree does not count.
	other, _ := pq.SignLine(mldsaref.Checkpoint{Origin: pqOrigin, Size: 6, Hash: pqBody.Hash}, uint64(time.Now().Unix()))
	wrong := append(append([]byte{}, logRaw...), other...)
	if _, err := client.ParseCheckpoint(wrong, lv); err != nil {
		t.Fatal(err)
	}
	if err := check(wrong, policy("any")); err == nil {
		t.Error("a cosignature over another size met the policy")
	}
}

// TestSpecSignedNoteExample: the c2sp.org/signed-note example vkey and
// note still verify through NewLogVerifier (the spec has no ML-DSA-44
// vectors; see docs/decisions.md).
func TestSpecSignedNoteExample(t *testing.T) {
	v, err := client.NewLogVerifier("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
	if err != nil {
		t.Fatal(err)
	}
	msg := "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
	if _, err := note.Open([]byte(msg), note.VerifierList(v.Keys()...)); err != nil {
		t.Fatalf("spec example: %v", err)
	}
	// And formats' ML-DSA-44 key encoding is what the spec's vkey says: 0x06 || 1312 bytes.
	_, vkey, err := fnote.GenerateMLDSAKey("example.com/foo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mldsaref.ParseVKey(vkey); err != nil {
		t.Fatalf("formats' ML-DSA-44 vkey per the spec: %v", err)
	}
}

// FuzzLogVerifier: any text as log.pub gives a LogVerifier or an error,
// never a panic; and any bytes as a checkpoint, checked against a log's
// Ed25519 + ML-DSA-44 keys, are accepted only as the body the test signed,
// never with extension lines under an ML-DSA-44 signature alone.
func FuzzLogVerifier(f *testing.F) {
	dir := f.TempDir()
	k, err := logkey.LoadOrCreate(dir, pqOrigin, "", logkey.MLDSAAuto)
	if err != nil {
		f.Fatal(err)
	}
	both, err := client.NewLogVerifier(k.VKeys()...)
	if err != nil {
		f.Fatal(err)
	}
	sign := func(text string, signers ...note.Signer) []byte {
		raw, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	body := bodyText(pqBody)
	pub := string(k.PublicText())
	f.Add(pub, sign(body, k.Signer, k.MLDSA.Signer))
	f.Add(pub, sign(body, k.MLDSA.Signer))
	f.Add(pub, sign(body+"ext\n", k.MLDSA.Signer))
	f.Add(k.VKey+"\n"+k.VKey+"\n", sign(body, k.Signer))
	f.Add("a+b+c", []byte{})
	f.Fuzz(func(t *testing.T, keys string, data []byte) {
		if lv, err := client.NewLogVerifier(strings.Fields(keys)...); err == nil {
			for _, v := range lv.Keys() {
				if v.Name() != lv.Name() {
					t.Fatalf("keys of two names accepted: %q and %q", v.Name(), lv.Name())
				}
			}
			client.ParseCheckpoint(data, lv)
		}
		for _, v := range []*client.LogVerifier{both, both.RequireAll()} {
			cp, err := client.ParseCheckpoint(data, v)
			if err != nil {
				continue
			}
			if cp.Origin != pqOrigin || cp.Size != pqBody.Size || cp.Root != pqBody.Hash {
				t.Fatalf("a checkpoint the test never signed verified: %q", cp.Note.Text)
			}
			if cp.Note.Text != body {
				edSigned := false
				for _, s := range cp.Note.Sigs {
					edSigned = edSigned || s.Hash == k.Verifier.KeyHash()
				}
				if !edSigned {
					t.Fatalf("extension lines accepted under an ML-DSA-44 signature alone: %q", cp.Note.Text)
				}
			}
		}
	})
}
