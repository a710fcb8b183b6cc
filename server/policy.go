package server

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/leaf"
)

// Roles an identity may hold (docs/security.md).
const (
	// RoleProducer may Append to the sources it is granted.
	RoleProducer = "producer"
	// RoleReader may read payloads (GetEvent).
	RoleReader = "reader"
	// RoleAdmin may administer the log (erasure, when it exists). It
	// grants neither producer nor reader rights.
	RoleAdmin = "admin"
)

// policyFile is the JSON access policy (--auth-policy), read strictly.
type policyFile struct {
	Identities []policyIdentity `json:"identities"`
	// SignedSources are the source patterns whose events must carry a
	// producer signature by one of the appending identity's signing keys.
	SignedSources []string `json:"signed_sources,omitempty"`
}

type policyIdentity struct {
	// Name labels the identity in logs and errors; unique.
	Name string `json:"name"`
	// Cert is the identity of a client certificate verified against the
	// client CA: its first URI SAN, or its subject CommonName when it has
	// no URI SAN.
	Cert string `json:"cert,omitempty"`
	// TokenSHA256 is the lowercase hex SHA-256 of a bearer token.
	TokenSHA256 string   `json:"token_sha256,omitempty"`
	Roles       []string `json:"roles"`
	// Sources are the source patterns a producer may append to.
	Sources []string `json:"sources,omitempty"`
	// EventsPerSecond and Burst are the identity's rate limit; unset, the
	// server's default applies. EventsPerSecond 0 with Burst unset: no
	// limit for this identity.
	EventsPerSecond *float64 `json:"events_per_second,omitempty"`
	Burst           *int     `json:"burst,omitempty"`
	// SigningKeys are the producer's Ed25519 public keys: each a standard
	// base64 32-byte key, or a signed-note verifier key
	// (name+hash+base64(0x01||key), golang.org/x/mod/sumdb/note).
	SigningKeys []string `json:"signing_keys,omitempty"`
	// ReadSources, when set, restrict a reader (or admin) to payloads of
	// these source patterns; unset, it may read every source.
	ReadSources []string `json:"read_sources,omitempty"`
}

// identity is a resolved policy entry.
type identity struct {
	name    string
	roles   map[string]bool
	sources []sourcePattern
	rate    *rateSpec // nil: the server's default
	// keys are the producer's Ed25519 signing keys.
	keys map[[ed25519.PublicKeySize]byte]bool
	// readSources restrict reading payloads; nil: every source.
	readSources []sourcePattern
}

// mayRead reports whether the identity may read payloads of source.
func (id *identity) mayRead(source string) bool {
	if id.readSources == nil {
		return true
	}
	return matchAny(id.readSources, source)
}

func matchAny(ps []sourcePattern, source string) bool {
	for _, p := range ps {
		if p.match(source) {
			return true
		}
	}
	return false
}

func (id *identity) has(role string) bool { return id != nil && id.roles[role] }

// granted reports whether the identity may append to source.
func (id *identity) granted(source string) bool {
	return matchAny(id.sources, source)
}

// policy is a parsed access policy.
type policy struct {
	byCert  map[string]*identity
	byToken map[[32]byte]*identity
	signed  []sourcePattern
}

// needsSignature reports whether events of source must be signed.
func (p *policy) needsSignature(source string) bool { return matchAny(p.signed, source) }

// sourcePattern is a source with some segments replaced by "*". A "*"
// matches exactly one whole segment; everything else matches literally,
// and a pattern matches only sources with as many segments as it has.
type sourcePattern []string

func (p sourcePattern) match(source string) bool {
	segs := strings.Split(source, "/")
	if len(segs) != len(p) {
		return false
	}
	for i, s := range segs {
		if p[i] != "*" && p[i] != s {
			return false
		}
	}
	return true
}

func parseSourcePattern(s string) (sourcePattern, error) {
	segs := strings.Split(s, "/")
	lit := make([]string, len(segs))
	for i, seg := range segs {
		lit[i] = seg
		if seg == "*" {
			lit[i] = "x"
		} else if strings.Contains(seg, "*") {
			return nil, fmt.Errorf("source pattern %q: \"*\" must be a whole segment", s)
		}
	}
	if err := leaf.ValidateSource(strings.Join(lit, "/")); err != nil {
		return nil, fmt.Errorf("source pattern %q: %v", s, err)
	}
	return sourcePattern(segs), nil
}

