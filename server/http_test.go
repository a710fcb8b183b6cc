package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHealthzAndMetrics(t *testing.T) {
	ts := startServer(t, t.TempDir(), server.Config{})
	evs := []*stelev1.Event{event("entra/t/audit", "m1", 200), event("entra/t/audit", "m2", 200)}
	mustAppend(t, ts.cli, evs)
	bad := event("entra/t/audit", "m3", 200)
	bad.Format = "nope"
	if _, err := ts.cli.Append(ctxT(t, time.Minute), []*stelev1.Event{bad, evs[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cli.Receipt(ctxT(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}

	resp, body := get(t, ts.httpURL+"healthz")
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	var h struct {
		Status string `json:"status"`
		Origin string `json:"origin"`
		Size   uint64 `json:"checkpoint_size"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "ok" || h.Origin != ts.srv.Origin() || h.Size != 2 {
		t.Fatalf("healthz body %s (%v)", body, err)
	}

	// Metrics reflect what happened; the gauges follow the checkpoint.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body = get(t, ts.httpURL+"metrics")
		if resp.StatusCode != 200 {
			t.Fatalf("metrics: %d", resp.StatusCode)
		}
		// The gauges are set at different moments after the checkpoint
		// moves: wait for both.
		settled := strings.Contains(body, "stele_checkpoint_size 2\n") && strings.Contains(body, "stele_integration_lag_entries 0\n")
		if settled || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`stele_append_events_total{outcome="admitted"} 2`,
		`stele_append_events_total{outcome="duplicate"} 1`,
		`stele_append_events_total{outcome="refused"} 1`,
		`stele_append_refused_total{code="InvalidArgument"} 1`,
		"stele_append_batch_events_count 2",
		"stele_tree_size 2",
		"stele_checkpoint_size 2",
		"stele_integration_lag_entries 0",
		"stele_checkpoint_age_seconds ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The tlog-tiles API is at the root; other paths are 404.
	resp, body = get(t, ts.httpURL+"checkpoint")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, ts.srv.Origin()+"\n2\n") {
		t.Fatalf("checkpoint: %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{"payloads/", "log.key", "log/checkpoint", ".state/treeState", "tile/0/000.p/9"} {
		if resp, _ := get(t, ts.httpURL+p); resp.StatusCode != 404 {
			t.Errorf("GET /%s: %d, want 404", p, resp.StatusCode)
		}
	}
	resp, _ = get(t, fmt.Sprintf("%stile/entries/000.p/2", ts.httpURL))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("entry bundle: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
