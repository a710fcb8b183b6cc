package forwarder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/stele-dev/stele/internal/jsontime"
)

// Config is the forwarder's configuration file (strict JSON: unknown
// fields are refused). docs/forwarder.md has an example for each sink.
type Config struct {
	Log struct {
		// URL is the root of the log's tlog-tiles API.
		URL string `json:"url"`
		// KeyFile is the log's verifier key (log.pub).
		KeyFile string `json:"key_file"`
		// PolicyFile, when set, is a C2SP tlog-policy every checkpoint
		// must meet.
		PolicyFile string `json:"policy_file,omitempty"`
	} `json:"log"`
	Server struct {
		// Address is the log server's gRPC host:port; the forwarder reads
		// payloads there with the reader role.
		Address string `json:"address"`
		// CAFile, CertFile, KeyFile: TLS (see client.WithTLS). Without
		// CAFile the connection is plaintext, fit only for loopback.
		CAFile   string `json:"ca_file,omitempty"`
		CertFile string `json:"cert_file,omitempty"`
		KeyFile  string `json:"key_file,omitempty"`
		// TokenFile holds a bearer token (needs TLS).
		TokenFile string `json:"token_file,omitempty"`
	} `json:"server"`
	// Successors names, for each log that continues this one (a frozen
	// log's successor, docs/operations.md "Rotating to a new log"), the
	// gRPC server to read its payloads at (with server's TLS and token)
	// and, optionally, its tiles URL (default: the one the freeze
	// statement names). Its key always comes from the signed freeze
	// statement. Keyed by the successor's origin.
	Successors map[string]SuccessorConfig `json:"successors,omitempty"`
	// StateDir holds the trusted checkpoint, the cursors and the
	// dead-letter files.
	StateDir string `json:"state_dir"`
	// Listen is the address of /healthz, /status and /metrics; empty: none.
	Listen string `json:"listen,omitempty"`
	// PollInterval is how often the log's checkpoint is read (default 2s).
	PollInterval Duration `json:"poll_interval,omitempty"`
	// BatchSize is the most entries read and handed to a sink at once
	// (default 500). Memory is bounded by about three batches per sink.
	BatchSize int `json:"batch_size,omitempty"`
	// FetchConcurrency bounds the payload range reads (GetEvents calls,
	// each of at least 50 entries) in flight per sink (default 16).
	FetchConcurrency int `json:"fetch_concurrency,omitempty"`
	// MaxBackoff caps the wait between retries (default 1m).
	MaxBackoff Duration     `json:"max_backoff,omitempty"`
	Sinks      []SinkConfig `json:"sinks"`
}

// SuccessorConfig is where to read a successor log.
type SuccessorConfig struct {
	// Address is the successor's gRPC host:port.
	Address string `json:"address"`
	// URL, when set, is the root of its tlog-tiles API.
	URL string `json:"url,omitempty"`
}

// SinkConfig names one sink and its type's settings.
type SinkConfig struct {
	// Name names the sink's cursor, dead-letter file and metrics labels:
	// [a-z0-9_-], 1 to 64 characters, unique.
	Name string `json:"name"`
	// Type is one of SinkTypes.
	Type string `json:"type"`
	// Settings are the type's settings (strict JSON).
	Settings json.RawMessage `json:"settings"`
}

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration = jsontime.Duration

var sinkName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// DecodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// ParseConfig parses and checks a configuration, including every sink's
// settings.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := DecodeStrict(b, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var errs []string
	if c.Log.URL == "" || c.Log.KeyFile == "" {
		errs = append(errs, "log.url and log.key_file are required")
	}
	if c.Server.Address == "" {
		errs = append(errs, "server.address is required (payloads are read over gRPC)")
	}
	for o, sc := range c.Successors {
		if sc.Address == "" {
			errs = append(errs, fmt.Sprintf("successors[%q].address is required (its payloads are read over gRPC)", o))
		}
	}
	if c.StateDir == "" {
		errs = append(errs, "state_dir is required")
	}
	if c.BatchSize < 0 || c.BatchSize > 100000 {
		errs = append(errs, "batch_size must be 1..100000")
	}
	if len(c.Sinks) == 0 {
		errs = append(errs, "no sinks: add at least one")
	}
	seen := map[string]bool{}
	for i, s := range c.Sinks {
		switch {
		case !sinkName.MatchString(s.Name):
			errs = append(errs, fmt.Sprintf("sinks[%d]: name %q must be 1-64 of [a-z0-9_-]", i, s.Name))
		case seen[s.Name]:
			errs = append(errs, fmt.Sprintf("sinks[%d]: name %q is used twice", i, s.Name))
		}
		seen[s.Name] = true
		if _, err := checkSink(s); err != nil {
			errs = append(errs, fmt.Sprintf("sinks[%d] (%s): %v", i, s.Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.New("config: " + strings.Join(errs, "; "))
	}
	if c.PollInterval == 0 {
		c.PollInterval = Duration(2 * time.Second)
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.FetchConcurrency <= 0 {
		c.FetchConcurrency = 16
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = Duration(time.Minute)
	}
	return &c, nil
}

// LoadConfig reads and parses a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// sinkType builds a sink of one type from its strict settings.
type sinkType struct {
	// check parses and checks settings without side effects.
	check func(settings []byte) (any, error)
	// open builds the sink from checked settings.
	open func(name string, settings any, env SinkEnv) (Sink, error)
}

// SinkEnv is what a sink may use from the forwarder.
type SinkEnv struct {
	// StateDir is a directory the sink may keep state in (its own
	// subdirectory).
	StateDir string
}

// SinkTypes lists the sink types a configuration may name.
func SinkTypes() []string {
	out := make([]string, 0, len(sinkTypes))
	for k := range sinkTypes {
		out = append(out, k)
	}
	return out
}

func checkSink(s SinkConfig) (any, error) {
	t, ok := sinkTypes[s.Type]
	if !ok {
		return nil, fmt.Errorf("unknown type %q (known: %s)", s.Type, strings.Join(sortedTypes(), ", "))
	}
	if len(s.Settings) == 0 {
		s.Settings = []byte("{}")
	}
	v, err := t.check(s.Settings)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	return v, nil
}

// strictSettings returns a check function decoding into a fresh T and
// running its validate method.
func strictSettings[T any, PT interface {
	*T
	validate() error
}]() func([]byte) (any, error) {
	return func(b []byte) (any, error) {
		var v T
		if err := DecodeStrict(b, &v); err != nil {
			return nil, err
		}
		if err := PT(&v).validate(); err != nil {
			return nil, err
		}
		return &v, nil
	}
}
