package logkey_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
)

// BenchmarkCheckpointSignatures measures, in one run, what signing each
// checkpoint with ML-DSA-44 besides Ed25519 costs: signing and verifying
// time per key type (interleaved, so a loaded machine slows both alike),
// and how much a checkpoint and a receipt (a tlog-proof for an entry of a
// 1M-entry log, with a 300-byte leaf) grow, without and with witness
// cosignatures of both types:
//
//	go test -run '^$' -bench CheckpointSignatures -benchtime 200x ./internal/logkey
func BenchmarkCheckpointSignatures(b *testing.B) {
	dir := b.TempDir()
	k, err := logkey.LoadOrCreate(dir, origin, "", logkey.MLDSAOn)
	if err != nil {
		b.Fatal(err)
	}
	text := origin + "\n1000000\nNs3ziq8hSLSfbJ5XjAzEw7eZdQJAQtBwXa+vdGO7UbI=\n"
	edV, _ := client.NewLogVerifier(k.VKey)
	pqV, _ := client.NewLogVerifier(k.MLDSA.VKey)
	var edSign, pqSign, edVerify, pqVerify time.Duration
	var edNote, pqNote []byte
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		edNote, err = note.Sign(&note.Note{Text: text}, k.Signer)
		t1 := time.Now()
		pqNote, err = note.Sign(&note.Note{Text: text}, k.MLDSA.Signer)
		t2 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := client.ParseCheckpoint(edNote, edV); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := client.ParseCheckpoint(pqNote, pqV); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		edSign += t1.Sub(t0)
		pqSign += t2.Sub(t1)
		edVerify += t3.Sub(t2)
		pqVerify += t4.Sub(t3)
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(per(edSign), "ed25519-µs/sign")
	b.ReportMetric(per(pqSign), "mldsa44-µs/sign")
	b.ReportMetric(per(edVerify), "ed25519-µs/verify")
	b.ReportMetric(per(pqVerify), "mldsa44-µs/verify")

	// Sizes: the log's own signatures, then with a witness's cosignature
	// (Ed25519 76 bytes, ML-DSA-44 2432 bytes, before base64).
	both, _ := note.Sign(&note.Note{Text: text}, k.Signer, k.MLDSA.Signer)
	edLine := len(edNote) - len(text) - 1
	pqLine := len(pqNote) - len(text) - 1
	edWitness := len("— witness.example/w1 ") + 4*((4+8+64+2)/3) + 1
	pqWitness := len("— witness.example/w1 ") + 4*((4+8+2420+2)/3) + 1
	receipt := func(cp []byte) int {
		return len(proof.TLogProof{Index: 123456, Hashes: make([][32]byte, 20), Checkpoint: cp, ExtraData: make([]byte, 300)}.Marshal())
	}
	edCP, bothCP := len(edNote), len(both)
	edCPW, bothCPW := edCP+edWitness, bothCP+edWitness+pqWitness
	b.ReportMetric(float64(bothCP)/float64(edCP), "checkpoint-growth")
	if b.N > 1 {
		fmt.Printf("checkpoint signing: Ed25519 %.0f µs, ML-DSA-44 %.0f µs (%.1f×); verifying: Ed25519 %.0f µs, ML-DSA-44 %.0f µs (%.1f×); %d rounds\n",
			per(edSign), per(pqSign), per(pqSign)/per(edSign), per(edVerify), per(pqVerify), per(pqVerify)/per(edVerify), b.N)
		fmt.Printf("signature lines: Ed25519 %d bytes, ML-DSA-44 %d bytes\n", edLine, pqLine)
		fmt.Printf("checkpoint: %d bytes signed by Ed25519, %d by Ed25519 + ML-DSA-44 (+%d); with one witness (Ed25519, or Ed25519 + ML-DSA-44 lines): %d → %d bytes\n",
			edCP, bothCP, bothCP-edCP, edCPW, bothCPW)
		fmt.Printf("receipt (20 proof hashes, 300-byte leaf): %d bytes → %d bytes (%.1f×) without witnesses; %d → %d bytes (%.1f×) with one witness\n",
			receipt(make([]byte, edCP)), receipt(make([]byte, bothCP)), float64(receipt(make([]byte, bothCP)))/float64(receipt(make([]byte, edCP))),
			receipt(make([]byte, edCPW)), receipt(make([]byte, bothCPW)), float64(receipt(make([]byte, bothCPW)))/float64(receipt(make([]byte, edCPW))))
	}
}
