package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/stele-dev/stele/internal/jsontime"
)

// Config is a collector's configuration file (strict JSON: an unknown key
// is an error, so a typo never silently falls back to a default). See
// docs/collector.md for a full example per source.
type Config struct {
	// Server is the stele-server the collector submits to.
	Server ServerConfig `json:"server"`
	// StateDir holds the durable cursors (one file per source).
	StateDir string `json:"state_dir"`
	// Listen is the address of /healthz, /metrics and /status
	// (default 127.0.0.1:9465; "-" disables it).
	Listen string `json:"listen,omitempty"`
	// DrainTimeout bounds how long SIGTERM waits for in-flight batches
	// (default 30s).
	DrainTimeout Duration `json:"drain_timeout,omitempty"`
	// Sources are the feeds to read, each with a unique name.
	Sources []SourceConfig `json:"sources"`
}

// ServerConfig says how to reach the log server.
type ServerConfig struct {
	// Address is host:port of the server's gRPC listener.
	Address string `json:"address"`
	// TLSCA, TLSCert and TLSKey are PEM files; any of them turns TLS on.
	TLSCA   string `json:"tls_ca,omitempty"`
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// TokenFile holds a bearer token (sent only over TLS).
	TokenFile string `json:"token_file,omitempty"`
	// Timeout bounds one Append call (default 30s).
	Timeout Duration `json:"timeout,omitempty"`
	// BatchEvents caps the events per Append call (default 500).
	BatchEvents int `json:"batch_events,omitempty"`
}

// SourceConfig is one source; exactly one of the typed sections is set.
type SourceConfig struct {
	// Name names the source in cursors, metrics and reports.
	Name string `json:"name"`
	// EntraStorage reads Entra diagnostic logs from a storage account.
	EntraStorage *StorageConfig `json:"entra_storage,omitempty"`
	// CloudTrail reads AWS CloudTrail log files from S3.
	CloudTrail *CloudTrailConfig `json:"cloudtrail_s3,omitempty"`
	// EventHub reads Entra diagnostic logs from an Event Hub (Kafka endpoint).
	EventHub *EventHubConfig `json:"entra_eventhub,omitempty"`
	// Graph polls Entra's activity logs through Microsoft Graph.
	Graph *GraphConfig `json:"entra_graph,omitempty"`
	// Okta polls an Okta org's System Log.
	Okta *OktaConfig `json:"okta_systemlog,omitempty"`
}

// kind names the section that is set.
func (s *SourceConfig) kind() (string, error) {
	var set []string
	if s.EntraStorage != nil {
		set = append(set, "entra_storage")
	}
	if s.CloudTrail != nil {
		set = append(set, "cloudtrail_s3")
	}
	if s.EventHub != nil {
		set = append(set, "entra_eventhub")
	}
	if s.Graph != nil {
		set = append(set, "entra_graph")
	}
	if s.Okta != nil {
		set = append(set, "okta_systemlog")
	}
	switch len(set) {
	case 0:
		return "", fmt.Errorf("source %q: give exactly one of entra_storage, entra_eventhub, entra_graph, okta_systemlog, cloudtrail_s3", s.Name)
	case 1:
		return set[0], nil
	}
	return "", fmt.Errorf("source %q: %s are all set; give one section per source", s.Name, strings.Join(set, ", "))
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration = jsontime.Duration

// sourceName is what a source may be called: it names a cursor file.
var sourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// LoadConfig reads and checks the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig reads and checks a configuration.
func ParseConfig(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, jsonError(b, err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the configuration object")
	}
	return &cfg, cfg.check()
}

// jsonError adds the line of a syntax or type error.
func jsonError(b []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(b)) {
		return err
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	return fmt.Errorf("line %d: %w", line, err)
}

func (c *Config) check() error {
	if c.Server.Address == "" {
		return errors.New("server.address is required (host:port of the stele-server gRPC listener)")
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		return errors.New("server.tls_cert and server.tls_key go together")
	}
	if c.StateDir == "" {
		return errors.New("state_dir is required (where the durable cursors live)")
	}
	if len(c.Sources) == 0 {
		return errors.New("sources is empty: configure at least one source")
	}
	seen := map[string]bool{}
	for i := range c.Sources {
		s := &c.Sources[i]
		if !sourceName.MatchString(s.Name) {
			return fmt.Errorf("sources[%d].name %q: use 1 to 64 lower-case letters, digits, '.', '_' or '-'", i, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("sources[%d].name %q is used twice: each source needs its own name (it names the cursor)", i, s.Name)
		}
		seen[s.Name] = true
		kind, err := s.kind()
		if err != nil {
			return err
		}
		switch kind {
		case "entra_storage":
			err = s.EntraStorage.check()
		case "cloudtrail_s3":
			err = s.CloudTrail.check()
		case "entra_eventhub":
			err = s.EventHub.check()
		case "entra_graph":
			err = s.Graph.check()
		case "okta_systemlog":
			err = s.Okta.check()
		}
		if err != nil {
			return fmt.Errorf("source %q: %w", s.Name, err)
		}
	}
	return nil
}

// secret reads a credential: from file when set (trimmed), else from the
// environment variable env when set. Values are never logged.
func secret(file, env, what string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", what, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s file %s is empty", what, file)
		}
		return v, nil
	}
	if env != "" {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("%s: environment variable %s is empty or unset", what, env)
	}
	return "", fmt.Errorf("%s: give a file or an environment variable", what)
}
