package forwarder

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stele-dev/stele/internal/jsonappend"
)

// ElasticConfig configures the Elasticsearch / OpenSearch sink: records
// are indexed with the _bulk API, each as a document whose _id is
// "<origin>/<index>", so a record sent twice is one document. An erasure
// event is indexed and also deletes the erased entry's document (the
// erasure notice: the payload the index held is gone).
type ElasticConfig struct {
	// URL is the cluster's base URL.
	URL string `json:"url"`
	// Index is the target index (or data stream alias).
	Index string     `json:"index"`
	TLS   *TLSConfig `json:"tls,omitempty"`
	// APIKeyFile holds an API key ("Authorization: ApiKey <key>"); or
	// Username with PasswordFile for basic authentication.
	APIKeyFile   string `json:"api_key_file,omitempty"`
	Username     string `json:"username,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	// MaxBatchBytes bounds a _bulk body (default 5 MiB).
	MaxBatchBytes int      `json:"max_batch_bytes,omitempty"`
	Timeout       Duration `json:"timeout,omitempty"`
}

func (c *ElasticConfig) validate() error {
	if err := checkURL(c.URL); err != nil {
		return err
	}
	if c.Index == "" {
		return errors.New("index is required")
	}
	if c.APIKeyFile != "" && c.Username != "" {
		return errors.New("api_key_file or username/password_file, not both")
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		return errors.New("username needs password_file")
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 5 << 20
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(time.Minute)
	}
	return c.TLS.validate()
}

// ElasticSink writes with _bulk.
type ElasticSink struct {
	cfg ElasticConfig
	// indexAction and deleteAction start an action line, up to its _id.
	indexAction, deleteAction []byte
	hc                        *http.Client
	auth                      string
}

func openElastic(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenElastic(*settings.(*ElasticConfig))
}

// OpenElastic reads the credentials and prepares the client.
func OpenElastic(cfg ElasticConfig) (*ElasticSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("elasticsearch sink: %w", err)
	}
	s := &ElasticSink{cfg: cfg}
	idx, _ := json.Marshal(cfg.Index)
	s.indexAction = fmt.Appendf(nil, `{"index":{"_index":%s,"_id":`, idx)
	s.deleteAction = fmt.Appendf(nil, `{"delete":{"_index":%s,"_id":`, idx)
	switch {
	case cfg.APIKeyFile != "":
		k, err := readSecret(cfg.APIKeyFile, "elasticsearch sink: api_key_file")
		if err != nil {
			return nil, err
		}
		s.auth = "ApiKey " + k
	case cfg.Username != "":
		p, err := readSecret(cfg.PasswordFile, "elasticsearch sink: password_file")
		if err != nil {
			return nil, err
		}
		s.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+p))
	}
	hc, err := newHTTPClient(cfg.TLS, time.Duration(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch sink: %w", err)
	}
	s.hc = hc
	return s, nil
}

// DocID is the _id of an entry's document.
func DocID(origin string, index uint64) string { return origin + "/" + strconv.FormatUint(index, 10) }

// Idempotent: yes, the _id names the entry.
func (s *ElasticSink) Idempotent() bool { return true }

// actions renders an item's _bulk lines: an index action, and for an
// erasure event a delete of the erased entry's document.
func (s *ElasticSink) actions(it *Item) (body []byte, n int) {
	b := make([]byte, 0, len(s.indexAction)+len(it.Doc.Origin)+32+len(it.JSON)+1)
	b = append(b, s.indexAction...)
	b = jsonappend.String(b, DocID(it.Doc.Origin, it.Doc.Index), true)
	b = append(b, "}}\n"...)
	b = append(b, it.JSON...)
	b = append(b, '\n')
	n = 1
	if e := it.Doc.Erasure; e != nil && it.Doc.Type == "event" {
		b = append(b, s.deleteAction...)
		b = jsonappend.String(b, DocID(it.Doc.Origin, e.ErasedIndex), true)
		b = append(b, "}}\n"...)
		n = 2
	}
	return b, n
}

// Deliver sends _bulk requests of at most MaxBatchBytes and reads each
// item's status: 429 and 5xx are retried, other failures refuse the
// record for good; a delete of a document already gone (404) is fine.
func (s *ElasticSink) Deliver(ctx context.Context, items []*Item) error {
	bodies := make(map[*Item][]byte, len(items))
	counts := make(map[*Item]int, len(items))
	for _, it := range items {
		bodies[it], counts[it] = s.actions(it)
	}
	// One request at a time: an erasure notice's delete must reach the
	// index after the erased record's own index action.
	cs := chunks(items, s.cfg.MaxBatchBytes, func(it *Item) int { return len(bodies[it]) })
	ie := sendChunks(ctx, cs, 1, func(ctx context.Context, part []*Item) error { return s.bulk(ctx, part, bodies, counts) })
	return ie.result(len(items))
}

type bulkResponse struct {
	Errors bool                         `json:"errors"`
	Items  []map[string]bulkItemOutcome `json:"items"`
}

type bulkItemOutcome struct {
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

func (s *ElasticSink) bulk(ctx context.Context, items []*Item, bodies map[*Item][]byte, counts map[*Item]int) error {
	var body bytes.Buffer
	total, n := 0, 0
	for _, it := range items {
		n += len(bodies[it])
	}
	body.Grow(n)
	for _, it := range items {
		body.Write(bodies[it])
		total += counts[it]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.cfg.URL, "/")+"/_bulk", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if s.auth != "" {
		req.Header.Set("Authorization", s.auth)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("elasticsearch: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("elasticsearch: _bulk: %w", httpError(resp))
	}
	var br bulkResponse
	if err := json.NewDecoder(resp.Body).Decode(&br); err != nil {
		return fmt.Errorf("elasticsearch: _bulk answer: %v", err)
	}
	if len(br.Items) != total {
		return fmt.Errorf("elasticsearch: _bulk answered %d items for %d actions", len(br.Items), total)
	}
	if !br.Errors {
		return nil
	}
	var ie ItemErrors
	a := 0
	for i, it := range items {
		for k := 0; k < counts[it]; k++ {
			for op, o := range br.Items[a] {
				ok := o.Status/100 == 2 || (op == "delete" && o.Status == http.StatusNotFound)
				if ok {
					continue
				}
				e := fmt.Errorf("elasticsearch: %s %s: status %d: %s", op, o.ID, o.Status, o.Error)
				if o.Status == http.StatusTooManyRequests || o.Status >= 500 {
					if ie.Retry == nil {
						ie.Retry = map[int]error{}
					}
					ie.Retry[i] = e
				} else if _, r := ie.Retry[i]; !r {
					if ie.Refused == nil {
						ie.Refused = map[int]error{}
					}
					ie.Refused[i] = e
				}
			}
			a++
		}
	}
	if ie.Refused == nil && ie.Retry == nil {
		return nil
	}
	return &ie
}

// Close releases idle connections.
func (s *ElasticSink) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}
