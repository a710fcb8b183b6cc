package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestStatuses checks every status and reason of add-checkpoint, over HTTP
// and through the library, against a witness that has first cosigned the
// checkpoints in `before`.
func TestStatuses(t *testing.T) {
	const origin = "example.com/log"
	lg := newTestLog(t, origin)
	lg.grow(20)
	other := newTestLog(t, "other.example/log") // not configured
	imposter := newTestLog(t, origin)           // same name, other key
	fork := lg.fork(5, "fork")                  // same key, other history after 5
	emptyCP := lg.signBody(t, checkpointBody{Origin: origin, Size: 0, Root: emptyRoot}.Marshal())
	badEmpty := lg.signBody(t, checkpointBody{Origin: origin, Size: 0, Root: lg.root(3)}.Marshal())

	req := func(old uint64, proof [][32]byte, cp []byte) []byte {
		return (&request{Old: old, Proof: proof, Checkpoint: cp}).Marshal()
	}
	proofOf := func(l *testLog, a, b uint64) [][32]byte {
		l.grow(b)
		p, err := l.tree.ConsistencyProof(a, b)
		if err != nil {
			t.Fatal(err)
		}
		var out [][32]byte
		for _, h := range p {
			out = append(out, [32]byte(h))
		}
		return out
	}
	// A checkpoint whose log signature is corrupted (same key ID).
	corrupt := func() []byte {
		cp := lg.checkpoint(t, 8)
		i := bytes.LastIndex(cp, []byte(" ")) + 1
		sig, _ := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(cp[i:])))
		sig[10] ^= 1
		return append(cp[:i:i], base64.StdEncoding.EncodeToString(sig)+"\n"...)
	}()
	withExtension := lg.signBody(t, append(checkpointBody{Origin: origin, Size: 8, Root: lg.root(8)}.Marshal(), "ext line\n"...))
	leadingZero := lg.signBody(t, fmt.Appendf(nil, "%s\n08\n%s\n", origin, base64.StdEncoding.EncodeToString(lg.tree.HashAt(8))))
	shortRoot := lg.signBody(t, fmt.Appendf(nil, "%s\n8\n%s\n", origin, base64.StdEncoding.EncodeToString(lg.tree.HashAt(8)[:31])))
	badProof := proofOf(lg, 5, 8)
	badProof[0][0] ^= 1
	tooMany := make([][32]byte, 64)

	for _, tc := range []struct {
		name   string
		before [][2]uint64 // (old, size) cosigned first
		body   []byte
		status int
		reason string
		size   string // 409 body
	}{
		{name: "400 empty body", body: nil, status: 400, reason: reasonMalformed},
		{name: "400 no old line", body: []byte("\n\n" + string(lg.checkpoint(t, 3))), status: 400, reason: reasonMalformed},
		{name: "400 old not a number", body: []byte("old x\n\n" + string(lg.checkpoint(t, 3))), status: 400, reason: reasonMalformed},
		{name: "400 old leading zero", body: []byte("old 00\n\n" + string(lg.checkpoint(t, 3))), status: 400, reason: reasonMalformed},
		{name: "400 old negative", body: []byte("old -1\n\n" + string(lg.checkpoint(t, 3))), status: 400, reason: reasonMalformed},
		{name: "400 no blank line", body: []byte("old 0\n"), status: 400, reason: reasonMalformed},
		{name: "400 no checkpoint", body: []byte("old 0\n\n"), status: 400, reason: reasonMalformed},
		{name: "400 proof line not base64", body: []byte("old 3\n!!!!\n\n" + string(lg.checkpoint(t, 5))), status: 400, reason: reasonMalformed},
		{name: "400 proof line 31 bytes", body: []byte("old 3\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n\n" + string(lg.checkpoint(t, 5))), status: 400, reason: reasonMalformed},
		{name: "400 64 proof lines", body: req(3, tooMany, lg.checkpoint(t, 5)), status: 400, reason: reasonMalformed},
		{name: "400 checkpoint not a note", body: req(0, nil, []byte("hello\n")), status: 400, reason: reasonMalformed},
		{name: "400 checkpoint extension line", body: req(0, nil, withExtension), status: 400, reason: reasonMalformed},
		{name: "400 checkpoint size leading zero", body: req(0, nil, leadingZero), status: 400, reason: reasonMalformed},
		{name: "400 checkpoint 31-byte root", body: req(0, nil, shortRoot), status: 400, reason: reasonMalformed},
		{name: "404 unknown origin", body: other.request(t, 0, 4), status: 404, reason: reasonUnknownOrigin},
		{name: "403 unknown key", body: imposter.request(t, 0, 4), status: 403, reason: reasonNoTrustedSig},
		{name: "403 bad signature", body: req(0, nil, corrupt), status: 403, reason: reasonBadSignature},
		{name: "400 old larger than size", body: lg.request(t, 9, 8), status: 400, reason: reasonOldTooLarge},
		{name: "409 fresh witness, old 4", body: lg.request(t, 4, 8), status: 409, reason: reasonOldMismatch, size: "0\n"},
		{name: "409 behind", before: [][2]uint64{{0, 5}}, body: lg.request(t, 3, 8), status: 409, reason: reasonOldMismatch, size: "5\n"},
		{name: "409 old 0 after cosigning", before: [][2]uint64{{0, 5}}, body: lg.request(t, 0, 8), status: 409, reason: reasonOldMismatch, size: "5\n"},
		{name: "409 older checkpoint", before: [][2]uint64{{0, 5}, {5, 9}}, body: lg.request(t, 5, 8), status: 409, reason: reasonOldMismatch, size: "9\n"},
		{name: "422 bad proof", before: [][2]uint64{{0, 5}}, body: req(5, badProof, lg.checkpoint(t, 8)), status: 422, reason: reasonBadProof},
		{name: "422 missing proof", before: [][2]uint64{{0, 5}}, body: req(5, nil, lg.checkpoint(t, 8)), status: 422, reason: reasonBadProof},
		{name: "422 proof with old 0", body: req(0, proofOf(lg, 5, 8), lg.checkpoint(t, 8)), status: 422, reason: reasonProofWithOldZero},
		{name: "422 size 0 without empty root", body: req(0, nil, badEmpty), status: 422, reason: reasonBadEmptyRoot},
		{name: "422 same size other root", before: [][2]uint64{{0, 5}, {5, 8}}, body: fork.request(t, 8, 8), status: 422, reason: reasonRootMismatch},
		{name: "422 same size with proof", before: [][2]uint64{{0, 5}}, body: req(5, proofOf(lg, 3, 5), lg.checkpoint(t, 5)), status: 422, reason: reasonBadProof},
		{name: "422 forked history", before: [][2]uint64{{0, 5}, {5, 8}}, body: req(8, proofOf(fork, 8, 12), fork.checkpoint(t, 12)), status: 422, reason: reasonBadProof},
		{name: "200 first", body: lg.request(t, 0, 5), status: 200},
		{name: "200 first empty", body: req(0, nil, emptyCP), status: 200},
		{name: "200 from empty", before: [][2]uint64{{0, 0}}, body: lg.request(t, 0, 7), status: 200},
		{name: "200 advance", before: [][2]uint64{{0, 5}}, body: lg.request(t, 5, 13), status: 200},
		{name: "200 same", before: [][2]uint64{{0, 5}, {5, 13}}, body: lg.request(t, 13, 13), status: 200},
		{name: "200 extra unknown signatures", body: func() []byte {
			cp := lg.checkpoint(t, 6)
			return req(0, nil, append(cp, "— someone.else/w AAAAAQAAAAAAAAAA\n"...))
		}(), status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWitness(t, lg)
			for _, b := range tc.before {
				mustCosign(t, w, lg, b[0], b[1])
			}
			r := post(t, w.srv.URL, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %q", r.status, tc.status, r.body)
			}
			switch tc.status {
			case 409:
				if len(r.ctype) != 1 || r.ctype[0] != "text/x.tlog.size" {
					t.Fatalf("409 Content-Type %q, want exactly text/x.tlog.size", r.ctype)
				}
				if string(r.body) != tc.size {
					t.Fatalf("409 body %q, want %q", r.body, tc.size)
				}
			case 200:
				parsed, err := parseRequest(tc.body)
				if err != nil {
					t.Fatal(err)
				}
				cp := parsed.Checkpoint
				if i := bytes.Index(cp, []byte("— someone.else")); i >= 0 {
					cp = cp[:i]
				}
				checkCosignature(t, w.VerifierKey(), w.MLDSAVerifierKey(), lg, cp, r.body)
			}
			if tc.status != 200 && !strings.HasSuffix(string(r.body), "\n") {
				t.Fatalf("body %q does not end in a newline", r.body)
			}
			// The library reports the reason (and the same status).
			if tc.status != 200 {
				_, err := w.AddCheckpoint(ctx(t), tc.body)
				var e *Error
				if !errors.As(err, &e) || e.Status != tc.status || e.Reason != tc.reason {
					t.Fatalf("AddCheckpoint: %v, want %d %s", err, tc.status, tc.reason)
				}
			}
		})
	}
}

// TestBodyTooLarge: a body over 1 MiB is refused with 400.
func TestBodyTooLarge(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	w := newTestWitness(t, lg)
	body := append([]byte("old 0\n\n"), bytes.Repeat([]byte("a"), maxRequestBytes)...)
	if r := post(t, w.srv.URL, body); r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", r.status)
	}
	resp, err := http.Get(w.srv.URL + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET add-checkpoint: %d, want 405", resp.StatusCode)
	}
}
