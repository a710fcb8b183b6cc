package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// awsConfigKeys are the config keys of the "aws" storage (issue 7), pinned
// before the code landed on the scaleout branch, with an example value of
// each one's type. deploy/ uses them; deploy/deploy_test.go pins the flags.
var awsConfigKeys = map[string]any{
	"storage":          "aws",
	"s3_bucket":        "bucket",
	"s3_prefix":        "log/",
	"s3_endpoint":      "http://127.0.0.1:7070",
	"s3_region":        "us-east-1",
	"s3_path_style":    true,
	"mysql_dsn":        "stele:pw@tcp(127.0.0.1:3306)/stele",
	"public_tiles_url": "https://tiles.example.com/",
	"log_key":          "/etc/stele/log-key/log.key",
}

// TestDeployConfigsLoad loads every stele-server config in deploy/
// (deploy/config, the compose file's, the Kubernetes ConfigMap's) with the
// server's strict loader. deploy/deploy_test.go checks the rest of deploy/.
func TestDeployConfigsLoad(t *testing.T) {
	var configs []string
	filepath.WalkDir("../../deploy", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "stele-server") && strings.HasSuffix(d.Name(), ".json") {
			configs = append(configs, path)
		}
		return err
	})
	if len(configs) < 4 {
		t.Fatalf("found only %v", configs)
	}
	merged := newFlags().fs.Lookup("storage") != nil
	if !merged {
		t.Log("NOTE: this stele-server has no aws storage yet (the scaleout branch is not merged): " +
			"the aws keys in deploy/ are checked against the pinned list awsConfigKeys, the rest with the strict loader")
	}
	for _, c := range configs {
		if merged {
			if _, err := loadFileConfig(c); err != nil {
				t.Errorf("example config does not load: %v", err)
			}
			continue
		}
		// Before the merge: the pinned keys must have the pinned types; the
		// other keys must load.
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("%s: %v", c, err)
			continue
		}
		for k, example := range awsConfigKeys {
			v, ok := m[k]
			if !ok {
				continue
			}
			var got any
			if err := json.Unmarshal(v, &got); err != nil || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", example) {
				t.Errorf("%s: %s = %s, want a value like %v", c, k, v, example)
			}
			delete(m, k)
		}
		rest, _ := json.Marshal(m)
		p := filepath.Join(t.TempDir(), filepath.Base(c))
		os.WriteFile(p, rest, 0o600)
		if _, err := loadFileConfig(p); err != nil {
			t.Errorf("example config %s does not load: %v", c, err)
		}
	}
	// The loader is strict, so the check above can fail.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"grpc_adr": "x"}`), 0o644)
	if _, err := loadFileConfig(bad); err == nil || !strings.Contains(err.Error(), "grpc_adr") {
		t.Errorf("a misspelt key was accepted: %v", err)
	}
	// Once the aws storage is there, it takes every pinned key.
	if merged {
		b, _ := json.Marshal(awsConfigKeys)
		all := filepath.Join(t.TempDir(), "aws.json")
		os.WriteFile(all, b, 0o600)
		if _, err := loadFileConfig(all); err != nil {
			t.Errorf("the aws storage landed without a key deploy/ uses: %v; align deploy/ and awsConfigKeys with what landed", err)
		}
	}
}
