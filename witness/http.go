package witness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stele-dev/stele/internal/connlimit"
	"github.com/stele-dev/stele/internal/promreg"
)

// maxRequestBytes is the largest add-checkpoint request body accepted.
const maxRequestBytes = 1 << 20

// adminSocket is the admin endpoint's unix socket in the data directory
// (mode 0600): add-log, remove-log, list-logs and evidence talk to a
// running witness through it.
const adminSocket = "admin.sock"

// newHTTPServer returns an http.Server for h with the default timeouts
// and header limit of internal/connlimit (header 10s, idle 2m); the
// stele-witness binary uses connlimit.Limits from its flags, and caps the
// listener's connections.
func newHTTPServer(h http.Handler) *http.Server {
	return connlimit.Limits{}.HTTPServer(h)
}

// Handler serves the public HTTP API:
//
//	POST /add-checkpoint          C2SP tlog-witness
//	POST /sign-subtree            C2SP tlog-witness, ML-DSA-44 subtree cosignatures
//	GET  /<hex sha256(origin)>/checkpoint  latest cosigned checkpoint (404 if none)
//	GET  /evidence[?origin=O]     evidence records, JSON
//	GET  /healthz                 200 "ok" when the store is readable
//	GET  /metrics                 Prometheus
//
// Mount it under a prefix with http.StripPrefix.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAddCheckpoint)
	mux.HandleFunc("POST /sign-subtree", w.serveSignSubtree)
	mux.HandleFunc("GET /{id}/checkpoint", w.serveCheckpoint)
	mux.HandleFunc("GET /evidence", w.serveEvidence)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.store.readable(); err != nil {
			http.Error(rw, "store unreadable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(rw, "ok\n")
	})
	mux.Handle("GET /metrics", promreg.Handler(w.m.reg))
	return mux
}

// readBody reads a request's body, of at most maxRequestBytes.
func readBody(rw http.ResponseWriter, r *http.Request) ([]byte, *Error) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxRequestBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, refuse(http.StatusBadRequest, reasonTooLarge, "request body is over %d bytes", maxRequestBytes)
	case err != nil:
		return nil, refuse(http.StatusBadRequest, reasonMalformed, "reading request: %v", err)
	}
	return body, nil
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, e := readBody(rw, r)
	if e != nil {
		w.m.observe(e, time.Now())
		writeError(rw, e)
		return
	}
	cosig, err := w.AddCheckpoint(r.Context(), body)
	writeResult(rw, cosig, err)
}

// writeResult answers with a handler's signature lines, or its refusal: an
// *Error as it says, any other error as a 500.
func writeResult(rw http.ResponseWriter, sigs []byte, err error) {
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = refuse(http.StatusInternalServerError, reasonInternal, "%v", err)
		}
		writeError(rw, e)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(sigs)
}

// writeError writes a refusal. A 409 is exactly what C2SP tlog-witness
// requires (and Tessera checks): Content-Type text/x.tlog.size and the
// stored size in decimal with a newline.
func writeError(rw http.ResponseWriter, e *Error) {
	h := rw.Header()
	h.Del("Content-Length")
	if e.Status == http.StatusConflict && e.Reason == reasonOldMismatch {
		h["Content-Type"] = []string{"text/x.tlog.size"}
		h.Set("X-Content-Type-Options", "nosniff")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", e.Size)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	rw.WriteHeader(e.Status)
	fmt.Fprintln(rw, e.Msg)
}

func (w *Witness) serveCheckpoint(rw http.ResponseWriter, r *http.Request) {
	w.mu.RLock()
	origin, ok := w.byID[r.PathValue("id")]
	w.mu.RUnlock()
	if !ok {
		http.Error(rw, "this witness has cosigned no checkpoint for that log", http.StatusNotFound)
		return
	}
	st, have, err := w.store.state(origin)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	if !have {
		http.Error(rw, "this witness has cosigned no checkpoint for that log", http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Write(st.Checkpoint)
}

func (w *Witness) serveEvidence(rw http.ResponseWriter, r *http.Request) {
	evs, err := w.Evidence(r.URL.Query().Get("origin"))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(rw, http.StatusOK, evs)
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// adminHandler serves the admin API (JSON) that Manage's client uses:
//
//	GET    /logs            list logs
//	POST   /logs            add a log (body: LogConfig)
//	DELETE /logs?origin=O   remove a log
//	GET    /evidence[?origin=O]
//
// It changes what the witness trusts: serve it only where only the
// operator can reach it (serveAdmin uses a 0600 unix socket).
func (w *Witness) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs", func(rw http.ResponseWriter, r *http.Request) {
		ls, err := w.Logs()
		if err != nil {
			writeJSON(rw, http.StatusInternalServerError, adminError{err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, ls)
	})
	mux.HandleFunc("POST /logs", func(rw http.ResponseWriter, r *http.Request) {
		var c LogConfig
		dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, maxRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			writeJSON(rw, http.StatusBadRequest, adminError{err.Error()})
			return
		}
		rec, err := w.AddLog(c)
		if err != nil {
			writeJSON(rw, http.StatusBadRequest, adminError{err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, rec)
	})
	mux.HandleFunc("DELETE /logs", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.RemoveLog(r.URL.Query().Get("origin")); err != nil {
			writeJSON(rw, http.StatusBadRequest, adminError{err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("GET /evidence", w.serveEvidence)
	return mux
}

type adminError struct {
	Error string `json:"error"`
}

// serveAdmin serves adminHandler on <data-dir>/admin.sock (mode 0600)
// until ctx is done. A stale socket left by a killed witness is replaced:
// the store's lock, held by this witness, guarantees no other witness uses
// the directory.
func (w *Witness) serveAdmin(ctx context.Context) error {
	l, err := w.ListenAdmin()
	if err != nil {
		return err
	}
	return w.ServeAdminOn(ctx, l)
}

// ListenAdmin creates the admin socket (mode 0600), replacing a stale one.
// A caller that must have the socket in place before it announces itself
// listens first and serves with ServeAdminOn.
func (w *Witness) ListenAdmin() (net.Listener, error) {
	path := filepath.Join(w.dir, adminSocket)
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: move it away", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w (a data directory path over ~100 bytes is too long for a unix socket)", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return l, nil
}

// ServeAdminOn serves the admin API on l (from ListenAdmin) until ctx ends,
// then removes the socket.
func (w *Witness) ServeAdminOn(ctx context.Context, l net.Listener) error {
	path := filepath.Join(w.dir, adminSocket)
	srv := newHTTPServer(w.adminHandler())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
