package client

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Policy is a witness policy in C2SP tlog-policy form: which logs may sign a
// checkpoint and which witnesses must have cosigned it for it to count
// (a single witness, or nested "k of n" groups).
type Policy struct {
	logs      []note.Verifier
	witnesses []*policyWitness
	quorum    *policyNode
}

// ParsePolicy parses a C2SP tlog-policy (see tlogpolicy.go for the exact
// grammar). It refuses, with the line and what to change, anything it
// cannot meet or that the spec forbids: a threshold above a group's size,
// a name not defined on a preceding line, a duplicate name or key, a
// second quorum, "quorum none". Witness keys are cosignature (0x04) keys;
// URLs are optional (offline verification needs none).
func ParsePolicy(text []byte) (*Policy, error) {
	return parseTlogPolicy(text)
}

// Check returns nil when the checkpoint's cosignatures satisfy the policy,
// or an error naming which witnesses cosigned and which did not. Call it on a
// checkpoint whose log signature has been verified (ParseCheckpoint). If the
// policy lists logs, the checkpoint must also carry a valid signature by one
// of them.
func (p *Policy) Check(cp *Checkpoint) error {
	if len(p.logs) > 0 {
		if _, err := note.Open(cp.Raw, note.VerifierList(p.logs...)); err != nil {
			return fmt.Errorf("witnesses: the checkpoint (size %d) is not signed by a log the witness policy lists: %v", cp.Size, err)
		}
	}
	cosigned := p.cosignedBy(cp.Raw)
	if p.quorum.satisfied(cosigned) {
		return nil
	}
	var have, missing, unmet []string
	for _, w := range p.witnesses {
		if cosigned[w] {
			have = append(have, w.verifier.Name())
		} else {
			missing = append(missing, w.verifier.Name())
		}
	}
	sort.Strings(have)
	sort.Strings(missing)
	p.quorum.unmet(cosigned, &unmet)
	detail := ""
	if len(unmet) > 0 {
		detail = " (" + strings.Join(unmet, "; ") + ")"
	}
	return fmt.Errorf("witnesses: the checkpoint (size %d) does not meet the witness policy: cosigned by [%s], not by [%s]%s",
		cp.Size, strings.Join(have, ", "), strings.Join(missing, ", "), detail)
}
