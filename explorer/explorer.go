// Package explorer is the log's read-only web UI, served at /ui/ by
// stele-server: the latest checkpoint and its cosignatures, each witness's
// last cosigning time, events per minute, an entry looked up by index or
// by (source, event_id) with its normalised event and raw record (with
// reader credentials), and a subject's timeline.
//
// The browser trusts none of it: app.js verifies the checkpoint's Ed25519
// signature against the log's verifier key (WebCrypto) and the entry's
// inclusion proof up to the checkpoint's root (SHA-256, WebCrypto), and
// shows each step. The assets are embedded (go:embed), plain HTML, CSS
// and a dependency-free script; there is no build step.
//
// The JSON endpoints under /ui/api/ are read-only:
//
//	GET /ui/api/log          origin, verifier key, latest checkpoint, witnesses, events per minute,
//	                         the freeze statement of a frozen log, the predecessor if configured
//	GET /ui/api/entry/{N}    entry N's leaf, decoded, with its inclusion proof in the latest checkpoint
//	GET /ui/api/event/{N}    entry N's normalised event and raw record (reader role:
//	                         "Authorization: Bearer <token>" on a server with an access policy)
//	GET /ui/api/lookup?source=S&event_id=E
//	                         the index of the event (S, E) (reader role, as GetEventByID)
//	GET /ui/api/history?subject=X
//	                         X's timeline, as `stele history` gives it (package history),
//	                         with each event's leaf and inclusion proof (reader role)
//
// A timeline is computed here, on the server, with the caller's rights:
// the explorer keeps one subject index per caller (package history), reads
// the payloads it needs through Options.Payloads and extends the index to
// the latest checkpoint on each request (docs/decisions.md).
package explorer

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/history"
	"github.com/stele-dev/stele/internal/cosig"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/ledger"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

//go:embed ui
var assets embed.FS

// EventFunc reads entry index's payload as the gRPC GetEvent does, for the
// caller presenting authorization (the request's Authorization header, or
// ""); it returns gRPC status errors.
type EventFunc func(ctx context.Context, index uint64, authorization string) (*stelev1.GetEventResponse, error)

