package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// cliSubmit measures the CLI side: `stele submit` (the real binary, with
// --batch cfg.Batch and --parallel cfg.Producers) of cfg.Events events, the same records the Stele side sends, from a JSON
// Lines file against a fresh server. It returns events/s from the start of
// the process to its exit, so reading, parsing and printing count.
func cliSubmit(ctx context.Context, cfg Config) (float64, error) {
	bin, err := siblingBinary(cfg.CLI, "stele")
	if err != nil {
		return 0, err
	}
	srv, err := startServer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer srv.stop()
	path := filepath.Join(srv.dir, "events.jsonl")
	if err := writeEvents(path, cfg); err != nil {
		return 0, err
	}
	var stderr bytes.Buffer
	// The same batch size and as many batches in flight as the Stele side
	// has producers.
	cmd := exec.CommandContext(ctx, bin, "submit", "--server", srv.grpcAddr, "--batch", fmt.Sprint(cfg.Batch), "--parallel", fmt.Sprint(cfg.Producers), path)
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	took := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, stderr.Bytes())
	}
	if n := bytes.Count(out, []byte("\n")); n != cfg.Events {
		return 0, fmt.Errorf("stele submit printed %d lines for %d events\n%s", n, cfg.Events, stderr.Bytes())
	}
	if want := fmt.Sprintf("%d admitted, 0 duplicates, 0 refused\n", cfg.Events); !bytes.HasSuffix(stderr.Bytes(), []byte(want)) {
		return 0, fmt.Errorf("stele submit did not admit every event: %s", stderr.Bytes())
	}
	return float64(cfg.Events) / took.Seconds(), nil
}

// writeEvents writes cfg.Events events as `stele submit` reads them.
func writeEvents(path string, cfg Config) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for j := range cfg.Events {
		id := fmt.Sprintf("c-%d", j)
		line := struct {
			Source    string          `json:"source"`
			EventID   string          `json:"event_id"`
			Kind      string          `json:"kind"`
			EventTime string          `json:"event_time"`
			Format    string          `json:"format"`
			Record    json.RawMessage `json:"record"`
		}{"entra/bench/audit", id, "directory.role.member.add", "2026-11-25T10:00:00Z", "entra.directoryAudit", record(id, cfg.Size)}
		if err := enc.Encode(line); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
