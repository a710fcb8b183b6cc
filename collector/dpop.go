package collector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// dpop makes DPoP proofs (RFC 9449) as Okta documents them for service
// apps that require DPoP: an ES256 JWT of type dpop+jwt carrying its
// public key (jwk), with htm, htu, iat and jti; nonce once the token
// endpoint has asked for one (error use_dpop_nonce, DPoP-Nonce header);
// and ath, the hash of the access token, on API requests. The key is made
// when the collector starts: tokens are bound to it, so a restart gets new
// ones.
type dpop struct {
	key *ecdsa.PrivateKey
	jwk map[string]string

	mu    sync.Mutex
	nonce string // the token endpoint's last DPoP-Nonce
}

func newDPoP() (*dpop, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding.EncodeToString
	return &dpop{key: k, jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": enc(pub[1:33]), "y": enc(pub[33:])}}, nil
}

// proof is the DPoP header for a request: method, the URL (its query and
// fragment are not part of htu), the nonce ("" for none) and the access
// token it carries ("" for the token request).
func (d *dpop) proof(method, target, nonce, accessToken string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	u.RawQuery, u.Fragment = "", ""
	var jti [16]byte
	rand.Read(jti[:])
	claims := jwt.MapClaims{"htm": method, "htu": u.String(), "iat": time.Now().Unix(), "jti": hex.EncodeToString(jti[:])}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		h := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(h[:])
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["typ"] = "dpop+jwt"
	t.Header["jwk"] = d.jwk
	return t.SignedString(d.key)
}

// tokenTransport adds a DPoP proof, with the last nonce, to the token
// requests of rt.
type dpopTokenTransport struct {
	d  *dpop
	rt http.RoundTripper
}

func (t dpopTokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.d.mu.Lock()
	nonce := t.d.nonce
	t.d.mu.Unlock()
	p, err := t.d.proof(req.Method, req.URL.String(), nonce, "")
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("DPoP", p)
	resp, err := t.rt.RoundTrip(r)
	if err == nil {
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			t.d.mu.Lock()
			t.d.nonce = n
			t.d.mu.Unlock()
		}
	}
	return resp, err
}