// Options configure the explorer.
type Options struct {
	// VerifierKey is the log's signed-note verifier key.
	VerifierKey string
	// Tiles serves the log's tlog-tiles API (checkpoint, tiles, bundles).
	Tiles http.Handler
	// Event reads payloads; nil: the explorer shows no events.
	Event EventFunc
	// EventByID finds the index of the event (source, event_id) for the
	// caller presenting authorization, as GetEventByID does; nil: the
	// explorer looks entries up by index only.
	EventByID func(ctx context.Context, source, eventID, authorization string) (uint64, error)
	// Payloads authorises the caller presenting authorization to read
	// payloads and returns its name (one subject index is kept per name)
	// and a PayloadFunc reading with its rights; nil: no timelines.
	Payloads func(ctx context.Context, authorization string) (caller string, read ledger.PayloadFunc, err error)
	// WitnessPolicy is the C2SP tlog-policy in force, if any.
	WitnessPolicy []byte
	// Predecessor, when set, is the log this one continues (a chain of
	// logs, docs/operations.md "Rotating to a new log"): the page names
	// it, and verifies in the browser that its freeze statement, read
	// from Predecessor.URL, names this log as its successor.
	Predecessor *Predecessor
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Predecessor is the log a log continues.
type Predecessor struct {
	// Key is its signed-note verifier key (its name is its origin).
	Key string
	// URL is where its tlog-tiles API is served; empty: the page names
	// it without reading its freeze statement.
	URL string
	// HTTPClient reads it (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
}

type explorer struct {
	o         Options
	tl        *client.TileLog
	verifier  note.Verifier
	witnesses []cosig.Witness

	pred  *client.TileLog // the predecessor, when configured with a URL
	predV note.Verifier

	mu      sync.Mutex
	predFr  []byte                   // the predecessor's freeze statement, once read (it never changes)
	last    map[string]time.Time     // witness name -> latest cosignature seen
	indexes map[string]*subjectIndex // caller -> its subject index
}

// subjectIndex is one caller's subject index, built from the payloads it
// may read; nil x: to be built from entry 0.
type subjectIndex struct {
	mu sync.Mutex
	x  *history.Index
}

// New returns the explorer's handler, to mount at /ui/.
func New(o Options) (http.Handler, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	v, err := note.NewVerifier(o.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("explorer: log verifier key: %w", err)
	}
	ws, err := cosig.Witnesses(o.WitnessPolicy)
	if err != nil {
		return nil, fmt.Errorf("explorer: %w", err)
	}
	// The explorer reads the tiles in-process through the same handler the
	// public API uses (following a redirect to a bucket when there is one).
	hc := &http.Client{Transport: handlerTransport{o.Tiles}, Timeout: 30 * time.Second}
	tl, err := client.NewTileLog("http://"+inProcessHost+"/", v, hc)
	if err != nil {
		return nil, err
	}
	e := &explorer{o: o, tl: tl, verifier: v, witnesses: ws, last: map[string]time.Time{}, indexes: map[string]*subjectIndex{}}
	if p := o.Predecessor; p != nil {
		if e.predV, err = note.NewVerifier(p.Key); err != nil {
			return nil, fmt.Errorf("explorer: predecessor key: %w", err)
		}
		if p.URL != "" {
			hc := p.HTTPClient
			if hc == nil {
				hc = &http.Client{Timeout: 10 * time.Second}
			}
			if e.pred, err = client.NewTileLog(p.URL, e.predV, hc); err != nil {
				return nil, fmt.Errorf("explorer: predecessor: %w", err)
			}
		}
	}
	mux := http.NewServeMux()
	sub, _ := fs.Sub(assets, "ui")
	static := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux.Handle("GET /ui/", withHeaders(static))
	mux.HandleFunc("GET /ui/api/log", e.apiLog)
	mux.HandleFunc("GET /ui/api/entry/{index}", e.apiEntry)
	mux.HandleFunc("GET /ui/api/event/{index}", e.apiEvent)
	mux.HandleFunc("GET /ui/api/lookup", e.apiLookup)
	mux.HandleFunc("GET /ui/api/history", e.apiHistory)
	return mux, nil
}

// csp keeps the page to its own assets and API.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func withHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

const inProcessHost = "stele.in-process"

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != inProcessHost {
		return http.DefaultTransport.RoundTrip(r)
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

type witnessJSON struct {
	Name         string     `json:"name"`
	Key          string     `json:"key"`
	URL          string     `json:"url,omitempty"`
	Cosigned     bool       `json:"cosigned_latest"`
	LastCosigned *time.Time `json:"last_cosigned,omitempty"`
}

type minuteJSON struct {
	Minute time.Time `json:"minute"`
	Count  int       `json:"count"`
}

func (e *explorer) apiLog(w http.ResponseWriter, r *http.Request) {
	cp, err := e.tl.Checkpoint(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "no verified checkpoint: %v", err)
		return
	}
	ws := []witnessJSON{}
	e.mu.Lock()
	for _, wt := range e.witnesses {
		j := witnessJSON{Name: wt.Name, Key: wt.Key, URL: wt.URL}
		if t, ok := wt.Time(cp.Raw); ok {
			j.Cosigned = true
			if t.After(e.last[wt.Name]) {
				e.last[wt.Name] = t
			}
		}
		if t, ok := e.last[wt.Name]; ok {
			j.LastCosigned = &t
		}
		ws = append(ws, j)
	}
	e.mu.Unlock()
	pm, err := e.perMinute(r.Context(), cp.Size)
	if err != nil {
		writeError(w, http.StatusBadGateway, "reading the latest entries: %v", err)
		return
	}
	out := map[string]any{
		"origin": cp.Origin, "verifier_key": e.o.VerifierKey, "checkpoint": string(cp.Raw),
		"size": cp.Size, "witnesses": ws, "per_minute": pm, "events_readable": e.o.Event != nil,
	}
	// A frozen log: its freeze statement, for the browser to verify (the
	// server checked it too: a statement that does not verify, or names
	// another tree than the checkpoint, is reported as such).
	if fr, _, err := e.tl.Freeze(r.Context()); err != nil {
		out["freeze_error"] = err.Error()
	} else if fr != nil {
		out["frozen"] = string(fr.Raw)
	}
	if p := e.predecessor(r.Context()); p != nil {
		out["predecessor"] = p
	}
	writeJSON(w, http.StatusOK, out)
}

// predecessor describes the configured predecessor, with its freeze
// statement once it could be read (the browser verifies it names this log).
func (e *explorer) predecessor(ctx context.Context) map[string]string {
	if e.predV == nil {
		return nil
	}
	p := map[string]string{"origin": e.predV.Name(), "key": e.o.Predecessor.Key, "url": e.o.Predecessor.URL}
	e.mu.Lock()
	raw := e.predFr
	e.mu.Unlock()
	if raw == nil && e.pred != nil {
		fr, _, err := e.pred.Freeze(ctx)
		switch {
		case err != nil:
			p["error"] = err.Error()
		case fr == nil:
			p["error"] = "it is not frozen"
		default:
			raw = fr.Raw
			e.mu.Lock()
			e.predFr = raw
			e.mu.Unlock()
		}
	}
	if raw != nil {
		p["frozen"] = string(raw)
	}
	return p
}

// perMinute counts the entries admitted in each of the last 60 minutes,
// reading the log's tail (at most 20 entry bundles).
func (e *explorer) perMinute(ctx context.Context, size uint64) ([]minuteJSON, error) {
	now := e.o.Now().UTC().Truncate(time.Minute)
	start := now.Add(-59 * time.Minute)
	out := make([]minuteJSON, 60)
	for i := range out {
		out[i].Minute = start.Add(time.Duration(i) * time.Minute)
	}
	if size == 0 {
		return out, nil
	}
	last := (size - 1) / layout.EntryBundleWidth
	for n, bi := 0, last; n < 20; n, bi = n+1, bi-1 {
		es, err := e.tl.Bundle(ctx, bi, size)
		if err != nil {
			return nil, err
		}
		older := false
		for _, b := range es {
			l, err := leaf.Unmarshal(b)
			if err != nil {
				continue
			}
			t := l.AdmittedTime.UTC().Truncate(time.Minute)
			if t.Before(start) {
				older = true
				continue
			}
			if i := int(t.Sub(start) / time.Minute); i < len(out) {
				out[i].Count++
			}
		}
		if older || bi == 0 {
			break
		}
	}
	return out, nil
}

func index(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	n, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "the index must be a non-negative integer, got %q", r.PathValue("index"))
		return 0, false
	}
	return n, true
}

