package collector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// This file holds what the polling sources (Microsoft Graph, Okta) share:
// their HTTP client, how long to wait when the provider says "slow down",
// and the size limit on a page.

// maxPageBytes bounds one page of a provider's answer: a Graph page of 1000
// sign-ins or an Okta page of 1000 events is a few MiB.
const maxPageBytes = 256 << 20

// httpClient is the HTTP client of a polling source: the system roots, or
// only the CA in tlsCA (test servers); a request deadline of timeout.
func httpClient(tlsCA string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	if tlsCA != "" {
		pem, err := os.ReadFile(tlsCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca %s holds no PEM certificate", tlsCA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// checkHTTPS checks a configured base URL: absolute https, no query.
func checkHTTPS(what, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%s %q: give an https:// URL (the credentials are sent to it)", what, s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q: give the base URL, without a query", what, s)
	}
	return u, nil
}

// sameOrigin tells whether next (a link the provider returned) points at
// the same scheme and host as base: a bearer token is never sent anywhere
// else, whatever a page says.
func sameOrigin(base *url.URL, next string) (*url.URL, error) {
	u, err := url.Parse(next)
	if err != nil {
		return nil, fmt.Errorf("next link %q: %w", next, err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) {
		return nil, fmt.Errorf("next link %q leaves %s://%s: not followed", next, base.Scheme, base.Host)
	}
	return u, nil
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); ok is
// false when there is none or it cannot be read.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(min(s, 3600)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), time.Hour), true
	}
	return 0, false
}

// readBody reads a response body up to maxPageBytes.
func readBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPageBytes {
		return nil, errors.New("the page is over 256 MiB: ask for smaller pages (limit/top)")
	}
	return b, nil
}

// httpError is an answer other than 200, with the provider's message.
type httpError struct {
	Status int
	Body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// newHTTPError reads a little of the body for the message.
func newHTTPError(resp *http.Response) *httpError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return &httpError{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
}

// throttledStatus tells an answer that means "slow down, then ask again":
// 429, and the 503 and 504 of a busy service.
func throttledStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}
