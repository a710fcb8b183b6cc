package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/transparency-dev/tessera/api/layout"
)

// maxResource bounds a tile or entry bundle the audit reads: the largest
// entry bundle (256 entries of 2+65535 bytes). A tile is at most 8 KiB.
const maxResource = layout.EntryBundleWidth * (2 + 65535)

// reader fetches level-0 tiles and entry bundles into buffers its caller
// reuses, so that reading a log allocates next to nothing per resource.
// Like Tessera's client.HTTPFetcher (which the audit uses for the
// checkpoint and consistency proofs), a partial resource that is gone
// (404) is read from the full one instead.
type reader struct {
	root *url.URL
	hc   *http.Client
}

// tile reads tile (level, index) of width p (0: full) into buf.
func (r *reader) tile(ctx context.Context, level, index uint64, p uint8, buf []byte) ([]byte, error) {
	return r.partialOrFull(ctx, p, buf, func(p uint8) string { return layout.TilePath(level, index, p) })
}

// bundle reads entry bundle index of width p (0: full) into buf.
func (r *reader) bundle(ctx context.Context, index uint64, p uint8, buf []byte) ([]byte, error) {
	return r.partialOrFull(ctx, p, buf, func(p uint8) string { return layout.EntriesPath(index, p) })
}

func (r *reader) partialOrFull(ctx context.Context, p uint8, buf []byte, path func(uint8) string) ([]byte, error) {
	b, err := r.get(ctx, path(p), buf)
	switch {
	case errors.Is(err, os.ErrNotExist) && p == 0:
		return nil, fmt.Errorf("resource not found: %w", err)
	case errors.Is(err, os.ErrNotExist):
		// The partial resource was removed once the tree grew past it:
		// the full one holds it.
		if b, err = r.get(ctx, path(0), buf); err != nil {
			return nil, fmt.Errorf("neither partial nor full resource found: %w", err)
		}
		return b, nil
	case err != nil:
		return nil, fmt.Errorf("failed to fetch resource: %v", err)
	}
	return b, nil
}

// get fetches p under the root into buf (reusing its capacity). A 404
// wraps os.ErrNotExist.
func (r *reader) get(ctx context.Context, p string, buf []byte) ([]byte, error) {
	pu, err := r.root.Parse(p)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %v", err)
	}
	u := pu.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("get(%q): %v", u, err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get(%q): %v", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("get(%q): %w", u, os.ErrNotExist)
	default:
		return nil, fmt.Errorf("get(%q): %v", u, resp.StatusCode)
	}
	b, err := readInto(buf[:0], resp.Body, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("get(%q): %v", u, err)
	}
	return b, nil
}

// readInto appends the whole of body to b, growing b at most once when
// the length is known (n >= 0) and refusing more than maxResource bytes.
func readInto(b []byte, body io.Reader, n int64) ([]byte, error) {
	if n > maxResource {
		return nil, fmt.Errorf("%d bytes, more than any tile or entry bundle (%d)", n, maxResource)
	}
	if n >= 0 && int64(cap(b)-len(b)) < n+1 {
		b = append(make([]byte, 0, int64(len(b))+n+1), b...)
	}
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if len(b) > maxResource {
			return nil, fmt.Errorf("more than any tile or entry bundle (%d bytes)", maxResource)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
