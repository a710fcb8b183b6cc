package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// This file parses the witness network's log list
// (https://github.com/transparency-dev/witness-network, log-list-format.md),
// the lists published at https://witness-network.org/log-lists:
//
//	# comments and blank lines anywhere
//	logs/v0
//
//	vkey <vkey>
//	[origin <origin>]
//	qpd <add-checkpoint requests per day>
//	contact <anything>
//
// Every non-blank, non-comment line has its leading and trailing blanks
// removed; the first is the header "logs/v0"; then each log is exactly
// the lines vkey, an optional origin, qpd and contact, in that order. The
// vkey is an Ed25519 (type 0x01) signed-note verifier key, the only type the
// format permits today; the origin defaults to the key's name; qpd is a
// decimal in [1, 2^31) with no leading zeros; contact is free text. The
// parser is strict: anything else — another header, a keyword out of
// order, a log missing a line, an extra field, a control character, the
// same origin twice — refuses the whole list, with the line number.

// logListHeader is the first line of a log list.
const logListHeader = "logs/v0"

// maxLogListBytes bounds a log list (the largest published profile, 40,000
// logs, is a few MB).
const maxLogListBytes = 32 << 20

// listedLog is one log of a log list.
type listedLog struct {
	// Origin is the log's checkpoint origin (the key's name if the list
	// has no origin line for it).
	Origin string `json:"origin"`
	// Key is the log's verifier key (Ed25519, type 0x01).
	Key string `json:"key"`
	// QPD is how many add-checkpoint requests a day the log may send.
	QPD uint32 `json:"qpd"`
	// Contact reaches the log's operator.
	Contact string `json:"contact"`
}

// logListError is a log list the parser refuses: the line (1-based; 0 for
// the whole list) and what is wrong.
type logListError struct {
	Line int
	Msg  string
}

func (e *logListError) Error() string {
	if e.Line == 0 {
		return "log list: " + e.Msg
	}
	return fmt.Sprintf("log list: line %d: %s", e.Line, e.Msg)
}

// parseLogList parses a log list in the witness network's logs/v0 format.
func parseLogList(b []byte) ([]listedLog, error) {
	if len(b) > maxLogListBytes {
		return nil, &logListError{0, fmt.Sprintf("%d bytes, more than the %d this witness reads", len(b), maxLogListBytes)}
	}
	const (
		wantHeader = iota
		wantVkey
		wantOriginOrQPD
		wantContact
	)
	state := wantHeader
	var out []listedLog
	var cur listedLog
	var curLine int
	hasOrigin := false
	origins := map[string]int{}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, raw := range lines {
		ln := i + 1
		line := string(bytes.TrimSpace(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		if j := strings.IndexFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }); j >= 0 {
			return nil, &logListError{ln, fmt.Sprintf("control character 0x%02x", line[j])}
		}
		if state == wantHeader {
			if line != logListHeader {
				return nil, &logListError{ln, fmt.Sprintf("the list must start with %q, found %q", logListHeader, truncate(line))}
			}
			state = wantVkey
			continue
		}
		kw, arg, _ := strings.Cut(line, " ")
		switch {
		case kw == "vkey" && state == wantVkey:
			if arg == "" || strings.ContainsAny(arg, " \t") {
				return nil, &logListError{ln, "a vkey line is \"vkey <key>\" with one key"}
			}
			name, err := listKeyName(arg)
			if err != nil {
				return nil, &logListError{ln, err.Error()}
			}
			cur, curLine, hasOrigin = listedLog{Origin: name, Key: arg}, ln, false
			state = wantOriginOrQPD
		case kw == "origin" && state == wantOriginOrQPD && !hasOrigin:
			if arg == "" {
				return nil, &logListError{ln, "an origin line needs the origin"}
			}
			cur.Origin, hasOrigin = arg, true
		case kw == "qpd" && state == wantOriginOrQPD:
			n, err := parseDecimal(arg)
			if err != nil || n < 1 || n >= 1<<31 {
				return nil, &logListError{ln, fmt.Sprintf("qpd %q must be a decimal in [1, 2^31) with no leading zeros", truncate(arg))}
			}
			cur.QPD = uint32(n)
			state = wantContact
		case kw == "contact" && state == wantContact:
			if strings.TrimSpace(arg) == "" {
				return nil, &logListError{ln, "a contact line needs contact details"}
			}
			cur.Contact = arg
			if prev, dup := origins[cur.Origin]; dup {
				return nil, &logListError{curLine, fmt.Sprintf("origin %q is listed twice (lines %d and %d)", truncate(cur.Origin), prev, curLine)}
			}
			origins[cur.Origin] = curLine
			out = append(out, cur)
			state = wantVkey
		default:
			want := map[int]string{wantVkey: "vkey", wantOriginOrQPD: "origin or qpd", wantContact: "contact"}[state]
			if state == wantOriginOrQPD && hasOrigin {
				want = "qpd"
			}
			return nil, &logListError{ln, fmt.Sprintf("found %q, expected a %s line (a log is vkey, [origin], qpd, contact in this order)", truncate(kw), want)}
		}
	}
	switch state {
	case wantHeader:
		return nil, &logListError{0, fmt.Sprintf("no %q header", logListHeader)}
	case wantVkey:
		return out, nil
	default:
		return nil, &logListError{curLine, "the last log is incomplete (a log is vkey, [origin], qpd, contact)"}
	}
}

// listKeyName checks a log list vkey (Ed25519, type 0x01) and returns its
// name.
func listKeyName(k string) (string, error) {
	v, err := note.NewVerifier(k)
	if err != nil {
		return "", fmt.Errorf("vkey %q: %v", truncate(k), err)
	}
	parts := strings.SplitN(k, "+", 3)
	raw, _ := base64.StdEncoding.DecodeString(parts[2])
	if len(raw) == 0 || raw[0] != 0x01 {
		return "", fmt.Errorf("vkey %q is not an Ed25519 (type 0x01) key, the only type the log list format permits", truncate(k))
	}
	return v.Name(), nil
}
