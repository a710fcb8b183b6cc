package client

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// This file parses C2SP tlog-policy (https://c2sp.org/tlog-policy) to the
// letter of its current text:
//
//	log <vkey> [<url>]
//	witness <name> <vkey> [<url>]
//	group <name> all|any|<k> <name>...
//	quorum <name>|none
//
// Lines end in "\n"; fields are separated by spaces and tabs only; empty
// lines and lines whose first non-blank octet is "#" are ignored. The only
// control characters allowed anywhere are tab and newline. A group may
// name only witnesses and groups defined on preceding lines (so there are
// no cycles), each at most once, with 1 <= k <= n members; "none" is the
// predefined name for "no cosignature" and cannot be a member. Witnesses
// and groups share one namespace. Two log (or two witness) lines wrapping
// the same public key are duplicates and refused. Names are opaque octet
// strings.
//
// Stele refuses "quorum none" (such a policy accepts any checkpoint: leave
// the policy out instead), and a URL that is not an absolute http(s) URL.

// Policy limits: the spec asks for at least 32 of each; more is refused so
// a hostile policy cannot make checking slow.
const (
	MaxPolicyLogs      = 256
	MaxPolicyWitnesses = 256
	MaxPolicyGroups    = 256
)

// policyNode is a witness (witness set) or a group (k of members).
type policyNode struct {
	name    string
	witness *policyWitness
	k       int
	members []*policyNode
}

type policyWitness struct {
	name     string
	vkey     string
	url      string
	verifier note.Verifier
}

// cosignatureVerifier returns the verifier of a witness's cosignature key.
// Today: tlog-cosignature v1 Ed25519 keys (vkey type 0x04). Add other
// cosignature key types here.
func cosignatureVerifier(vkey string) (note.Verifier, error) {
	raw, err := vkeyMaterial(vkey)
	if err != nil {
		return nil, err
	}
	switch raw[0] {
	case 0x04, algMLDSA44: // tlog-cosignature v1.1: Ed25519 cosignature/v1, ML-DSA-44 subtree/v1
		return fnote.NewVerifierForCosignatureV1(vkey)
	default:
		return nil, fmt.Errorf("key type 0x%02x is not a cosignature key type (0x04 Ed25519 or 0x06 ML-DSA-44)", raw[0])
	}
}

// logVerifier returns the verifier of a log's checkpoint key (type 0x01
// Ed25519 or 0x06 ML-DSA-44).
func logVerifier(vkey string) (note.Verifier, error) {
	v, _, err := parseLogVKey(vkey)
	return v, err
}

// PolicyError is a policy the parser refuses: the line (1-based; 0 for
// the whole file) and what is wrong with it.
type PolicyError struct {
	Line int
	Msg  string
}

func (e *PolicyError) Error() string {
	if e.Line == 0 {
		return "witness policy: " + e.Msg
	}
	return fmt.Sprintf("witness policy: line %d: %s", e.Line, e.Msg)
}

