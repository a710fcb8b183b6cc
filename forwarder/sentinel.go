package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/stele-dev/stele/internal/jsonappend"
)

// SentinelAPIVersion is the Logs Ingestion API version the sink calls.
const SentinelAPIVersion = "2023-01-01"

// SentinelConfig configures the Microsoft Sentinel / Azure Monitor Logs
// Ingestion API sink: rows are POSTed as a JSON array to
// {endpoint}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version=2023-01-01
// with an Entra token got by client credentials (azidentity), in calls of
// at most 1 MB. Each row is
//
//	{"TimeGenerated", "SteleOrigin", "SteleIndex", "LeafHash", "Source",
//	 "EventId", "Kind", "EventTime", "RecordType", "SteleRecord": <record document>}
//
// matching deploy/sentinel/dcr.json and table.json.
type SentinelConfig struct {
	// Endpoint is the data collection endpoint's (or DCR's) logs
	// ingestion URL.
	Endpoint       string `json:"endpoint"`
	DCRImmutableID string `json:"dcr_immutable_id"`
	// Stream is the DCR's input stream (default "Custom-SteleRecords").
	Stream           string `json:"stream,omitempty"`
	TenantID         string `json:"tenant_id"`
	ClientID         string `json:"client_id"`
	ClientSecretFile string `json:"client_secret_file"`
	// AuthorityHost is Entra's login host (default
	// https://login.microsoftonline.com/; sovereign clouds differ).
	AuthorityHost string `json:"authority_host,omitempty"`
	// Scope of the token (default https://monitor.azure.com//.default).
	Scope string     `json:"scope,omitempty"`
	TLS   *TLSConfig `json:"tls,omitempty"`
	// MaxBatchBytes bounds a call's body (default and maximum 1,000,000:
	// the API's 1 MB limit).
	MaxBatchBytes int      `json:"max_batch_bytes,omitempty"`
	Timeout       Duration `json:"timeout,omitempty"`
}

const (
	sentinelMaxCall  = 1_000_000
	defaultAuthority = "https://login.microsoftonline.com/"
)

func (c *SentinelConfig) validate() error {
	if err := checkURL(c.Endpoint); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if c.DCRImmutableID == "" || c.TenantID == "" || c.ClientID == "" || c.ClientSecretFile == "" {
		return errors.New("dcr_immutable_id, tenant_id, client_id and client_secret_file are required")
	}
	if c.Stream == "" {
		c.Stream = "Custom-SteleRecords"
	}
	if c.AuthorityHost == "" {
		c.AuthorityHost = defaultAuthority
	}
	if c.Scope == "" {
		c.Scope = "https://monitor.azure.com//.default"
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = sentinelMaxCall
	}
	if c.MaxBatchBytes > sentinelMaxCall {
		return fmt.Errorf("max_batch_bytes %d is over the API's 1 MB call limit", c.MaxBatchBytes)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(time.Minute)
	}
	return c.TLS.validate()
}

// SentinelSink sends rows to the Logs Ingestion API.
type SentinelSink struct {
	cfg  SentinelConfig
	hc   *http.Client
	cred azcore.TokenCredential
	url  string
}

func openSentinel(_ string, settings any, _ SinkEnv) (Sink, error) {
	return OpenSentinel(*settings.(*SentinelConfig))
}

// OpenSentinel reads the client secret and prepares the credential.
func OpenSentinel(cfg SentinelConfig) (*SentinelSink, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sentinel sink: %w", err)
	}
	secret, err := readSecret(cfg.ClientSecretFile, "sentinel sink: client_secret_file")
	if err != nil {
		return nil, err
	}
	hc, err := newHTTPClient(cfg.TLS, time.Duration(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("sentinel sink: %w", err)
	}
	cred, err := azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: cfg.AuthorityHost}, Transport: hc},
		// Instance discovery asks login.microsoftonline.com about the
		// authority: right for Azure's clouds, not for a private one.
		DisableInstanceDiscovery: cfg.AuthorityHost != defaultAuthority,
	})
	if err != nil {
		return nil, fmt.Errorf("sentinel sink: %w", err)
	}
	u := strings.TrimSuffix(cfg.Endpoint, "/") + "/dataCollectionRules/" + url.PathEscape(cfg.DCRImmutableID) +
		"/streams/" + url.PathEscape(cfg.Stream) + "?api-version=" + SentinelAPIVersion
	return &SentinelSink{cfg: cfg, hc: hc, cred: cred, url: u}, nil
}

