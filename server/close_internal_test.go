package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/server/backend"
)

// blockingPayloads holds PutPayloads until release is closed, and fails
// the test if it is called after closedStore is closed.
type blockingPayloads struct {
	backend.Payloads
	t           *testing.T
	entered     chan struct{}
	release     chan struct{}
	closedStore chan struct{}
}

func (b *blockingPayloads) PutPayloads([]store.Payload) error {
	select {
	case <-b.closedStore:
		b.t.Error("PutPayloads after the store was closed")
	default:
	}
	close(b.entered)
	<-b.release
	return nil
}

// TestCloseWaitsForDetachedCommit: a commit whose caller went away keeps
// running; closing the admitter waits for it (so the server closes its store
// only after), reports a deadline that passes first, and a commit asked for
// after close never reaches the store. Before, Close closed the store under
// such a commit and pebble panicked ("pebble: closed").
func TestCloseWaitsForDetachedCommit(t *testing.T) {
	st := &blockingPayloads{t: t, entered: make(chan struct{}), release: make(chan struct{}), closedStore: make(chan struct{})}
	a := &admitter{cfg: &Config{DataDir: t.TempDir()}, store: st, closed: make(chan struct{}), inflight: map[dedupKey]*flight{}}

	caller, cancel := context.WithCancel(context.Background())
	done := a.startCommit(caller, nil, nil)
	<-st.entered
	cancel() // the caller goes away; the commit goes on

	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if err := a.close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a commit running and a passed deadline: %v, want a deadline error", err)
	}
	// close has marked the admitter closed: a new commit only refuses.
	late := a.startCommit(context.Background(), nil, nil)
	<-late

	waited := make(chan struct{})
	go func() {
		a.commits.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("the running commit was not counted")
	case <-time.After(50 * time.Millisecond):
	}
	close(st.release)
	<-done
	<-waited
	close(st.closedStore)
}
