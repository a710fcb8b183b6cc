package witness

import (
	"bytes"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	lg := newTestLog(f, "example.com/log")
	f.Add(lg.request(f, 0, 5))
	f.Add(lg.request(f, 5, 13))
	f.Add(lg.request(f, 13, 13))
	f.Add([]byte("old 0\n\n"))
	f.Add([]byte("old 01\n\nx"))
	f.Add([]byte("old 18446744073709551616\n\nx"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseRequest(body)
		if err != nil {
			return
		}
		if len(r.Proof) > maxProofLines || len(r.Checkpoint) == 0 {
			t.Fatalf("accepted %d proof lines, checkpoint %q", len(r.Proof), r.Checkpoint)
		}
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("accepted %q but it re-encodes as %q", body, got)
		}
	})
}

func FuzzCheckpoint(f *testing.F) {
	lg := newTestLog(f, "example.com/log")
	f.Add(lg.checkpoint(f, 0))
	f.Add(lg.checkpoint(f, 5))
	f.Add(append(lg.checkpoint(f, 5), "— other.example/w AAAAAQAAAAAAAAAA\n"...))
	f.Add([]byte("example.com/log\n5\nAAAA\n\n— a AAAAAQAAAAAAAAAA\n"))
	f.Add([]byte("example.com/log\n05\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— a AAAAAQAAAAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cp, err := parseSignedCheckpoint(raw)
		if err != nil {
			return
		}
		// The body re-encodes canonically.
		if got := cp.checkpointBody.Marshal(); string(got) != cp.Text {
			t.Fatalf("accepted body %q re-encodes as %q", cp.Text, got)
		}
		back, err := parseCheckpointBody(cp.Text)
		if err != nil || back != cp.checkpointBody {
			t.Fatalf("body %q does not round-trip: %+v %v", cp.Text, back, err)
		}
		// The note rebuilt from its parts parses to the same thing.
		var rebuilt bytes.Buffer
		rebuilt.WriteString(cp.Text)
		rebuilt.WriteByte('\n')
		for _, s := range cp.Sigs {
			rebuilt.WriteString("— " + s.Name + " " + s.Base64 + "\n")
		}
		cp2, err := parseSignedCheckpoint(rebuilt.Bytes())
		if err != nil || cp2.checkpointBody != cp.checkpointBody || len(cp2.Sigs) != len(cp.Sigs) {
			t.Fatalf("rebuilt note %q does not parse the same: %v", rebuilt.Bytes(), err)
		}
	})
}
