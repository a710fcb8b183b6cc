package client

import (
	"fmt"
	"sort"
	"strings"

	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

// Policy is a witness policy in C2SP tlog-policy form: which witnesses must
// have cosigned a checkpoint for it to count.
type Policy struct {
	group tessera.WitnessGroup
}

// ParsePolicy parses a C2SP tlog-policy, as Tessera reads it: witness lines
// need a URL, keys are cosignature (0x04) verifier keys.
func ParsePolicy(text []byte) (*Policy, error) {
	wg, err := tessera.NewWitnessGroupFromPolicy(text)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	if wg.N <= 0 {
		return nil, fmt.Errorf("witness policy: its quorum needs no witness, so it would accept any checkpoint")
	}
	return &Policy{group: wg}, nil
}

// Check returns nil when the checkpoint's cosignatures satisfy the policy,
// or an error naming which witnesses cosigned and which did not. Call it on a
// checkpoint whose log signature has been verified (ParseCheckpoint).
func (p *Policy) Check(cp *Checkpoint) error {
	if p.group.Satisfied(cp.Raw) {
		return nil
	}
	var have, missing []string
	for _, v := range p.group.Endpoints() {
		if _, err := note.Open(cp.Raw, note.VerifierList(v)); err == nil {
			have = append(have, v.Name())
		} else {
			missing = append(missing, v.Name())
		}
	}
	sort.Strings(have)
	sort.Strings(missing)
	return fmt.Errorf("witnesses: the checkpoint (size %d) does not meet the witness policy: cosigned by [%s], not by [%s]",
		cp.Size, strings.Join(have, ", "), strings.Join(missing, ", "))
}