func parseTlogPolicy(text []byte) (*Policy, error) {
	p := &Policy{}
	names := map[string]*policyNode{}
	logKeys := map[string]bool{}
	witnessKeys := map[string]string{}
	groups := 0
	quorumLine := 0
	lines := bytes.Split(text, []byte("\n"))
	for i, raw := range lines {
		ln := i + 1
		for j, c := range raw {
			if c < 0x20 && c != '\t' || c == 0x7f {
				hint := ""
				if c == '\r' {
					hint = " (CRLF line endings? the policy must use \\n only)"
				}
				return nil, &PolicyError{ln, fmt.Sprintf("control character 0x%02x at byte %d%s", c, j+1, hint)}
			}
		}
		fields := strings.FieldsFunc(string(raw), func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch kw, args := fields[0], fields[1:]; kw {
		case "log":
			if len(args) < 1 || len(args) > 2 {
				return nil, &PolicyError{ln, fmt.Sprintf("a log line is \"log <vkey> [<url>]\", this one has %d fields", len(fields))}
			}
			v, err := logVerifier(args[0])
			if err != nil {
				return nil, &PolicyError{ln, fmt.Sprintf("log key %q: %v (a log's key is a signed-note Ed25519 key, type 0x01, like log.pub)", args[0], err)}
			}
			pub, err := vkeyPublic(args[0])
			if err != nil {
				return nil, &PolicyError{ln, err.Error()}
			}
			if logKeys[pub] {
				return nil, &PolicyError{ln, "this log key is listed twice (same public key); list each log once"}
			}
			logKeys[pub] = true
			if len(args) == 2 {
				if err := checkPolicyURL(args[1]); err != nil {
					return nil, &PolicyError{ln, err.Error()}
				}
			}
			if len(p.logs) == MaxPolicyLogs {
				return nil, &PolicyError{ln, fmt.Sprintf("more than %d logs", MaxPolicyLogs)}
			}
			p.logs = append(p.logs, v)
		case "witness":
			if len(args) < 2 || len(args) > 3 {
				return nil, &PolicyError{ln, fmt.Sprintf("a witness line is \"witness <name> <vkey> [<url>]\", this one has %d fields", len(fields))}
			}
			name := args[0]
			if err := newPolicyName(names, name); err != nil {
				return nil, &PolicyError{ln, err.Error()}
			}
			v, err := cosignatureVerifier(args[1])
			if err != nil {
				return nil, &PolicyError{ln, fmt.Sprintf("witness %s: key %q: %v (a witness key is a cosignature key, type 0x04, like witness.pub)", name, args[1], err)}
			}
			pub, err := vkeyPublic(args[1])
			if err != nil {
				return nil, &PolicyError{ln, fmt.Sprintf("witness %s: %v", name, err)}
			}
			if other, dup := witnessKeys[pub]; dup {
				return nil, &PolicyError{ln, fmt.Sprintf("witness %s has the same public key as witness %s; list each witness once", name, other)}
			}
			witnessKeys[pub] = name
			w := &policyWitness{name: name, vkey: args[1], verifier: v}
			if len(args) == 3 {
				if err := checkPolicyURL(args[2]); err != nil {
					return nil, &PolicyError{ln, fmt.Sprintf("witness %s: %v", name, err)}
				}
				w.url = args[2]
			}
			if len(p.witnesses) == MaxPolicyWitnesses {
				return nil, &PolicyError{ln, fmt.Sprintf("more than %d witnesses", MaxPolicyWitnesses)}
			}
			p.witnesses = append(p.witnesses, w)
			names[name] = &policyNode{name: name, witness: w}
		case "group":
			if len(args) < 3 {
				return nil, &PolicyError{ln, "a group line is \"group <name> all|any|<k> <name>...\" with at least one member"}
			}
			name, kw, members := args[0], args[1], args[2:]
			if err := newPolicyName(names, name); err != nil {
				return nil, &PolicyError{ln, err.Error()}
			}
			g := &policyNode{name: name}
			seen := map[string]bool{}
			for _, m := range members {
				switch {
				case m == "none":
					return nil, &PolicyError{ln, fmt.Sprintf("group %s: \"none\" cannot be a group member", name)}
				case m == name:
					return nil, &PolicyError{ln, fmt.Sprintf("group %s lists itself as a member", name)}
				case seen[m]:
					return nil, &PolicyError{ln, fmt.Sprintf("group %s lists %s twice; each name can be a member once", name, m)}
				case names[m] == nil:
					return nil, &PolicyError{ln, fmt.Sprintf("group %s: member %s is not a witness or group defined on a preceding line", name, m)}
				}
				seen[m] = true
				g.members = append(g.members, names[m])
			}
			n := len(members)
			switch kw {
			case "all":
				g.k = n
			case "any":
				g.k = 1
			default:
				k, err := parseDecimal(kw)
				if err != nil {
					return nil, &PolicyError{ln, fmt.Sprintf("group %s: threshold %q is not all, any or a decimal number", name, kw)}
				}
				if k < 1 || k > uint64(n) {
					return nil, &PolicyError{ln, fmt.Sprintf("group %s needs %s of its %d members, which can never be met: the threshold must be 1 to %d", name, kw, n, n)}
				}
				g.k = int(k)
			}
			if groups == MaxPolicyGroups {
				return nil, &PolicyError{ln, fmt.Sprintf("more than %d groups", MaxPolicyGroups)}
			}
			groups++
			names[name] = g
		case "quorum":
			if len(args) != 1 {
				return nil, &PolicyError{ln, fmt.Sprintf("a quorum line is \"quorum <name>\", this one has %d fields", len(fields))}
			}
			if quorumLine != 0 {
				return nil, &PolicyError{ln, fmt.Sprintf("a second quorum line (the first is line %d); a policy has exactly one", quorumLine)}
			}
			quorumLine = ln
			if args[0] == "none" {
				return nil, &PolicyError{ln, "quorum none requires no cosignature, so the policy would accept any checkpoint; leave the policy out instead"}
			}
			q := names[args[0]]
			if q == nil {
				return nil, &PolicyError{ln, fmt.Sprintf("quorum %s is not a witness or group defined on a preceding line", args[0])}
			}
			p.quorum = q
		default:
			return nil, &PolicyError{ln, fmt.Sprintf("unknown keyword %q (want log, witness, group or quorum)", kw)}
		}
	}
	if quorumLine == 0 {
		return nil, &PolicyError{0, "no quorum line; a policy has exactly one (e.g. \"quorum w1\")"}
	}
	return p, nil
}

func newPolicyName(names map[string]*policyNode, name string) error {
	if name == "none" {
		return errors.New(`"none" is predefined and cannot name a witness or group`)
	}
	if names[name] != nil {
		return fmt.Errorf("the name %s is already defined (witnesses and groups share one namespace)", name)
	}
	return nil
}

// parseDecimal parses ASCII digits only (no sign, no spaces).
func parseDecimal(s string) (uint64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not decimal")
		}
	}
	return strconv.ParseUint(s, 10, 32)
}

