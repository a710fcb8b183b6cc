package server

import (
	"encoding/json"
	"net/http"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/promreg"
)

// HTTPHandler serves the C2SP tlog-tiles read API at its root (checkpoint,
// tiles, entry bundles; public by design, as leaves hold no personal data),
// plus /healthz and Prometheus /metrics.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", s.tilesHandler())
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /"+client.FreezePath, s.serveFreeze) // freeze.go
	mux.Handle("/ui/", s.explorerHandler())
	mux.Handle("GET /metrics", promreg.Handler(s.m.reg))
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	cp := s.cps.latest()
	select {
	case <-s.admit.closed:
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": "shutting down"})
		return
	default:
	}
	if cp == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": "no checkpoint published yet"})
		return
	}
	if err := s.checkBackends(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": err.Error()})
		return
	}
	body := map[string]any{"status": "ok", "origin": s.cfg.Origin, "checkpoint_size": cp.size}
	for k, v := range s.lifecycle() {
		body[k] = v
	}
	json.NewEncoder(w).Encode(body)
}
