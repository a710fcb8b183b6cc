package collector

import (
	"strings"
)

// linkRel returns the target of the first link with relation rel in Link
// header values (RFC 8288: `<uri>; rel="next", <uri>; rel="self"`; a rel
// may list several relation types, and header values may be repeated or
// comma-joined). ok is false when there is none. Relation types compare
// case-insensitively; a malformed link is skipped, not guessed at.
func linkRel(values []string, rel string) (target string, ok bool) {
	for _, v := range values {
		for rest := v; ; {
			rest = strings.TrimLeft(rest, " \t,")
			if rest == "" {
				break
			}
			if rest[0] != '<' {
				// Not a link: skip to the next comma outside quotes.
				rest = skipPast(rest, ',')
				continue
			}
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				break
			}
			uri := rest[1:end]
			rest = rest[end+1:]
			// Parameters, up to the comma that ends this link.
			var rels string
			for {
				rest = strings.TrimLeft(rest, " \t")
				if rest == "" || rest[0] == ',' {
					break
				}
				if rest[0] != ';' {
					rest = skipPast(rest, ',')
					rels = "" // malformed: not used
					uri = ""
					break
				}
				rest = strings.TrimLeft(rest[1:], " \t")
				name, val, r := linkParam(rest)
				rest = r
				if strings.EqualFold(name, "rel") && rels == "" {
					rels = val
				}
			}
			if uri == "" && rels == "" {
				continue
			}
			for _, r := range strings.Fields(rels) {
				if strings.EqualFold(r, rel) {
					return uri, true
				}
			}
		}
	}
	return "", false
}

// linkParam reads `name=value` or `name="quoted value"` (or a bare name)
// and returns the rest after it.
func linkParam(s string) (name, val, rest string) {
	i := strings.IndexAny(s, "=;,")
	if i < 0 {
		return strings.TrimSpace(s), "", ""
	}
	name = strings.TrimSpace(s[:i])
	if s[i] != '=' {
		return name, "", s[i:]
	}
	s = strings.TrimLeft(s[i+1:], " \t")
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for j := 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				if j+1 < len(s) {
					j++
					b.WriteByte(s[j])
				}
			case '"':
				return name, b.String(), s[j+1:]
			default:
				b.WriteByte(s[j])
			}
		}
		return name, b.String(), "" // unterminated: what there is
	}
	j := strings.IndexAny(s, ";,")
	if j < 0 {
		return name, strings.TrimSpace(s), ""
	}
	return name, strings.TrimSpace(s[:j]), s[j:]
}

// skipPast returns s after the first c that is not inside quotes.
func skipPast(s string, c byte) string {
	in := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			in = !in
		case s[i] == '\\' && in:
			i++
		case s[i] == c && !in:
			return s[i+1:]
		}
	}
	return ""
}
