package server

import (
	"context"
	"net/http"
	"time"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/server/backend"
)

// payloadStore is the backend's payload store with the dedup and leaf-hash
// indexes.
type payloadStore = backend.Payloads

// tilesHandler serves the tlog-tiles read API, as the backend keeps the log.
func (s *Server) tilesHandler() http.Handler { return s.st.Tiles() }

// checkBackends reports why the storage cannot serve, or nil.
func (s *Server) checkBackends(ctx context.Context) error { return s.st.Check(ctx) }

// followIndexes keeps the shared dedup and leaf-hash indexes complete up to
// the integrated log size when replicas share the log (aws): it fills in
// the entries whose replica crashed between sequencing and indexing them,
// and moves the shared watermark that stale-claim takeover waits for
// (internal/mysqlstore).
func (s *Server) followIndexes(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		size, err := s.reader.IntegratedSize(ctx)
		if err == nil {
			err = s.reindex(ctx, size, false)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("following the log into the dedup index", "err", err)
		}
	}
}

// payloadRef names the payload a leaf commits to, as the stores file it.
func payloadRef(l *leaf.Leaf) store.Ref {
	return store.Ref{Admitted: l.AdmittedTime, Digest: l.PayloadDigest}
}
