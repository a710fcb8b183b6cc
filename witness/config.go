package witness

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// FileConfig is the stele-witness config file (JSON, unknown fields are
// an error). Command-line flags win over it.
//
//	{
//	  "data_dir": "/var/lib/stele-witness",
//	  "listen": "0.0.0.0:7480",
//	  "name": "witness.example.com/w1",
//	  "log_format": "json",
//	  "logs": [
//	    {"origin": "log.example.com/log", "keys": ["log.example.com/log+1234abcd+A..."]},
//	    {"origin": "other.example/log", "keys": ["..."], "pull_url": "https://other.example/log/", "pull_interval": "30s"}
//	  ],
//	  "log_lists": [{"source": "https://staging.witness-network.org/log-list-10qps-4klogs.1", "mode": "discover", "interval": "1h"}],
//	  "max_checkpoint_age": "1h"
//	}
type FileConfig struct {
	DataDir   string      `json:"data_dir,omitempty"`
	Listen    string      `json:"listen,omitempty"`
	Name      string      `json:"name,omitempty"`
	LogFormat string      `json:"log_format,omitempty"`
	Logs      []LogConfig `json:"logs,omitempty"`
	// LogLists are witness network log lists to take logs from
	// (loglists.go).
	LogLists []LogListConfig `json:"log_lists,omitempty"`
	// MaxCheckpointAge bounds the age of the cosignature served for each
	// log (recosign.go); 0 means DefaultMaxCheckpointAge.
	MaxCheckpointAge Duration `json:"max_checkpoint_age,omitempty"`
}

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*FileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var c FileConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("config %s: trailing data after the JSON object", path)
	}
	for _, l := range c.Logs {
		if _, err := l.validate(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for i := range c.LogLists {
		if err := c.LogLists[i].check(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if c.MaxCheckpointAge < 0 || (c.MaxCheckpointAge > 0 && time.Duration(c.MaxCheckpointAge) < time.Second) {
		return nil, fmt.Errorf("config %s: max_checkpoint_age %v is too short (at least 1s)", path, time.Duration(c.MaxCheckpointAge))
	}
	return &c, nil
}
