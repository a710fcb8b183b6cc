package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/connlimit"
)

// configKeys are the config file's keys as they were before the settings
// became one table (a file written for an older stele-server still loads).
var configKeys = []string{"data_dir", "grpc_addr", "http_addr", "origin", "checkpoint_interval", "batch_max_size",
	"batch_max_age", "max_record_bytes", "max_batch_events", "max_clock_skew", "min_free_disk_mib", "log_format",
	"witness_policy", "witness_timeout", "witness_fail_open", "tls_cert", "tls_key", "client_ca", "auth_policy",
	"rate_limit", "rate_burst", "max_request_bytes", "max_inflight_bytes", "max_concurrent_streams", "storage",
	"s3_bucket", "s3_prefix", "s3_endpoint", "s3_region", "s3_path_style", "mysql_dsn", "public_tiles_url", "log_key",
	"claim_lease", "header_timeout", "idle_timeout", "max_conns", "retention"}

// settingsFrom parses args and then, when given, a config file holding
// fileJSON, as run does.
func settingsFrom(t *testing.T, fileJSON string, args ...string) (*flags, error) {
	t.Helper()
	f := newFlags()
	if fileJSON != "" {
		p := filepath.Join(t.TempDir(), "stele-server.json")
		if err := os.WriteFile(p, []byte(fileJSON), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	return f, f.parse(args)
}

// TestSettingsPrecedence: a flag on the command line wins over the config
// file's key, which wins over the default; a key set to its zero value
// counts as absent. One setting of every type, and the file-only ones.
func TestSettingsPrecedence(t *testing.T) {
	type got struct {
		dataDir    string
		interval   time.Duration
		failOpen   bool
		maxConns   int
		inflight   int64
		streams    uint
		rate       float64
		batchSize  uint
		clockSkew  time.Duration
		idle       time.Duration
		pathStyle  bool
		grpcAddr   string
		minFreeMiB int
	}
	read := func(f *flags) got {
		return got{f.dataDir, f.cpInterval, f.witnessFailOpen, f.maxConns, f.maxInflightBytes, f.maxStreams, f.rateLimit,
			f.batchMaxSize, f.maxClockSkew, f.idleTimeout, f.s3PathStyle, f.grpcAddr, f.minFreeDisk}
	}
	defaults := got{"./stele-data", time.Second, false, connlimit.DefaultMaxConns, 256 << 20, 100, 0, 0, 0, connlimit.DefaultIdleTimeout, false, "127.0.0.1:7400", 256}
	file := `{"data_dir": "/file", "checkpoint_interval": "3s", "witness_fail_open": true, "max_conns": 7,
		"max_inflight_bytes": 1000, "max_concurrent_streams": 9, "rate_limit": 2.5, "batch_max_size": 64,
		"max_clock_skew": "2h", "idle_timeout": "30s", "s3_path_style": true, "grpc_addr": "", "min_free_disk_mib": 0}`
	fromFile := got{"/file", 3 * time.Second, true, 7, 1000, 9, 2.5, 64, 2 * time.Hour, 30 * time.Second, true, "127.0.0.1:7400", 256}
	flagArgs := []string{"--data-dir", "/flag", "--checkpoint-interval", "5s", "--witness-fail-open=false", "--max-conns", "11",
		"--max-inflight-bytes", "2000", "--max-concurrent-streams", "13", "--rate-limit", "0.5", "--idle-timeout", "1m",
		"--s3-path-style=false", "--grpc-addr", "127.0.0.1:1", "--min-free-disk-mib", "0"}
	fromFlags := got{"/flag", 5 * time.Second, false, 11, 2000, 13, 0.5, 0, 0, time.Minute, false, "127.0.0.1:1", 0}
	bothFlagsWin := fromFlags
	bothFlagsWin.batchSize, bothFlagsWin.clockSkew = 64, 2*time.Hour // file-only keys

	for _, c := range []struct {
		name string
		file string
		args []string
		want got
	}{
		{"defaults", "", nil, defaults},
		{"file over defaults", file, nil, fromFile},
		{"flags over defaults", "", flagArgs, fromFlags},
		{"flags over file", file, flagArgs, bothFlagsWin},
	} {
		f, err := settingsFrom(t, c.file, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g := read(f); g != c.want {
			t.Errorf("%s:\n got  %+v\n want %+v", c.name, g, c.want)
		}
	}
}

// TestSettingsFileErrors: the loader names the key and what is wrong.
func TestSettingsFileErrors(t *testing.T) {
	for file, want := range map[string]string{
		`{"grpc_adr": "x"}`:                    `unknown field "grpc_adr"`,
		`{"max_conns": "many"}`:                "max_conns: json: cannot unmarshal string",
		`{"checkpoint_interval": 5}`:           `checkpoint_interval: durations are strings such as "1s"`,
		`{"checkpoint_interval": "5 parsecs"}`: `checkpoint_interval: time: unknown unit`,
		`{"rebuild_index": true}`:              `unknown field "rebuild_index"`, // a flag only
		`[1]`:                                  "cannot unmarshal array",
	} {
		_, err := settingsFrom(t, file)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %s: %v, want an error with %q", file, err, want)
		}
	}
}

// TestSettingsDefinedOnce: every flag and key is declared by one row of the
// table, the keys of older config files all still exist, and each flag and key is
// in docs/configuration.md.
func TestSettingsDefinedOnce(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var s settings
	flagsSeen, keysSeen := map[string]bool{}, map[string]bool{}
	for _, o := range s.options() {
		if o.flag == "" && o.key == "" {
			t.Errorf("a row with neither flag nor key: %+v", o)
		}
		if o.flag != "" {
			if flagsSeen[o.flag] {
				t.Errorf("--%s declared twice", o.flag)
			}
			flagsSeen[o.flag] = true
			if !strings.Contains(string(doc), "`--"+o.flag+"`") {
				t.Errorf("--%s is not in docs/configuration.md", o.flag)
			}
		}
		if o.key != "" {
			if keysSeen[o.key] {
				t.Errorf("config key %s declared twice", o.key)
			}
			keysSeen[o.key] = true
			if !strings.Contains(string(doc), o.key) {
				t.Errorf("config key %s is not in docs/configuration.md", o.key)
			}
		}
	}
	for _, k := range configKeys {
		if !keysSeen[k] {
			t.Errorf("config key %s is gone: files that set it no longer load", k)
		}
	}
}
