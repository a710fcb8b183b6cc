package collector_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/collector"
	"github.com/stele-dev/stele/internal/importer"
)

// flakySource moves its cursor on every run, then fails: a source that
// fails now and then (as a Kafka consumer does at a rebalance) while it
// makes progress.
type flakySource struct{ runs atomic.Int64 }

func (s *flakySource) Provider() importer.Provider { return importer.Okta }

func (s *flakySource) Run(ctx context.Context, pos json.RawMessage, emit collector.Emit) error {
	n := s.runs.Add(1)
	if err := emit(ctx, collector.Batch{Position: map[string]int64{"run": n}, Wait: true}); err != nil {
		return err
	}
	return errors.New("the provider hung up")
}

// TestBackoffResetsAfterProgress: a source that fails after moving its
// cursor is run again after the first pause (about a second), every time;
// the pause doubles only while it fails without progress. Before, the
// pause doubled for good, and the sixth failure of a long-running Event
// Hubs source stalled it 32 s.
func TestBackoffResetsAfterProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `{"server": {"address": "127.0.0.1:1"}, "state_dir": "`+dir+`/state", "listen": "-",
  "sources": [{"name": "flaky", "okta_systemlog": {"org_url": "https://example.okta.com", "auth": "api_token", "api_token_env": "`+secretEnv("00token")+`"}}]}`)
	c, err := collector.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := &flakySource{}
	col, err := collector.New(collector.Options{Config: c, Submitter: &client.Submitter{}, Logger: quiet(), Sources: map[string]collector.Source{"flaky": src}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { col.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Seven runs take six pauses: about 6 s when each is the first pause
	// (1 s ± 20%), 63 s when they double.
	deadline := time.Now().Add(25 * time.Second)
	for src.runs.Load() < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("%d runs in 25 s: the pause grows although the source makes progress", src.runs.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := col.Status()[0]; string(st.Cursor) == "" || st.LastErr != "the provider hung up" {
		t.Errorf("status = %+v", st)
	}
}