// Idempotent: no; the API has no row id, a resent call adds rows.
func (s *SentinelSink) Idempotent() bool { return false }

// SentinelRow is one row of the stream.
type SentinelRow struct {
	TimeGenerated string          `json:"TimeGenerated"`
	SteleOrigin   string          `json:"SteleOrigin"`
	SteleIndex    uint64          `json:"SteleIndex"`
	LeafHash      string          `json:"LeafHash"`
	Source        string          `json:"Source"`
	EventID       string          `json:"EventId"`
	Kind          string          `json:"Kind"`
	EventTime     string          `json:"EventTime"`
	RecordType    string          `json:"RecordType"`
	SteleRecord   json.RawMessage `json:"SteleRecord"`
}

// row encodes an item's row: the bytes json.Marshal gives for its
// SentinelRow (HTML characters escaped, the document compacted), appended
// in one pass (TestSentinelRowEncoding compares them).
func row(it *Item) []byte {
	d := it.Doc
	b := make([]byte, 0, 384+len(it.JSON)+len(it.JSON)/32)
	for _, f := range [...]struct{ k, v string }{{`{"TimeGenerated":`, d.AdmittedTime}, {`,"SteleOrigin":`, d.Origin}} {
		b = append(b, f.k...)
		b = jsonappend.String(b, f.v, true)
	}
	b = append(b, `,"SteleIndex":`...)
	b = strconv.AppendUint(b, d.Index, 10)
	for _, f := range [...]struct{ k, v string }{{`,"LeafHash":`, d.LeafHash}, {`,"Source":`, d.Source}, {`,"EventId":`, d.EventID},
		{`,"Kind":`, d.Kind}, {`,"EventTime":`, d.EventTime}, {`,"RecordType":`, d.Type}} {
		b = append(b, f.k...)
		b = jsonappend.String(b, f.v, true)
	}
	b = append(b, `,"SteleRecord":`...)
	if len(it.JSON) == 0 {
		b = append(b, "null"...)
	} else {
		b = jsonappend.Compact(b, it.JSON, true)
	}
	return append(b, '}')
}

// Deliver sends the rows in calls of at most MaxBatchBytes, httpParallel
// at a time; a row alone over the limit is refused for good.
func (s *SentinelSink) Deliver(ctx context.Context, items []*Item) error {
	rows := make(map[*Item][]byte, len(items))
	var ie ItemErrors
	var ok []*Item
	var pos []int
	for i, it := range items {
		r := row(it)
		if len(r)+2 > s.cfg.MaxBatchBytes {
			if ie.Refused == nil {
				ie.Refused = map[int]error{}
			}
			ie.Refused[i] = fmt.Errorf("sentinel: a row of %d bytes is over the 1 MB call limit", len(r))
			continue
		}
		rows[it] = r
		ok = append(ok, it)
		pos = append(pos, i)
	}
	cs := chunks(ok, s.cfg.MaxBatchBytes-2, func(it *Item) int { return len(rows[it]) + 1 })
	sub := sendChunks(ctx, cs, httpParallel, func(ctx context.Context, part []*Item) error { return s.post(ctx, part, rows) })
	if ie.Refused == nil {
		return sub.result(len(ok))
	}
	for i, e := range sub.Refused {
		ie.Refused[pos[i]] = e
	}
	for i, e := range sub.Retry {
		if ie.Retry == nil {
			ie.Retry = map[int]error{}
		}
		ie.Retry[pos[i]] = e
	}
	ie.After = sub.After
	return &ie
}

func (s *SentinelSink) post(ctx context.Context, items []*Item, rows map[*Item][]byte) error {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.cfg.Scope}})
	if err != nil {
		return fmt.Errorf("sentinel: getting a token (client credentials): %w", err)
	}
	var body bytes.Buffer
	n := 2
	for _, it := range items {
		n += len(rows[it]) + 1
	}
	body.Grow(n)
	body.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(rows[it])
	}
	body.WriteByte(']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("sentinel: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("sentinel: %w", httpError(resp))
	}
	return nil
}

// Close releases idle connections.
func (s *SentinelSink) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}
