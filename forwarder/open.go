package forwarder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
)

// Open wires a forwarder from its configuration: the log's key and tiles,
// the gRPC connection for payloads (TLS and token as configured), the
// witness policy and the sinks, and how to reach the logs that continue
// the log once it is frozen (Config.Successors). close releases the
// connection.
func Open(cfg *Config, logger *slog.Logger) (f *ChainForwarder, close func() error, err error) {
	v, err := logkey.ReadVerifier(cfg.Log.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	lg, err := client.NewTileLog(cfg.Log.URL, v, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("log.url: %w", err)
	}
	var policy *client.Policy
	if cfg.Log.PolicyFile != "" {
		b, err := os.ReadFile(cfg.Log.PolicyFile)
		if err != nil {
			return nil, nil, err
		}
		if policy, err = client.ParsePolicy(b); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", cfg.Log.PolicyFile, err)
		}
	}
	var opts []grpc.DialOption
	s := cfg.Server
	if s.CAFile != "" || s.CertFile != "" {
		o, err := client.WithTLS(s.CAFile, s.CertFile, s.KeyFile)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, o)
	}
	if s.TokenFile != "" {
		if len(opts) == 0 {
			return nil, nil, errors.New("server.token_file needs TLS (server.ca_file): a token is never sent in plaintext")
		}
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("server.token_file: %w", err)
		}
		opts = append(opts, client.WithToken(strings.TrimSpace(string(b))))
	}
	c, err := client.Dial(s.Address, opts...)
	if err != nil {
		return nil, nil, err
	}
	chain := &client.Chain{Policy: policy, URLs: map[string]string{}}
	for o, sc := range cfg.Successors {
		chain.URLs[o] = sc.URL
	}
	dial := func(origin string) (EventReader, func() error, error) {
		sc, ok := cfg.Successors[origin]
		if !ok {
			return nil, nil, fmt.Errorf("its gRPC server is not configured: add successors[%q].address to the configuration", origin)
		}
		c, err := client.Dial(sc.Address, opts...)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	}
	f, err = NewChain(ChainOptions{Options: Options{Config: cfg, Log: lg, Events: c, Policy: policy, Logger: logger}, Chain: chain, Dial: dial})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return f, c.Close, nil
}

// OfflineStatus reads the sinks' cursors and the trusted checkpoint from
// the state directory, without contacting anything: the lag it reports is
// against the last checkpoint the forwarder verified.
func OfflineStatus(cfg *Config) (Status, error) {
	var st Status
	v, err := logkey.ReadVerifier(cfg.Log.KeyFile)
	if err != nil {
		return st, err
	}
	stateDir := cfg.StateDir
	if cs, err := readChainState(cfg.StateDir); err != nil {
		return st, err
	} else if cs != nil {
		// A successor log is followed now (chain.go).
		if v, err = client.NewLogVerifier(cs.Key); err != nil {
			return st, fmt.Errorf("chain state: %w", err)
		}
		stateDir = filepath.Join(cfg.StateDir, cs.StateDir)
	}
	noProofs := func(context.Context, uint64, uint64) ([][]byte, error) {
		return nil, errors.New("offline")
	}
	ss, err := client.NewStateStore(filepath.Join(stateDir, "trusted"), v, noProofs)
	if err != nil {
		return st, err
	}
	cp, err := ss.Trusted()
	if err != nil {
		return st, err
	}
	if cp != nil {
		st.Origin, st.LogSize = cp.Origin, cp.Size
	}
	for _, sc := range cfg.Sinks {
		cur, err := readCursor(filepath.Join(stateDir, "cursors", sc.Name+".json"))
		if err != nil {
			return st, err
		}
		s := SinkStatus{Name: sc.Name, Type: sc.Type, Next: cur.Next, LogSize: st.LogSize}
		if st.LogSize > cur.Next {
			s.LagEntries = st.LogSize - cur.Next
		}
		st.Sinks = append(st.Sinks, s)
	}
	return st, nil
}