// parsePolicy parses and checks a policy file: unknown keys, unknown roles,
// duplicate names, certificate identities or token hashes, and bad source
// patterns are all errors.
func parsePolicy(b []byte) (*policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f policyFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the policy object")
	}
	p := &policy{byCert: map[string]*identity{}, byToken: map[[32]byte]*identity{}}
	names := map[string]bool{}
	keyOwner := map[[32]byte]string{}
	for _, ss := range f.SignedSources {
		sp, err := parseSourcePattern(ss)
		if err != nil {
			return nil, fmt.Errorf("signed_sources: %v", err)
		}
		p.signed = append(p.signed, sp)
	}
	for i, e := range f.Identities {
		where := fmt.Sprintf("identities[%d]", i)
		if e.Name == "" {
			return nil, fmt.Errorf("%s: name is empty", where)
		}
		where = fmt.Sprintf("identity %q", e.Name)
		if names[e.Name] {
			return nil, fmt.Errorf("%s: the name is used twice", where)
		}
		names[e.Name] = true
		if e.Cert == "" && e.TokenSHA256 == "" {
			return nil, fmt.Errorf("%s: set cert, token_sha256 or both", where)
		}
		id := &identity{name: e.Name, roles: map[string]bool{}}
		var err error
		if len(e.Roles) == 0 {
			return nil, fmt.Errorf("%s: no roles", where)
		}
		for _, r := range e.Roles {
			switch r {
			case RoleProducer, RoleReader, RoleAdmin:
				id.roles[r] = true
			default:
				return nil, fmt.Errorf("%s: unknown role %q (want producer, reader or admin)", where, r)
			}
		}
		for _, s := range e.Sources {
			sp, err := parseSourcePattern(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			id.sources = append(id.sources, sp)
		}
		if id.roles[RoleProducer] && len(id.sources) == 0 {
			return nil, fmt.Errorf("%s: a producer needs at least one source", where)
		}
		if !id.roles[RoleProducer] && len(id.sources) > 0 {
			return nil, fmt.Errorf("%s: sources are granted only to producers", where)
		}
		if id.rate, err = parseRate(e.EventsPerSecond, e.Burst); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if len(e.SigningKeys) > 0 && !id.roles[RoleProducer] {
			return nil, fmt.Errorf("%s: signing_keys are for producers", where)
		}
		for _, k := range e.SigningKeys {
			pub, err := ParseSigningKey(k)
			if err != nil {
				return nil, fmt.Errorf("%s: signing key %q: %v", where, k, err)
			}
			if o := keyOwner[[32]byte(pub)]; o != "" {
				return nil, fmt.Errorf("%s: signing key %q is also given to identity %q", where, k, o)
			}
			keyOwner[[32]byte(pub)] = e.Name
			if id.keys == nil {
				id.keys = map[[32]byte]bool{}
			}
			id.keys[[32]byte(pub)] = true
		}
		if e.ReadSources != nil {
			if !id.roles[RoleReader] && !id.roles[RoleAdmin] {
				return nil, fmt.Errorf("%s: read_sources are for readers and admins", where)
			}
			if len(e.ReadSources) == 0 {
				return nil, fmt.Errorf("%s: read_sources is empty: drop it to let the identity read every source, or name the sources", where)
			}
			id.readSources = []sourcePattern{}
			for _, rs := range e.ReadSources {
				sp, err := parseSourcePattern(rs)
				if err != nil {
					return nil, fmt.Errorf("%s: read_sources: %v", where, err)
				}
				id.readSources = append(id.readSources, sp)
			}
		}
		if e.Cert != "" {
			if p.byCert[e.Cert] != nil {
				return nil, fmt.Errorf("%s: cert %q is also given to identity %q", where, e.Cert, p.byCert[e.Cert].name)
			}
			p.byCert[e.Cert] = id
		}
		if e.TokenSHA256 != "" {
			h, err := hex.DecodeString(e.TokenSHA256)
			if err != nil || len(h) != 32 || strings.ToLower(e.TokenSHA256) != e.TokenSHA256 {
				return nil, fmt.Errorf("%s: token_sha256 must be 64 lowercase hex digits (sha256sum of the token)", where)
			}
			if o := p.byToken[[32]byte(h)]; o != nil {
				return nil, fmt.Errorf("%s: token is also given to identity %q", where, o.name)
			}
			p.byToken[[32]byte(h)] = id
		}
	}
	return p, nil
}

// parseRate checks an identity's rate limit. Both unset: the server's
// default. A rate needs a burst of at least 1; 0 events/s means no limit.
func parseRate(perSecond *float64, burst *int) (*rateSpec, error) {
	if perSecond == nil && burst == nil {
		return nil, nil
	}
	if perSecond == nil {
		return nil, errors.New("burst is set without events_per_second")
	}
	if *perSecond < 0 || math.IsNaN(*perSecond) || math.IsInf(*perSecond, 0) {
		return nil, fmt.Errorf("events_per_second %g: must be a positive number, or 0 for no limit", *perSecond)
	}
	if *perSecond == 0 {
		if burst != nil {
			return nil, errors.New("burst is set with events_per_second 0 (no limit)")
		}
		return &rateSpec{}, nil
	}
	if burst == nil || *burst < 1 {
		return nil, errors.New("events_per_second needs a burst of at least 1 (the largest batch the identity may send)")
	}
	return &rateSpec{perSecond: *perSecond, burst: *burst}, nil
}

// ParseSigningKey parses a producer's Ed25519 public key in either form the
// access policy accepts: the standard base64 encoding of the 32-byte key,
// or a signed-note verifier key "name+hash+base64(0x01||key)" as
// golang.org/x/mod/sumdb/note writes it (its name and hash are checked).
func ParseSigningKey(s string) (ed25519.PublicKey, error) {
	// A raw key is 44 base64 characters decoding to 32 bytes; a verifier
	// key is longer and never decodes to 32 bytes, so the forms cannot be
	// confused.
	raw, rawErr := base64.StdEncoding.Strict().DecodeString(s)
	if rawErr == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if _, err := note.NewVerifier(s); err != nil {
		switch {
		case rawErr == nil:
			return nil, fmt.Errorf("the key is %d bytes, want %d (an Ed25519 public key)", len(raw), ed25519.PublicKeySize)
		case strings.Count(s, "+") >= 2 && !strings.HasSuffix(s, "="):
			return nil, fmt.Errorf("not a signed-note verifier key: %v", err)
		default:
			return nil, errors.New("want the standard base64 of a 32-byte Ed25519 public key, or a signed-note verifier key name+hash+base64key")
		}
	}
	b, err := base64.StdEncoding.DecodeString(strings.SplitN(s, "+", 3)[2])
	if err != nil || len(b) != 1+ed25519.PublicKeySize || b[0] != 0x01 {
		return nil, errors.New("the verifier key is not an Ed25519 (type 0x01) key")
	}
	return ed25519.PublicKey(b[1:]), nil
}
