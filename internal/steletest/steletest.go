// Package steletest runs a real Stele server in-process (Tessera on disk,
// gRPC and HTTP on loopback), optionally with a real witness cosigning its
// checkpoints, for the tests of packages that read a running log (report,
// explorer). It is test support: nothing in a binary uses it.
package steletest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/server"
	"github.com/stele-dev/stele/witness"
)

// Log is a running server.
type Log struct {
	Srv     *server.Server
	Dir     string
	GRPC    string // host:port
	URL     string // tlog-tiles root, with a trailing slash
	KeyFile string // the verifier key file (log.pub)
	VKey    string
	Client  *client.Client
	// PolicyFile and Policy are the witness policy (empty without a witness);
	// WitnessName names the witness.
	PolicyFile  string
	Policy      []byte
	WitnessName string

	stop func()
}

// Start runs a server in cfg.DataDir (default: a fresh directory); with witness, a real
// stele-witness (the witness package over HTTP on loopback) must cosign
// every checkpoint before it is published.
func Start(t testing.TB, withWitness bool, cfg server.Config) *Log {
	t.Helper()
	dir := cfg.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	// A data directory must be private (the server refuses one others can
	// read once it holds files, and the key is written first); t.TempDir's
	// is 0755.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := logkey.LoadOrCreate(dir, "", server.DefaultOrigin, logkey.MLDSAAuto)
	if err != nil {
		t.Fatal(err)
	}
	l := &Log{Dir: dir, VKey: key.VKey, KeyFile: filepath.Join(dir, "log.pub")}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if withWitness {
		l.WitnessName = "w1.stele.test/witness"
		w, err := witness.Open(t.TempDir(), witness.Options{Name: l.WitnessName, Logger: quiet,
			Logs: []witness.LogConfig{{Origin: key.Signer.Name(), Keys: []string{key.VKey}}}})
		if err != nil {
			t.Fatal(err)
		}
		wl := listen(t)
		ws := &http.Server{Handler: w.Handler()}
		go ws.Serve(wl)
		t.Cleanup(func() { ws.Close(); w.Close() })
		l.Policy = []byte("witness w1 " + w.VerifierKey() + " http://" + wl.Addr().String() + "/\nquorum w1\n")
		l.PolicyFile = filepath.Join(t.TempDir(), "policy.txt")
		if err := os.WriteFile(l.PolicyFile, l.Policy, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.WitnessPolicy = l.Policy
	}
	cfg.DataDir = dir
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	l.Srv = srv
	gl, hl := listen(t), listen(t)
	gs := grpc.NewServer(srv.GRPCOptions()...)
	srv.RegisterGRPC(gs)
	go gs.Serve(gl)
	hs := &http.Server{Handler: srv.HTTPHandler()}
	go hs.Serve(hl)
	l.GRPC, l.URL = gl.Addr().String(), "http://"+hl.Addr().String()+"/"
	if l.Client, err = client.Dial(l.GRPC); err != nil {
		t.Fatal(err)
	}
	l.stop = func() {
		l.Client.Close()
		gs.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("closing server: %v", err)
		}
		hs.Close()
	}
	t.Cleanup(l.Stop)
	return l
}

// Stop stops the server (once; it also stops when the test ends).
func (l *Log) Stop() {
	if l.stop != nil {
		l.stop()
		l.stop = nil
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Checkpoint returns the log's published checkpoint as served over HTTP.
func (l *Log) Checkpoint(t testing.TB) []byte {
	t.Helper()
	resp, err := http.Get(l.URL + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("checkpoint: %d %v", resp.StatusCode, err)
	}
	return b
}

// WaitSize waits until the published checkpoint covers size entries and
// returns it.
func (l *Log) WaitSize(t testing.TB, size uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cp, err := l.Client.Checkpoint(context.Background())
		if err == nil {
			if c, err := client.ParseCheckpoint(cp, mustVerifier(t, l.VKey)); err == nil && c.Size >= size {
				return l.Checkpoint(t)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d within 30s", size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
