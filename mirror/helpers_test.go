package mirror_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/internal/proctest"
	"github.com/stele-dev/stele/internal/steletest"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.RemoveBinaries()
	os.Exit(code)
}

// source is a real log server (internal/steletest: Tessera on disk, gRPC
// and HTTP on loopback) that the mirror copies.
type source struct {
	*steletest.Log
	next int // next event number to submit
}

func startSource(t *testing.T) *source {
	t.Helper()
	s := &source{}
	s.start(t)
	return s
}

// start runs the source's server, again on its data directory once it has
// one (its addresses change).
func (s *source) start(t *testing.T) {
	t.Helper()
	cfg := server.Config{CheckpointInterval: 100 * time.Millisecond}
	if s.Log != nil {
		cfg.DataDir = s.Dir
	}
	s.Log = steletest.Start(t, false, cfg)
}

func (s *source) url() string     { return s.URL }
func (s *source) logDir() string  { return filepath.Join(s.Dir, "log") }
func (s *source) keyPath() string { return s.KeyFile }

func (s *source) tileLog(t *testing.T) *client.TileLog {
	t.Helper()
	v, err := logkey.ReadVerifier(s.keyPath())
	if err != nil {
		t.Fatal(err)
	}
	lg, err := client.NewTileLog(s.url(), v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

// submit appends n new events and waits for a checkpoint covering them.
func (s *source) submit(t testing.TB, n int) {
	t.Helper()
	if err := s.submitErr(n); err != nil {
		t.Fatal(err)
	}
}

// submitErr is submit for goroutines other than the test's.
func (s *source) submitErr(n int) error {
	evs := make([]*stelev1.Event, n)
	for i := range evs {
		evs[i] = &stelev1.Event{Source: "test/mirror", EventId: fmt.Sprintf("ev-%06d", s.next), Kind: "user.signin",
			EventTime: timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s.next) * time.Second)),
			Format:    "json", Record: fmt.Appendf(nil, `{"i":%d}`, s.next)}
		s.next++
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := (&client.Submitter{Client: s.Client, BatchEvents: 100}).Submit(ctx, evs)
	if err != nil {
		return err
	}
	for i, r := range rs {
		if !r.OK() {
			return fmt.Errorf("event %d: %v", i, r.Code)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		size, err := s.size()
		if err != nil {
			return err
		}
		if size >= uint64(s.next) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the source's checkpoint did not reach size %d", s.next)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// size reads the size of the source's published checkpoint.
func (s *source) size() (uint64, error) {
	raw, err := os.ReadFile(filepath.Join(s.logDir(), "checkpoint"))
	if err != nil {
		return 0, err
	}
	var origin string
	var size uint64
	if _, err := fmt.Sscanf(string(raw), "%s\n%d\n", &origin, &size); err != nil {
		return 0, fmt.Errorf("source checkpoint: %v", err)
	}
	return size, nil
}

// covered lists every tlog-tiles file a checkpoint of size n covers.
func covered(n uint64) []string {
	var ps []string
	for bi := uint64(0); bi*layout.EntryBundleWidth < n; bi++ {
		ps = append(ps, layout.EntriesPath(bi, layout.PartialTileSize(0, bi, n)))
	}
	for level := uint64(0); n>>(layout.TileHeight*level) > 0; level++ {
		nodes := n >> (layout.TileHeight * level)
		for ti := uint64(0); ti*layout.TileWidth < nodes; ti++ {
			ps = append(ps, layout.TilePath(level, ti, layout.PartialTileSize(level, ti, n)))
		}
	}
	return ps
}

// sameFiles checks that every file a checkpoint of size n covers is in
// both directories with the same bytes, and returns how many were compared.
func sameFiles(t testing.TB, src, dst string, n uint64) int {
	t.Helper()
	ps := covered(n)
	for _, p := range ps {
		a, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(p)))
		if err != nil {
			t.Fatalf("source: %v", err)
		}
		b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(p)))
		if err != nil {
			t.Fatalf("mirror: %v", err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s differs between the source and the mirror", p)
		}
	}
	return len(ps)
}

// listFiles returns every file under dir with its contents, but for the
// mirror's lock file.
func listFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == ".mirror.lock" {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
