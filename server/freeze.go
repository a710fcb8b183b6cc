package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
)

// Freezing a log (docs/operations.md, "Rotating to a new log"): the final
// checkpoint is the log's ordinary checkpoint, published once every
// sequenced entry is integrated and cosigned by the witness policy's
// quorum; the freeze statement (client.Freeze), signed by the log key,
// names that tree and the successor log. It is stored beside the
// checkpoint (posix: <data-dir>/log/frozen; aws: <prefix>/frozen in the
// bucket), so whatever serves the log's tiles serves it too, and a server
// that finds it opens the log read-only: a frozen log takes no more
// entries, across restarts.

// Successor names the log that continues a frozen one.
type Successor struct {
	// Key is the successor's signed-note verifier key; its name is the
	// successor's origin.
	Key string
	// URL is where the successor's tlog-tiles API is served (optional).
	URL string
}

// readFreeze reads and verifies the stored freeze statement; nil when the
// log is not frozen.
func (s *Server) readFreeze(ctx context.Context) (*client.Freeze, error) {
	raw, err := s.st.ReadObject(ctx, client.FreezePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the freeze statement: %w", err)
	}
	f, err := client.ParseFreeze(raw, s.key.Verifier)
	if err != nil {
		return nil, fmt.Errorf("the log's freeze statement: %w", err)
	}
	return f, nil
}

// writeFreeze stores the signed freeze statement durably.
func (s *Server) writeFreeze(ctx context.Context, raw []byte) error {
	if err := s.st.WriteObject(ctx, client.FreezePath, raw); err != nil {
		return fmt.Errorf("writing the freeze statement: %w", err)
	}
	return nil
}

// Freeze opens the log in cfg, waits (bounded by ctx) until a published
// checkpoint covers every entry the log holds and meets the witness policy,
// signs and stores the freeze statement naming that checkpoint's tree and
// succ, and closes the log. Run it with every other server of the log
// stopped: it is the last writer. Freezing a log that is already frozen
// returns its statement unchanged when it names the same successor, and
// an error otherwise.
func Freeze(ctx context.Context, cfg Config, succ Successor) (*client.Freeze, error) {
	if cfg.ReadOnly {
		return nil, errors.New("freeze: the log must be opened for writing, not read-only")
	}
	if succ.Key != "" {
		if _, err := note.NewVerifier(succ.Key); err != nil {
			return nil, fmt.Errorf("freeze: successor key %q is not a signed-note verifier key: %w", succ.Key, err)
		}
		cfg.SuccessorKey, cfg.SuccessorURL = succ.Key, succ.URL
	} else if succ.URL != "" {
		return nil, errors.New("freeze: a successor URL needs the successor's key (its name is the successor's origin)")
	}
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if s.frozen != nil {
		f := s.frozen
		cerr := s.Close(ctx)
		if f.SuccessorKey != succ.Key || f.SuccessorURL != succ.URL {
			return nil, fmt.Errorf("freeze: %v; it cannot be frozen again with another successor", f)
		}
		return f, cerr
	}
	if s.key.Signer == nil {
		s.Close(ctx)
		return nil, errors.New("freeze: the log key is needed to sign the freeze statement")
	}
	f, err := s.freeze(ctx, succ)
	if cerr := s.Close(ctx); err == nil && cerr != nil {
		err = cerr
	}
	return f, err
}

// freeze publishes the final checkpoint and the statement. Nothing can be
// appended meanwhile: Freeze serves no API.
func (s *Server) freeze(ctx context.Context, succ Successor) (*client.Freeze, error) {
	var final *published
	for {
		size, err := s.reader.IntegratedSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("freeze: reading the log size: %w", err)
		}
		next, err := s.reader.NextIndex(ctx)
		if err != nil {
			return nil, fmt.Errorf("freeze: reading the next index: %w", err)
		}
		cp := s.cps.latest()
		if next == size && cp != nil && cp.size == size && cp.unwitnessed == "" {
			final = cp
			break
		}
		select {
		case <-ctx.Done():
			why := "entries are not yet integrated"
			switch {
			case cp != nil && cp.size == size && cp.unwitnessed != "":
				why = "the final checkpoint is not cosigned: " + cp.unwitnessed
			case cp == nil || cp.size != size:
				why = fmt.Sprintf("no checkpoint covers the log's %d entries yet", size)
			}
			return nil, fmt.Errorf("freeze: the log was not frozen (%s): %w", why, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	f := &client.Freeze{Origin: s.cfg.Origin, Size: final.size, Root: [32]byte(final.root)}
	if succ.Key != "" {
		v, _ := note.NewVerifier(succ.Key)
		f.Successor, f.SuccessorKey, f.SuccessorURL = v.Name(), succ.Key, succ.URL
	}
	raw, err := client.SignFreeze(f, s.key.Signer)
	if err != nil {
		return nil, err
	}
	if err := s.writeFreeze(ctx, raw); err != nil {
		return nil, err
	}
	f.Raw = raw
	s.frozen = f
	s.log.Info("log frozen", "origin", f.Origin, "size", f.Size, "successor", f.Successor, "successor_url", f.SuccessorURL)
	return f, nil
}

// serveFreeze serves the freeze statement at /frozen (404 while the log is
// not frozen), for when the tiles are read from this server rather than
// straight from the bucket or a CDN.
func (s *Server) serveFreeze(w http.ResponseWriter, r *http.Request) {
	f := s.frozen
	if f == nil {
		http.Error(w, "this log is not frozen", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(f.Raw)
}
