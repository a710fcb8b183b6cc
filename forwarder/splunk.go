package forwarder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SplunkConfig configures the Splunk HTTP Event Collector sink: records
// are POSTed in batches to <url>/services/collector/event, one HEC event
// object per record ({"time", "host", "source", "sourcetype", "index",
// "event": <record document>}), with "Authorization: Splunk <token>".
// With ack, each batch is confirmed only once HEC's indexer
// acknowledgement (/services/collector/ack) reports it indexed.
type SplunkConfig struct {
	// URL is HEC's base URL, e.g. https://splunk.example.com:8088.
	URL       string     `json:"url"`
	TokenFile string     `json:"token_file"`
	TLS       *TLSConfig `json:"tls,omitempty"`
	Index     string     `json:"index,omitempty"`
	// Source and SourceType of the events (defaults "stele" and
	// "stele:record").
	Source     string `json:"source,omitempty"`
	SourceType string `json:"sourcetype,omitempty"`
	Host       string `json:"host,omitempty"`
	// Ack enables indexer acknowledgement (the token must have it on).
	Ack bool `json:"ack,omitempty"`
	// AckTimeout is how long to wait for a batch's acknowledgement before
	// sending it again (default 2m).
	AckTimeout Duration `json:"ack_timeout,omitempty"`
	// MaxBatchBytes bounds a request's body (default 1 MiB; HEC's
	// max_content_length must be at least this).
	MaxBatchBytes int `json:"max_batch_bytes,omitempty"`
	// Timeout bounds one request (default 30s).
	Timeout Duration `json:"timeout,omitempty"`
}

func (c *SplunkConfig) validate() error {
	if err := checkURL(c.URL); err != nil {
		return err
	}
	if c.TokenFile == "" {
		return errors.New("token_file is required")
	}
	if c.Source == "" {
		c.Source = "stele"
	}
	if c.SourceType == "" {
		c.SourceType = "stele:record"
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = Duration(2 * time.Minute)
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 1 << 20
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(30 * time.Second)
	}
	return c.TLS.validate()
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q: want https://host[:port]", s)
	}
	return nil
}

// SplunkSink sends to HEC.
type SplunkSink struct {
	cfg     SplunkConfig
	meta    []byte // the event members after "time", the same for every event
	hc      *http.Client
	token   string
	channel string
}

func openSplunk(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenSplunk(*settings.(*SplunkConfig))
}

// OpenSplunk reads the token and prepares the client.
func OpenSplunk(cfg SplunkConfig) (*SplunkSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("splunk sink: %w", err)
	}
	tok, err := readSecret(cfg.TokenFile, "splunk sink: token_file")
	if err != nil {
		return nil, err
	}
	hc, err := newHTTPClient(cfg.TLS, time.Duration(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("splunk sink: %w", err)
	}
	var meta bytes.Buffer
	for _, kv := range [][2]string{{"host", cfg.Host}, {"source", cfg.Source}, {"sourcetype", cfg.SourceType}, {"index", cfg.Index}} {
		if kv[1] != "" {
			v, _ := json.Marshal(kv[1])
			fmt.Fprintf(&meta, `,%q:%s`, kv[0], v)
		}
	}
	return &SplunkSink{cfg: cfg, meta: meta.Bytes(), hc: hc, token: tok, channel: uuid4()}, nil
}

func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Idempotent: no; HEC has no event id, a resent batch is indexed twice.
func (s *SplunkSink) Idempotent() bool { return false }

func (s *SplunkSink) event(it *Item) []byte {
	t, _ := time.Parse(time.RFC3339Nano, it.Doc.AdmittedTime)
	b := make([]byte, 0, 32+len(s.meta)+10+len(it.JSON)+1)
	b = append(b, `{"time":`...)
	b = strconv.AppendInt(b, t.Unix(), 10)
	us := t.Nanosecond() / 1000
	b = append(b, '.', byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10), byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10))
	b = append(b, s.meta...)
	b = append(b, `,"event":`...)
	b = append(b, it.JSON...)
	return append(b, '}')
}

// Deliver sends the batch in requests of at most MaxBatchBytes,
// httpParallel at a time (each waits for its own acknowledgement).
func (s *SplunkSink) Deliver(ctx context.Context, items []*Item) error {
	evs := make(map[*Item][]byte, len(items))
	for _, it := range items {
		evs[it] = s.event(it)
	}
	cs := chunks(items, s.cfg.MaxBatchBytes, func(it *Item) int { return len(evs[it]) })
	ie := sendChunks(ctx, cs, httpParallel, func(ctx context.Context, part []*Item) error { return s.post(ctx, part, evs) })
	return ie.result(len(items))
}