type leafJSON struct {
	Source       string    `json:"source"`
	SourceSeq    uint64    `json:"source_seq"`
	EventID      string    `json:"event_id"`
	Kind         string    `json:"kind"`
	EventTime    time.Time `json:"event_time"`
	AdmittedTime time.Time `json:"admitted_time"`
	Signed       bool      `json:"producer_signed"`
}

func (e *explorer) apiEntry(w http.ResponseWriter, r *http.Request) {
	idx, ok := index(w, r)
	if !ok {
		return
	}
	cp, err := e.tl.Checkpoint(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "no verified checkpoint: %v", err)
		return
	}
	if idx >= cp.Size {
		writeError(w, http.StatusNotFound, "entry %d is not in the log yet: the latest checkpoint holds %d entries", idx, cp.Size)
		return
	}
	lb, err := e.tl.Entry(r.Context(), idx, cp.Size)
	if err != nil {
		writeError(w, http.StatusBadGateway, "reading entry %d: %v", idx, err)
		return
	}
	proof, err := e.tl.InclusionProof(r.Context(), idx, cp.Size)
	if err != nil {
		writeError(w, http.StatusBadGateway, "building the inclusion proof of entry %d: %v", idx, err)
		return
	}
	hashes := make([]string, len(proof))
	for i, h := range proof {
		hashes[i] = base64.StdEncoding.EncodeToString(h)
	}
	out := map[string]any{"index": idx, "size": cp.Size, "checkpoint": string(cp.Raw), "verifier_key": e.o.VerifierKey,
		"leaf": base64.StdEncoding.EncodeToString(lb), "proof": hashes}
	if l, err := leaf.Unmarshal(lb); err == nil {
		out["decoded"] = leafJSON{l.Source, l.SourceSeq, l.EventID, l.Kind, l.EventTime.UTC(), l.AdmittedTime.UTC(), l.Signature != nil}
	} else {
		out["decode_error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *explorer) apiEvent(w http.ResponseWriter, r *http.Request) {
	idx, ok := index(w, r)
	if !ok {
		return
	}
	if e.o.Event == nil {
		writeError(w, http.StatusNotFound, "this server does not serve events to the explorer")
		return
	}
	authz, ok := authorization(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	ev, err := e.o.Event(ctx, idx, authz)
	if err != nil {
		writeStatus(w, err)
		return
	}
	out := map[string]any{"index": ev.Index, "format": ev.Format}
	if t := ev.Tombstone; t != nil {
		out["erased"] = map[string]any{"erased_at": t.ErasedAt.AsTime(), "reason": t.Reason, "request_reference": t.RequestReference, "erasure_index": t.ErasureIndex}
		writeJSON(w, http.StatusOK, out)
		return
	}
	out["record"] = string(ev.Record)
	if len(ev.Normalized) > 0 {
		var ie stelev1.IdentityEvent
		if err := proto.Unmarshal(ev.Normalized, &ie); err != nil {
			out["normalized_error"] = err.Error()
		} else if b, err := protojson.Marshal(&ie); err == nil {
			out["normalized"] = json.RawMessage(b)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authorization is the request's Authorization header, refused when it
// came in the clear from off this host.
func authorization(w http.ResponseWriter, r *http.Request) (string, bool) {
	authz := r.Header.Get("Authorization")
	if authz != "" && r.TLS == nil && !loopback(r.RemoteAddr) {
		writeError(w, http.StatusBadRequest, "a token was sent over plain HTTP from off this host, where anyone on the path can read it: use the server over TLS (--tls-cert), and revoke that token")
		return "", false
	}
	return authz, true
}

// writeStatus answers a gRPC status error with its HTTP equivalent.
func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := map[codes.Code]int{codes.Unauthenticated: http.StatusUnauthorized, codes.PermissionDenied: http.StatusForbidden,
		codes.NotFound: http.StatusNotFound, codes.OutOfRange: http.StatusNotFound, codes.InvalidArgument: http.StatusBadRequest,
		codes.DeadlineExceeded: http.StatusGatewayTimeout}[st.Code()]
	if code == 0 {
		code = http.StatusBadGateway
	}
	writeError(w, code, "%s: %s", st.Code(), st.Message())
}

// maxParam bounds the query parameters a lookup takes.
const maxParam = 1024

func (e *explorer) apiLookup(w http.ResponseWriter, r *http.Request) {
	if e.o.EventByID == nil {
		writeError(w, http.StatusNotFound, "this server does not look events up by (source, event_id) for the explorer")
		return
	}
	q := r.URL.Query()
	source, id := q.Get("source"), q.Get("event_id")
	if source == "" || id == "" {
		writeError(w, http.StatusBadRequest, "both source and event_id are required")
		return
	}
	if len(source) > maxParam || len(id) > maxParam {
		writeError(w, http.StatusBadRequest, "source and event_id are at most %d bytes each", maxParam)
		return
	}
	authz, ok := authorization(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	idx, err := e.o.EventByID(ctx, source, id, authz)
	if err != nil {
		writeStatus(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"index": idx, "source": source, "event_id": id})
}

// historyTimeout bounds a timeline request, which may first have to read
// every payload logged since the caller's index was last extended.
const historyTimeout = 2 * time.Minute

// timelineEvent is a history.Event with its leaf, so the browser can check
// the inclusion proof itself.
type timelineEvent struct {
	history.Event
	Leaf string `json:"leaf"`
}

func (e *explorer) apiHistory(w http.ResponseWriter, r *http.Request) {
	if e.o.Payloads == nil {
		writeError(w, http.StatusNotFound, "this server does not serve subject timelines to the explorer")
		return
	}
	subject := strings.TrimSpace(r.URL.Query().Get("subject"))
	if subject == "" || len(subject) > maxParam {
		writeError(w, http.StatusBadRequest, "subject is required (a UPN, object id, appId, service-principal id, Okta login, AWS ARN, IAM user name or access key id), at most %d bytes", maxParam)
		return
	}
	authz, ok := authorization(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), historyTimeout)
	defer cancel()
	caller, read, err := e.o.Payloads(ctx, authz)
	if err != nil {
		writeStatus(w, err)
		return
	}
	cp, err := e.tl.Checkpoint(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "no verified checkpoint: %v", err)
		return
	}
	e.mu.Lock()
	si := e.indexes[caller]
	if si == nil {
		si = &subjectIndex{}
		e.indexes[caller] = si
	}
	e.mu.Unlock()

	si.mu.Lock()
	defer si.mu.Unlock()
	if si.x == nil || si.x.Origin != cp.Origin {
		si.x = history.New(cp.Origin)
	}
	lr := &ledger.Reader{Log: e.tl, Payloads: read}
	if err := history.Update(ctx, lr, cp, si.x); err != nil {
		si.x = nil // partly updated: rebuilt on the next request
		ledgerError(w, err)
		return
	}
	prover, err := ledger.NewProver(ctx, e.tl, cp)
	if err != nil {
		writeError(w, http.StatusBadGateway, "reading the tree: %v", err)
		return
	}
	tl, err := history.Lookup(ctx, lr, prover, si.x, subject)
	if err != nil {
		ledgerError(w, err)
		return
	}
	evs := make([]timelineEvent, len(tl.Events))
	for i, ev := range tl.Events {
		evs[i] = timelineEvent{ev, base64.StdEncoding.EncodeToString(ev.Proof.Leaf)}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"subject": tl.Subject, "searched": tl.Searched, "origin": cp.Origin, "checkpoint": string(cp.Raw),
		"size": cp.Size, "root": hex.EncodeToString(cp.Root[:]), "index_size": tl.IndexSize, "unindexed": tl.Unindexed,
		"events": evs, "completeness": history.Completeness,
	})
}

// ledgerError answers an error reading the verified log: the caller's
// rights (a gRPC status), a log that does not verify, or a read failure.
func ledgerError(w http.ResponseWriter, err error) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		switch c := se.GRPCStatus().Code(); c {
		case codes.Unauthenticated, codes.PermissionDenied:
			writeError(w, map[codes.Code]int{codes.Unauthenticated: http.StatusUnauthorized, codes.PermissionDenied: http.StatusForbidden}[c],
				"%s: a timeline reads the payload of every entry, so it needs the reader role on every source: %v", c, err)
			return
		}
	}
	if ledger.IsVerification(err) {
		writeError(w, http.StatusBadGateway, "the log does not verify: %v", err)
		return
	}
	writeError(w, http.StatusBadGateway, "reading the log: %v", err)
}
