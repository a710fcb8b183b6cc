package witness_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/steletest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
	"github.com/stele-dev/stele/witness"
)

// This file tests the witness from outside, through its exported API,
// against a real stele-server (internal/steletest imports this package,
// so it cannot be an internal test).

// cosignedAt returns the timestamp of w's cosignature on the checkpoint
// served at w's monitoring path for origin, and the checkpoint.
func cosignedAt(t *testing.T, url string, w *witness.Witness, origin string) (time.Time, []byte) {
	t.Helper()
	resp, err := http.Get(url + "/" + fmt.Sprintf("%x", sha256.Sum256([]byte(origin))) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 0, 4096)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("monitoring path: %d %s", resp.StatusCode, b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "— "+w.Name()+" ") {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(line[strings.LastIndexByte(line, ' ')+1:])
		if err != nil || len(sig) < 12 {
			t.Fatalf("cosignature line %q", line)
		}
		return time.Unix(int64(binary.BigEndian.Uint64(sig[4:12])), 0), b
	}
	t.Fatalf("no cosignature by %s in %q", w.Name(), b)
	return time.Time{}, nil
}

// TestRecosignIdleStele: a real stele-server, witnessed by this witness,
// appends a few events and goes idle. With a maximum age of 3 s, every
// read of the witness's monitoring path in the next 8 s returns a
// checkpoint of the same size whose cosignature is at most 3 s old (plus
// the second the timestamp truncates), it is re-cosigned several times,
// and each one verifies under the log's key and the operator's policy.
// Once with the log pushing only, once with its tiles URL as pull URL
// (the witness then fetches the log's checkpoint to re-cosign).
func TestRecosignIdleStele(t *testing.T) {
	for _, pull := range []bool{false, true} {
		t.Run(fmt.Sprintf("pull=%v", pull), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			key, err := logkey.LoadOrCreate(dir, "", server.DefaultOrigin, logkey.MLDSAAuto)
			if err != nil {
				t.Fatal(err)
			}
			origin := key.Signer.Name()
			w, err := witness.Open(t.TempDir(), witness.Options{Name: "w.recosign.test/w", Logger: slog.New(slog.DiscardHandler),
				Logs: []witness.LogConfig{{Origin: origin, Keys: []string{key.VKey}}}})
			if err != nil {
				t.Fatal(err)
			}
			wl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ws := &http.Server{Handler: w.Handler()}
			go ws.Serve(wl)
			defer func() { ws.Close(); w.Close() }()
			wurl := "http://" + wl.Addr().String()
			policy := []byte("witness w1 " + w.VerifierKey() + " " + wurl + "/\nquorum w1\n")

			lg := steletest.Start(t, false, server.Config{DataDir: dir, WitnessPolicy: policy})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			var evs []*stelev1.Event
			for i := range 3 {
				evs = append(evs, &stelev1.Event{Source: "app/recosign", EventId: fmt.Sprintf("e-%d", i), Kind: "user.signin",
					EventTime: timestamppb.Now(), Format: "json", Record: []byte(`{"user":"alice"}`)})
			}
			if _, err := lg.Client.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			published := lg.WaitSize(t, 3)
			if pull {
				if _, err := w.AddLog(witness.LogConfig{Origin: origin, Keys: []string{key.VKey}, PullURL: lg.URL}); err != nil {
					t.Fatal(err)
				}
			}
			p, err := client.ParsePolicy(policy)
			if err != nil {
				t.Fatal(err)
			}
			lv, err := note.NewVerifier(key.VKey)
			if err != nil {
				t.Fatal(err)
			}

			const maxAge = 3 * time.Second
			rctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { w.RunRecosign(rctx, maxAge); close(done) }()
			seen := map[int64]bool{}
			end := time.Now().Add(8 * time.Second)
			for time.Now().Before(end) {
				at, raw := cosignedAt(t, wurl, w, origin)
				if age := time.Since(at); age > maxAge+time.Second {
					t.Fatalf("the monitoring path served a cosignature %v old (max %v)", age, maxAge)
				}
				cp, err := client.ParseCheckpoint(raw, lv)
				if err != nil {
					t.Fatal(err)
				}
				if cp.Size != 3 {
					t.Fatalf("size %d, want 3 (the log is idle)", cp.Size)
				}
				if err := p.Check(cp); err != nil {
					t.Fatal(err)
				}
				seen[at.Unix()] = true
				time.Sleep(200 * time.Millisecond)
			}
			stop()
			<-done
			if len(seen) < 3 {
				t.Fatalf("%d distinct cosignature times in 8 s, want at least 3 (re-cosigned while idle)", len(seen))
			}
			if now := lg.Checkpoint(t); string(now) != string(published) {
				t.Fatalf("the log published a new checkpoint while idle:\n%s\nthen\n%s", published, now)
			}
			resp, err := http.Get(wurl + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			metrics := string(body)
			want := `stele_witness_recosigns_total{outcome="recosigned"}`
			if pull {
				want = `stele_witness_recosigns_total{outcome="pulled"}`
			}
			if !strings.Contains(metrics, want) || !strings.Contains(metrics, `stele_witness_checkpoint_age_seconds{origin="`+origin+`"}`) {
				t.Fatalf("metrics lack %s or the age gauge", want)
			}
		})
	}
}
