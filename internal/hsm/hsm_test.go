package hsm_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/stele-dev/stele/internal/gcpkmskey"
	"github.com/stele-dev/stele/internal/gcpkmskey/gcpkmstest"
	"github.com/stele-dev/stele/internal/hsm"
	"github.com/stele-dev/stele/internal/hsmtest"
	"github.com/stele-dev/stele/internal/kmskey"
	"github.com/stele-dev/stele/internal/kmskey/kmstest"
)

// TestGenerateSignVerify generates an Ed25519 key inside a real SoftHSM2
// token, signs through PKCS#11 and verifies with crypto/ed25519 (an
// independent implementation of the same algorithm).
func TestGenerateSignVerify(t *testing.T) {
	c := hsmtest.Token(t, "stele-test", "log")
	pub, err := hsm.Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.Generate(c); err == nil || !strings.Contains(err.Error(), "already holds a key") {
		t.Fatalf("a second key under the same label: %v", err)
	}
	k, err := hsm.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if !pub.Equal(k.Public()) {
		t.Fatal("Open found another public key than Generate made")
	}
	for _, msg := range [][]byte{nil, []byte("checkpoint body\n"), make([]byte, 10000)} {
		sig, err := k.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		if !ed25519.Verify(pub, msg, sig) {
			t.Fatalf("the token's signature over %d bytes does not verify", len(msg))
		}
	}
	if _, err := k.Sign(rand.Reader, []byte("x"), crypto.SHA256); err == nil {
		t.Fatal("a pre-hashed signature was accepted")
	}
}

// TestPrivateKeyStaysInToken: the private key generated in the token is
// sensitive and not extractable; reading its value is refused by the token.
func TestPrivateKeyStaysInToken(t *testing.T) {
	c := hsmtest.Token(t, "stele-test", "log")
	if _, err := hsm.Generate(c); err != nil {
		t.Fatal(err)
	}
	p := pkcs11.New(c.Module)
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Destroy()
	defer p.Finalize()
	slots, _ := p.GetSlotList(true)
	var sh pkcs11.SessionHandle
	for _, s := range slots {
		if ti, _ := p.GetTokenInfo(s); ti.Label == c.Token {
			sh, _ = p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION)
		}
	}
	if err := p.Login(sh, pkcs11.CKU_USER, c.PIN); err != nil {
		t.Fatal(err)
	}
	p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
	objs, _, _ := p.FindObjects(sh, 10)
	p.FindObjectsFinal(sh)
	if len(objs) != 1 {
		t.Fatalf("%d private keys in the token, want 1", len(objs))
	}
	attrs, err := p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if attrs[0].Value[0] != 1 || attrs[1].Value[0] != 0 {
		t.Fatalf("private key CKA_SENSITIVE=%v CKA_EXTRACTABLE=%v, want true and false", attrs[0].Value, attrs[1].Value)
	}
	if v, err := p.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
		t.Fatalf("the token handed out the private key's value: %x", v[0].Value)
	}
}

// TestOpenErrors: a wrong token, label or PIN is named in the error.
func TestOpenErrors(t *testing.T) {
	c := hsmtest.Token(t, "stele-test", "log")
	if _, err := hsm.Generate(c); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mod  func(*hsm.Config)
		want string
	}{
		"token":  {func(c *hsm.Config) { c.Token = "nope" }, `no PKCS#11 token labelled "nope"`},
		"label":  {func(c *hsm.Config) { c.Label = "nope" }, `holds no private key labelled "nope"`},
		"pin":    {func(c *hsm.Config) { c.PIN = "0000" }, "check the PIN"},
		"module": {func(c *hsm.Config) { c.Module = filepath.Join(t.TempDir(), "none.so") }, "loading PKCS#11 module"},
	} {
		cc := c
		tc.mod(&cc)
		if _, err := hsm.Open(cc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte("1234\n"), 0o600)
	c, err := hsm.ParseConfig("module=/m.so; token=t ;label=l", pinFile)
	if err != nil || c != (hsm.Config{Module: "/m.so", Token: "t", Label: "l", PIN: "1234"}) {
		t.Fatalf("%+v %v", c, err)
	}
	t.Setenv("STELE_PKCS11_PIN", "9999")
	if c, err := hsm.ParseConfig("module=/m.so;token=t;label=l", ""); err != nil || c.PIN != "9999" {
		t.Fatalf("PIN from the environment: %+v %v", c, err)
	}
	for ref, want := range map[string]string{
		"module=/m.so;token=t":                  "no label=",
		"token=t;label=l":                       "no module=",
		"module=/m.so;label=l":                  "no token=",
		"module=/m.so;token=t;label=l;pin=1234": "does not go in the reference",
		"module=/m.so;token=t;label=l;slot=1":   `unknown attribute "slot"`,
		"module=/m.so;token;label=l":            "is not name=value",
	} {
		if _, err := hsm.ParseConfig(ref, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", ref, err, want)
		}
	}
	t.Setenv("STELE_PKCS11_PIN", "")
	if _, err := hsm.ParseConfig("module=/m.so;token=t;label=l", ""); err == nil || !strings.Contains(err.Error(), "no PKCS#11 PIN") {
		t.Errorf("no PIN: %v", err)
	}
}

// BenchmarkSign compares one checkpoint-sized Ed25519 signature by a key
// in a file (crypto/ed25519), by the same algorithm inside SoftHSM2
// through PKCS#11, and through the AWS KMS and Google Cloud KMS clients
// against their loopback stand-ins (internal/kmskey/kmstest: HTTPS, SigV4,
// JSON; internal/gcpkmskey/gcpkmstest: gRPC over TLS, CRC32C checks), in
// one run. The KMS numbers are the client's cost plus a loopback round trip
// and the stand-in's own signing on the same machine, not a real KMS's
// network and HSM time:
//
//	go test ./internal/hsm -run '^$' -bench Sign
func BenchmarkSign(b *testing.B) {
	c := hsmtest.Token(b, "stele-bench", "log")
	if _, err := hsm.Generate(c); err != nil {
		b.Fatal(err)
	}
	k, err := hsm.Open(c)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	msg := []byte("stele.example/log\n123456789\nq4bHc8hvR2Vh0GfB0m1GBPxnXsOjt2B6WqB8tWcy1yI=\n")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(priv, msg)
		}
	})
	b.Run("pkcs11-softhsm2", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("aws-kms-double", func(b *testing.B) {
		srv := kmstest.Start(b)
		k, err := kmskey.Open(b.Context(), srv.Ed25519ARN)
		if err != nil {
			b.Fatal(err)
		}
		benchSigner(b, k, msg)
	})
	b.Run("gcp-kms-double", func(b *testing.B) {
		srv := gcpkmstest.Start(b)
		k, err := gcpkmskey.Open(b.Context(), gcpkmstest.Ed25519Name, srv.ClientOptions()...)
		if err != nil {
			b.Fatal(err)
		}
		defer k.Close()
		benchSigner(b, k, msg)
	})
}

func benchSigner(b *testing.B, k crypto.Signer, msg []byte) {
	if _, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil { // connection set up outside the loop
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Sign(nil, msg, crypto.Hash(0)); err != nil {
			b.Fatal(err)
		}
	}
}
