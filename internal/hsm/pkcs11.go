//go:build cgo

package hsm

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 3.0 EdDSA values, which miekg/pkcs11's v2.40 constants lack.
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
)

// ed25519Params is CKA_EC_PARAMS for Ed25519: the DER encoding of the
// object identifier id-Ed25519 (1.3.101.112, RFC 8410).
var ed25519Params = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// Key is an Ed25519 private key inside a PKCS#11 token, with the session
// that signs with it. It is safe for concurrent use (signatures are
// serialised: a PKCS#11 session does one operation at a time).
type Key struct {
	mu      sync.Mutex
	ctx     *pkcs11.Ctx
	session pkcs11.SessionHandle
	priv    pkcs11.ObjectHandle
	pub     ed25519.PublicKey
}

// session loads the module, finds the token and logs in.
func session(c Config) (*pkcs11.Ctx, pkcs11.SessionHandle, error) {
	p := pkcs11.New(c.Module)
	if p == nil {
		return nil, 0, fmt.Errorf("loading PKCS#11 module %s failed: check the path and that it is a PKCS#11 library", c.Module)
	}
	if err := p.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		p.Destroy()
		return nil, 0, fmt.Errorf("initialising PKCS#11 module %s: %w", c.Module, err)
	}
	fail := func(err error) (*pkcs11.Ctx, pkcs11.SessionHandle, error) {
		p.Finalize()
		p.Destroy()
		return nil, 0, err
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return fail(fmt.Errorf("listing PKCS#11 slots: %w", err))
	}
	var labels []string
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		labels = append(labels, ti.Label)
		if ti.Label != c.Token {
			continue
		}
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fail(fmt.Errorf("opening a session on token %q: %w", c.Token, err))
		}
		if err := p.Login(sh, pkcs11.CKU_USER, c.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			p.CloseSession(sh)
			return fail(fmt.Errorf("logging in to token %q: %w (check the PIN)", c.Token, err))
		}
		return p, sh, nil
	}
	return fail(fmt.Errorf("no PKCS#11 token labelled %q in %s (tokens: %q)", c.Token, c.Module, labels))
}

// find returns the one object of class with the key's label.
func find(p *pkcs11.Ctx, sh pkcs11.SessionHandle, class uint, label string) (pkcs11.ObjectHandle, bool, error) {
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return 0, false, err
	}
	objs, _, err := p.FindObjects(sh, 2)
	if ferr := p.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	switch {
	case err != nil:
		return 0, false, err
	case len(objs) > 1:
		return 0, false, fmt.Errorf("more than one key labelled %q: labels must name one key pair", label)
	case len(objs) == 0:
		return 0, false, nil
	}
	return objs[0], true, nil
}

// publicKey reads the Ed25519 public key of a public-key object: CKA_EC_POINT
// holds it as a DER OCTET STRING (PKCS#11 3.0) or, in some tokens, raw.
func publicKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) (ed25519.PublicKey, error) {
	attrs, err := p.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("reading the public key: %w", err)
	}
	pt := attrs[0].Value
	switch {
	case len(pt) == ed25519.PublicKeySize+2 && pt[0] == 0x04 && pt[1] == ed25519.PublicKeySize:
		return ed25519.PublicKey(pt[2:]), nil
	case len(pt) == ed25519.PublicKeySize:
		return ed25519.PublicKey(pt), nil
	}
	return nil, fmt.Errorf("the public key's CKA_EC_POINT is %d bytes, not an Ed25519 point: is the key pair Ed25519 (CKK_EC_EDWARDS)?", len(pt))
}

// Generate creates an Ed25519 key pair labelled c.Label inside the token:
// the private half sensitive, not extractable, usable only to sign. It
// refuses when the label is taken, so a key is never replaced by mistake.
func Generate(c Config) (ed25519.PublicKey, error) {
	p, sh, err := session(c)
	if err != nil {
		return nil, err
	}
	defer closeSession(p, sh)
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		if _, ok, err := find(p, sh, class, c.Label); err != nil {
			return nil, fmt.Errorf("looking for key %q: %w", c.Label, err)
		} else if ok {
			return nil, fmt.Errorf("token %q already holds a key labelled %q: choose another label, or use that key", c.Token, c.Label)
		}
	}
	pubT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, c.Label),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
	}
	privT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, c.Label),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	}
	pubH, _, err := p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, pubT, privT)
	if err != nil {
		return nil, fmt.Errorf("generating an Ed25519 key pair in token %q: %w (does the token support EdDSA, PKCS#11 3.0?)", c.Token, err)
	}
	return publicKey(p, sh, pubH)
}

// Open finds the Ed25519 key pair labelled c.Label in the token and logs
// in to sign with it. Close releases the session.
func Open(c Config) (*Key, error) {
	p, sh, err := session(c)
	if err != nil {
		return nil, err
	}
	k := &Key{ctx: p, session: sh}
	fail := func(err error) (*Key, error) {
		closeSession(p, sh)
		return nil, err
	}
	var ok bool
	if k.priv, ok, err = find(p, sh, pkcs11.CKO_PRIVATE_KEY, c.Label); err != nil {
		return fail(fmt.Errorf("looking for private key %q: %w", c.Label, err))
	} else if !ok {
		return fail(fmt.Errorf("token %q holds no private key labelled %q: create one with 'stele-server pkcs11-keygen'", c.Token, c.Label))
	}
	pubH, ok, err := find(p, sh, pkcs11.CKO_PUBLIC_KEY, c.Label)
	if err != nil {
		return fail(fmt.Errorf("looking for public key %q: %w", c.Label, err))
	} else if !ok {
		return fail(fmt.Errorf("token %q holds no public key labelled %q next to the private key", c.Token, c.Label))
	}
	if k.pub, err = publicKey(p, sh, pubH); err != nil {
		return fail(err)
	}
	// The key must sign what its public half verifies: a token with a
	// mislabelled pair would otherwise publish unverifiable checkpoints.
	probe := []byte("stele: PKCS#11 key check")
	sig, err := k.Sign(nil, probe, crypto.Hash(0))
	if err != nil {
		return fail(err)
	}
	if !ed25519.Verify(k.pub, probe, sig) {
		return fail(fmt.Errorf("key %q in token %q: a signature by the private key does not verify with the public key labelled the same", c.Label, c.Token))
	}
	return k, nil
}

// Public returns the Ed25519 public key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Sign signs message itself (pure Ed25519: opts must be crypto.Hash(0)).
func (k *Key) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, errors.New("hsm: Ed25519 signs the message itself, not a digest (opts must be crypto.Hash(0))")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.ctx.SignInit(k.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, k.priv); err != nil {
		return nil, fmt.Errorf("PKCS#11 sign: %w", err)
	}
	sig, err := k.ctx.Sign(k.session, message)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 sign: %w", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("PKCS#11 sign returned %d bytes, not an Ed25519 signature", len(sig))
	}
	return sig, nil
}

// Close logs out and releases the token.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	closeSession(k.ctx, k.session)
	return nil
}

func closeSession(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
	p.Logout(sh)
	p.CloseSession(sh)
	p.Finalize()
	p.Destroy()
}
