package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// httpParallel is how many requests of one batch the Splunk and Sentinel
// sinks have in flight (Elasticsearch sends its requests in turn).
const httpParallel = 4

// newHTTPClient returns the client the HTTP sinks share the settings of.
func newHTTPClient(tc *TLSConfig, timeout time.Duration) (*http.Client, error) {
	cfg, err := tc.build()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.MaxIdleConnsPerHost = 8
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// closeBody reads what is left of a response body (up to 64 KiB) before
// closing it: a connection goes back to the keep-alive pool only once its
// body was read to the end, else every request dials (and handshakes
// TLS) again.
func closeBody(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// statusError is an HTTP answer that is not a success.
type statusError struct {
	status int
	body   string
	after  time.Duration
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
	if e.body != "" {
		msg += ": " + e.body
	}
	switch e.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check the sink's credentials)"
	}
	return msg
}

// httpError turns a non-2xx response into an error the forwarder acts on:
// 429 and 503 carry their Retry-After hint; 413, and any other 4xx but
// 401, 403, 404 and 408, refuse the batch (deliverHalving then finds the
// record at fault); the rest are transient.
func httpError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &statusError{status: resp.StatusCode, body: strings.TrimSpace(string(b)), after: retryAfterHeader(resp.Header.Get("Retry-After"))}
	if e.after > 0 {
		return RetryAfter(e.after, e)
	}
	return e
}

// retryAfterHeader parses Retry-After: delay-seconds or an HTTP date.
func retryAfterHeader(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// refusesBatch reports whether err says the request itself was refused
// for its content (too large, malformed): retrying the same bytes cannot
// succeed.
func refusesBatch(err error) bool {
	if IsPermanent(err) {
		return true
	}
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return se.status >= 400 && se.status < 500
}

// deliverHalving sends items with send; when the request is refused for
// its content, it halves the batch until the records at fault are alone,
// and refuses those for good. It returns nil, an *ItemErrors over items,
// or a transient error for all of them.
func deliverHalving(ctx context.Context, items []*Item, send func(context.Context, []*Item) error) error {
	outcome := make([]error, len(items)) // nil: delivered
	retry := make([]bool, len(items))
	var after time.Duration
	var rec func(lo, hi int) error
	rec = func(lo, hi int) error {
		err := send(ctx, items[lo:hi])
		if err == nil {
			return nil
		}
		var ie *ItemErrors
		if errors.As(err, &ie) {
			for i, e := range ie.Refused {
				outcome[lo+i] = e
			}
			for i, e := range ie.Retry {
				outcome[lo+i], retry[lo+i] = e, true
			}
			after = max(after, ie.After)
			return nil
		}
		if refusesBatch(err) {
			if hi-lo == 1 {
				outcome[lo] = err
				return nil
			}
			mid := (lo + hi) / 2
			if err := rec(lo, mid); err != nil {
				return err
			}
			return rec(mid, hi)
		}
		for i := lo; i < hi; i++ {
			outcome[i], retry[i] = err, true
		}
		after = max(after, retryHint(err))
		return nil
	}
	if err := rec(0, len(items)); err != nil {
		return err
	}
	var ie ItemErrors
	all := true
	for i, e := range outcome {
		switch {
		case e == nil:
			all = false
		case retry[i]:
			if ie.Retry == nil {
				ie.Retry = map[int]error{}
			}
			ie.Retry[i] = e
		default:
			all = false
			if ie.Refused == nil {
				ie.Refused = map[int]error{}
			}
			ie.Refused[i] = e
		}
	}
	if ie.Refused == nil && ie.Retry == nil {
		return nil
	}
	if all {
		// Nothing got through: one transient error for the batch.
		for _, e := range ie.Retry {
			if after > 0 {
				return RetryAfter(after, e)
			}
			return e
		}
	}
	ie.After = after
	return &ie
}

// chunks splits items into runs whose encoded size (per size) stays under
// limit; a single item over the limit is alone in its run.
func chunks(items []*Item, limit int, size func(*Item) int) [][]*Item {
	var out [][]*Item
	start, n := 0, 0
	for i, it := range items {
		s := size(it)
		if i > start && n+s > limit {
			out = append(out, items[start:i])
			start, n = i, 0
		}
		n += s
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

// sendChunks sends the chunks with deliverHalving(send), up to parallel
// requests at once, and gathers their outcomes by position in the
// concatenation of the chunks. Concurrent requests hide the sink's
// round trip (and, for HEC with acknowledgement, the wait for the
// indexers); a sink whose requests must apply in order passes 1.
func sendChunks(ctx context.Context, cs [][]*Item, parallel int, send func(context.Context, []*Item) error) *ItemErrors {
	var (
		ie  ItemErrors
		mu  sync.Mutex
		wg  sync.WaitGroup
		off int
	)
	sem := make(chan struct{}, max(1, parallel))
	for _, c := range cs {
		at := off
		off += len(c)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := deliverHalving(ctx, c, send); err != nil {
				mu.Lock()
				mergeItemErrors(&ie, err, at, len(c))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return &ie
}