// mergeItemErrors adds err's outcome for the n items at off into ie: an
// *ItemErrors is shifted by off, any other error makes all n retried.
func mergeItemErrors(ie *ItemErrors, err error, off, n int) {
	var e *ItemErrors
	if !errors.As(err, &e) {
		e = &ItemErrors{Retry: make(map[int]error, n), After: retryHint(err)}
		for i := range n {
			e.Retry[i] = err
		}
	}
	for i, x := range e.Refused {
		if ie.Refused == nil {
			ie.Refused = map[int]error{}
		}
		ie.Refused[off+i] = x
	}
	for i, x := range e.Retry {
		if ie.Retry == nil {
			ie.Retry = map[int]error{}
		}
		ie.Retry[off+i] = x
	}
	ie.After = max(ie.After, e.After)
}

// result is the outcome of a batch of n items: nil when all were
// delivered, one error when all are to be retried, else ie.
func (ie *ItemErrors) result(n int) error {
	switch {
	case ie.Refused == nil && ie.Retry == nil:
		return nil
	case ie.Refused == nil && len(ie.Retry) == n:
		for _, e := range ie.Retry {
			if ie.After > 0 {
				return RetryAfter(ie.After, e)
			}
			return e
		}
	}
	return ie
}

// hecResponse is HEC's answer body.
type hecResponse struct {
	Text               string `json:"text"`
	Code               int    `json:"code"`
	AckID              *int64 `json:"ackId"`
	InvalidEventNumber *int   `json:"invalid-event-number"`
}

func (s *SplunkSink) post(ctx context.Context, items []*Item, evs map[*Item][]byte) error {
	var body bytes.Buffer
	n := 0
	for _, it := range items {
		n += len(evs[it])
	}
	body.Grow(n)
	for _, it := range items {
		body.Write(evs[it])
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.cfg.URL, "/")+"/services/collector/event", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Splunk "+s.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Splunk-Request-Channel", s.channel)
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("splunk: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return s.hecError(resp.StatusCode, httpError(resp), items)
	}
	var hr hecResponse
	if err := json.NewDecoder(resp.Body).Decode(&hr); err != nil || hr.Code != 0 {
		return fmt.Errorf("splunk: HEC answered 200 without success (%v, code %d %q)", err, hr.Code, hr.Text)
	}
	if !s.cfg.Ack {
		return nil
	}
	if hr.AckID == nil {
		return Permanent(errors.New("splunk: ack is configured but HEC returned no ackId: turn indexer acknowledgement on for the token, or ack off"))
	}
	return s.waitAck(ctx, *hr.AckID)
}

// hecError maps HEC's error codes (Splunk docs, "HTTP Event Collector
// error codes"): 6 "Invalid data format" with invalid-event-number refuses
// that event (the ones before it were indexed, the ones after it were
// not); 5, 12, 13 and 15 refuse the request's content; 8 (internal error)
// and 9 (server busy) are transient; token, index and channel problems
// (1-4, 7, 10, 11, 14, 16) are configuration errors, retried until fixed.
func (s *SplunkSink) hecError(status int, herr error, items []*Item) error {
	var se *statusError
	errors.As(herr, &se)
	var hr hecResponse
	if se != nil {
		json.Unmarshal([]byte(se.body), &hr)
	}
	msg := fmt.Errorf("splunk: HEC code %d %q: %w", hr.Code, hr.Text, herr)
	switch hr.Code {
	case 6:
		if n := hr.InvalidEventNumber; n != nil && *n >= 0 && *n < len(items) {
			ie := &ItemErrors{Refused: map[int]error{*n: msg}}
			for i := *n + 1; i < len(items); i++ {
				if ie.Retry == nil {
					ie.Retry = map[int]error{}
				}
				ie.Retry[i] = errors.New("splunk: not indexed: after an invalid event in its request")
			}
			return ie
		}
		return Permanent(msg)
	case 5, 12, 13, 15:
		return Permanent(msg)
	case 8, 9:
		if d := retryHint(herr); d > 0 {
			return RetryAfter(d, msg)
		}
		return msg
	}
	if status == http.StatusRequestEntityTooLarge {
		return Permanent(msg)
	}
	return fmt.Errorf("%w (a configuration error: fix it and the forwarder resumes)", msg)
}

// waitAck polls /services/collector/ack until HEC reports the batch
// indexed.
func (s *SplunkSink) waitAck(ctx context.Context, id int64) error {
	deadline := time.Now().Add(time.Duration(s.cfg.AckTimeout))
	wait := 100 * time.Millisecond
	for {
		ok, err := s.queryAck(ctx, id)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("splunk: ack %d not confirmed within %s: sending the batch again", id, time.Duration(s.cfg.AckTimeout))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func (s *SplunkSink) queryAck(ctx context.Context, id int64) (bool, error) {
	body, _ := json.Marshal(map[string][]int64{"acks": {id}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.cfg.URL, "/")+"/services/collector/ack", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Splunk "+s.token)
	req.Header.Set("X-Splunk-Request-Channel", s.channel)
	resp, err := s.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("splunk: ack: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("splunk: ack: %w", httpError(resp))
	}
	var ar struct {
		Acks map[string]bool `json:"acks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		return false, fmt.Errorf("splunk: ack answer: %v", err)
	}
	return ar.Acks[fmt.Sprint(id)], nil
}

// Close releases idle connections.
func (s *SplunkSink) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}
