package witness

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
)

// TestMLDSAKeyFiles: the ML-DSA-44 key is created 0600 next to the
// Ed25519 one, reused on reopen, added to a witness that had only the
// Ed25519 key, and witness-mldsa.pub holds its type 0x06 verifier key.
func TestMLDSAKeyFiles(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{Name: "w.example/pq", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mvkey := w.MLDSAVerifierKey()
	w.Close()
	fi, err := os.Stat(filepath.Join(dir, mldsaKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ML-DSA-44 key file: %v %v", fi, err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, MLDSAPubFile))
	if string(pub) != mvkey+"\n" || !strings.HasPrefix(mvkey, "w.example/pq+") {
		t.Fatalf("witness-mldsa.pub %.80q, vkey %.80q", pub, mvkey)
	}
	if v, err := fnote.NewMLDSAVerifier(mvkey); err != nil || v.Name() != "w.example/pq" {
		t.Fatalf("witness-mldsa.pub is not an ML-DSA-44 (0x06) verifier key: %v", err)
	}
	w, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if w.MLDSAVerifierKey() != mvkey {
		t.Fatal("ML-DSA-44 key changed on reopen")
	}
	w.Close()

	// A witness from before ML-DSA-44: its Ed25519 key stays, a new key is added.
	os.Remove(filepath.Join(dir, mldsaKeyFile))
	os.Remove(filepath.Join(dir, MLDSAPubFile))
	w, err = Open(dir, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if w.MLDSAVerifierKey() == mvkey || w.MLDSAVerifierKey() == "" {
		t.Fatal("no new ML-DSA-44 key for an Ed25519-only witness")
	}
	w.Close()

	// A key named for another witness is refused.
	other := t.TempDir()
	os.Chmod(other, 0o700)
	skey, _, err := fnote.GenerateMLDSAKey("w.example/other")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(other, mldsaKeyFile), []byte(skey+"\n"), 0o600)
	if _, err := Open(other, Options{Name: "w.example/pq", Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "both keys carry the witness's name") {
		t.Fatalf("ML-DSA-44 key of another name: %v", err)
	}
	os.Chmod(filepath.Join(dir, mldsaKeyFile), 0o644)
	if _, err := Open(dir, Options{Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable ML-DSA-44 key: %v", err)
	}
}

// mldsaLog makes l sign with an ML-DSA-44 log key instead, as a Stele log
// that lost its Ed25519 key could (tlog-checkpoint: logs SHOULD sign
// with ML-DSA-44), and returns its verifier key.
func mldsaLog(t *testing.T, l *testLog) (vkey string) {
	t.Helper()
	skey, vkey, err := fnote.GenerateMLDSAKey(l.origin)
	if err != nil {
		t.Fatal(err)
	}
	if l.signer, err = fnote.NewSignerForCosignatureV1(skey); err != nil {
		t.Fatal(err)
	}
	return vkey
}

// TestMLDSALogKeys: a witness configured with a log's ML-DSA-44 key
// accepts checkpoints signed with it alone, refuses one whose ML-DSA-44
// signature does not verify, and with both keys configured either does.
func TestMLDSALogKeys(t *testing.T) {
	l := newTestLog(t, "example.com/pq-log")
	edVKey := l.vkey
	pqVKey := mldsaLog(t, l)
	w := newTestWitnessCfg(t, LogConfig{Origin: l.origin, Keys: []string{pqVKey}})
	r := post(t, w.srv.URL, l.request(t, 0, 3))
	if r.status != http.StatusOK {
		t.Fatalf("checkpoint signed by the log's ML-DSA-44 key: %d %s", r.status, r.body)
	}
	// Tampered: the size changes, so the ML-DSA-44 signature (over origin,
	// 0, size, root) no longer verifies.
	bad := []byte(strings.Replace(string(l.request(t, 3, 5)), "\n5\n", "\n6\n", 1))
	if r := post(t, w.srv.URL, bad); r.status != http.StatusForbidden {
		t.Fatalf("tampered ML-DSA-44-signed checkpoint: %d %s", r.status, r.body)
	}

	both := newTestWitnessCfg(t, LogConfig{Origin: l.origin, Keys: []string{edVKey, pqVKey}})
	if r := post(t, both.srv.URL, l.request(t, 0, 3)); r.status != http.StatusOK {
		t.Fatalf("ML-DSA-44 only, both keys configured: %d %s", r.status, r.body)
	}
	l2 := newTestLog(t, "example.com/ed-log")
	if r := post(t, newTestWitnessCfg(t, LogConfig{Origin: l2.origin, Keys: []string{l2.vkey, mldsaVKeyFor(t, l2.origin)}}).srv.URL, l2.request(t, 0, 2)); r.status != http.StatusOK {
		t.Fatalf("Ed25519 only, both keys configured: %d %s", r.status, r.body)
	}
	// A witness (0x04) key is still no log key.
	if _, err := Open(t.TempDir(), Options{Logger: quietLogger(), Logs: []LogConfig{{Origin: l.origin, Keys: []string{w.VerifierKey()}}}}); err == nil {
		t.Fatal("a cosignature key accepted as a log key")
	}
}

func mldsaVKeyFor(t *testing.T, origin string) string {
	_, vkey, err := fnote.GenerateMLDSAKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// TestTesseraMLDSAPolicy: Tessera, with a witness policy naming the
// witness's ML-DSA-44 key, publishes checkpoints the witness cosigned: the
// ML-DSA-44 line (signed with circl) is verified by Tessera's own code
// (transparency-dev/formats over filippo.io/mldsa).
func TestTesseraMLDSAPolicy(t *testing.T) {
	const origin = "example.com/tessera-pq-log"
	signer, vkey := logKey(t, origin)
	w := newTestWitnessCfg(t, LogConfig{Origin: origin, Keys: []string{vkey}})
	l := startTessera(t, t.TempDir(), signer, policyFor(w.MLDSAVerifierKey(), w.srv.URL))
	for i := range 3 {
		cp := l.add(t, 2, fmt.Sprintf("pq%d", i))
		// Tessera keeps the cosignatures of the policy's keys: the ML-DSA-44 line.
		checkWitnessed(t, cp, vkey, w.MLDSAVerifierKey(), origin)
	}
}