// vkeyPublic returns the public key a vkey wraps (without its type byte),
// which identifies it whatever its name and key ID.
func vkeyPublic(vkey string) (string, error) {
	raw, err := vkeyMaterial(vkey)
	if err != nil {
		return "", err
	}
	return string(raw[1:]), nil
}

// vkeyMaterial returns a vkey's decoded type byte and key.
func vkeyMaterial(vkey string) ([]byte, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("key %q is not a vkey (name+id+base64)", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < 2 {
		return nil, fmt.Errorf("key %q is not a vkey (name+id+base64)", vkey)
	}
	return raw, nil
}

func checkPolicyURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("URL %q is not an absolute http or https URL", s)
	}
	return nil
}

// satisfied reports whether the node is witnessed: a witness whose
// cosignature verifies, or a group with at least k witnessed members.
func (n *policyNode) satisfied(cosigned map[*policyWitness]bool) bool {
	if n.witness != nil {
		return cosigned[n.witness]
	}
	have := 0
	for _, m := range n.members {
		if m.satisfied(cosigned) {
			have++
		}
	}
	return have >= n.k
}

// unmet describes the groups under n that are not witnessed, innermost
// first: "X-witnesses needs 2 of [X1 X2 X3], has 1".
func (n *policyNode) unmet(cosigned map[*policyWitness]bool, out *[]string) {
	if n.witness != nil {
		return
	}
	have := 0
	var ms []string
	for _, m := range n.members {
		m.unmet(cosigned, out)
		if m.satisfied(cosigned) {
			have++
		}
		ms = append(ms, m.name)
	}
	if have < n.k {
		*out = append(*out, fmt.Sprintf("group %s needs %d of [%s], has %d", n.name, n.k, strings.Join(ms, " "), have))
	}
}

// cosignedBy returns which of the policy's witnesses validly cosigned raw.
func (p *Policy) cosignedBy(raw []byte) map[*policyWitness]bool {
	out := map[*policyWitness]bool{}
	for _, w := range p.witnesses {
		if _, err := note.Open(raw, note.VerifierList(w.verifier)); err == nil {
			out[w] = true
		}
	}
	return out
}
