package audit_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/client"
)

// TestWitnessPolicy: with a policy, the audit fails unless the checkpoint
// carries the quorum's cosignatures, and passes when it does.
func TestWitnessPolicy(t *testing.T) {
	dir, k := cleanLog(t)
	type wkey struct {
		signer note.Signer
		vkey   string
	}
	var ws []wkey
	policy := ""
	for i := range 2 {
		skey, vkey, err := note.GenerateKey(rand.Reader, fmt.Sprintf("w%d.example/witness", i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		cv, err := fnote.VKeyToCosignatureV1(vkey)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, wkey{s, cv})
		policy += fmt.Sprintf("witness w%d %s http://127.0.0.1:%d/\n", i, cv, 1+i)
	}
	policy += "group g all w0 w1\nquorum g\n"
	pol, err := client.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, dir)
	runWith := func() (*audit.Report, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, _, err := audit.Run(ctx, audit.Config{LogURL: url, Verifier: k.verifier, Policy: pol})
		return rep, err
	}
	cpPath := filepath.Join(dir, "checkpoint")
	cosignWith := func(ws ...wkey) {
		raw, err := os.ReadFile(cpPath)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(raw, note.VerifierList(k.verifier))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, signed[len(n.Text)+1:]...)
		}
		if err := os.WriteFile(cpPath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	rep, err := runWith()
	if !errors.Is(err, audit.ErrVerification) {
		t.Fatalf("uncosigned checkpoint: err %v, want a verification failure", err)
	}
	if rep.Verified || len(rep.Failures) != 1 || rep.Failures[0].Kind != audit.FailWitnesses {
		t.Fatalf("uncosigned checkpoint: verified %v, failures %+v", rep.Verified, rep.Failures)
	}

	cosignWith(ws[0])
	rep, err = runWith()
	if !errors.Is(err, audit.ErrVerification) {
		t.Fatalf("one of two cosignatures: err %v, want a verification failure", err)
	}
	if rep.Verified || len(rep.Failures) != 1 || rep.Failures[0].Kind != audit.FailWitnesses {
		t.Fatalf("one of two cosignatures: verified %v, failures %+v", rep.Verified, rep.Failures)
	}

	cosignWith(ws[1])
	rep, err = runWith()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || len(rep.Failures) != 0 {
		t.Fatalf("fully cosigned checkpoint: verified %v, failures %+v", rep.Verified, rep.Failures)
	}
}
