package deploy_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stele-dev/stele/witness"
)

// unitKeys are the directives deploy/systemd may use, by section: a typo
// (ExecStrat=, ReadWritePath=) is an error here instead of a warning that
// systemd logs and then ignores.
var unitKeys = map[string][]string{
	"Unit":    {"Description", "Documentation", "After", "Wants", "Requires"},
	"Service": {"Type", "User", "Group", "StateDirectory", "StateDirectoryMode", "ExecStart", "ExecReload", "KillSignal", "TimeoutStopSec", "Restart", "RestartSec", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "ReadWritePaths", "LimitNOFILE", "EnvironmentFile"},
	"Install": {"WantedBy"},
}

// unitFile is a parsed unit or drop-in: directive -> values in order.
type unitFile map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			if _, ok := unitKeys[section]; !ok {
				t.Errorf("%s:%d: unknown section [%s]", path, n, section)
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || !slicesContains(unitKeys[section], k) {
				t.Errorf("%s:%d: %q is not a directive of [%s] this test knows", path, n, line, section)
				continue
			}
			u[k] = append(u[k], v)
		}
	}
	return u
}

func (u unitFile) last(k string) string {
	if v := u[k]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func TestSystemd(t *testing.T) {
	units, _ := filepath.Glob("systemd/*.service")
	dropins, _ := filepath.Glob("systemd/*.service.d/*.conf")
	if len(units) < 2 || len(dropins) == 0 {
		t.Fatalf("want the server and witness units and the aws drop-in, found %v %v", units, dropins)
	}
	ran := map[string]bool{}
	for _, path := range append(units, dropins...) {
		u := parseUnit(t, path)
		base := u
		if strings.HasSuffix(path, ".conf") {
			// A drop-in changes its unit: clear ExecStart before setting it.
			unit := strings.TrimSuffix(filepath.Dir(path), ".d")
			base = parseUnit(t, unit)
			if es := u["ExecStart"]; len(es) > 0 && (len(es) < 2 || es[0] != "") {
				t.Errorf("%s sets ExecStart without clearing the unit's first (ExecStart= on its own line)", path)
			}
		} else if user := u.last("User"); user == "" || user == "root" {
			t.Errorf("%s runs as %q: use a dedicated user", path, user)
		}
		es := u.last("ExecStart")
		if es == "" {
			if len(u["ExecStart"]) == 0 && !strings.HasSuffix(path, ".conf") {
				t.Errorf("%s has no ExecStart", path)
			}
			continue
		}
		bin, sub, vals := commandLine(t, path, strings.Fields(es))
		ran[bin] = true
		if !strings.HasPrefix(strings.Fields(es)[0], "/usr/local/bin/") {
			t.Errorf("%s runs %s, the docs install the binaries in /usr/local/bin", path, strings.Fields(es)[0])
		}
		if bin == "stele-witness" && sub != "run" {
			t.Errorf("%s runs stele-witness %s", path, sub)
		}
		// --config names a file installed from deploy/config.
		cfg := map[string]any{}
		if p := vals["config"]; p != "" {
			local := filepath.Join("config", filepath.Base(p))
			if filepath.Dir(p) != "/etc/stele" {
				t.Errorf("%s: --config %s: the docs install configs in /etc/stele", path, p)
			}
			if _, err := os.Stat(local); err != nil {
				t.Errorf("%s: --config %s has no example in deploy/%s", path, p, local)
			} else if bin == "stele-server" {
				cfg = serverConfig(t, local)
			}
		}
		if bin == "stele-forwarder" {
			continue // its state directory is in its config: TestForwarderDeploy
		}
		if bin == "stele-collector" && vals["config"] != "" {
			cfg = map[string]any{"data_dir": collectorConfig(t, filepath.Join("config", filepath.Base(vals["config"]))).StateDir}
		}
		// The data directory is the unit's state directory, and writable.
		dataDir := vals["data-dir"]
		if dataDir == "" {
			dataDir = setting(vals, cfg, "data-dir")
		}
		if want := "/var/lib/" + base.last("StateDirectory"); dataDir != want {
			t.Errorf("%s: data directory %q, but the unit's StateDirectory is %s", path, dataDir, want)
		}
		if !slicesContains(strings.Fields(base.last("ReadWritePaths")), dataDir) {
			t.Errorf("%s: ReadWritePaths does not include the data directory %s (ProtectSystem=strict makes the rest read-only)", path, dataDir)
		}
		// An EnvironmentFile is installed from an example in deploy/config.
		env := map[string]string{}
		for _, ef := range u["EnvironmentFile"] {
			ex := filepath.Join("config", filepath.Base(ef)+".example")
			if _, err := os.Stat(ex); err != nil {
				t.Errorf("%s: EnvironmentFile %s has no example %s", path, ef, ex)
				continue
			}
			for k, v := range envExample(t, ex) {
				env[k] = v
			}
		}
		if setting(vals, cfg, "storage") == "aws" && setting(vals, cfg, "mysql-dsn") == "" {
			if env["STELE_MYSQL_DSN"] == "" {
				t.Errorf("%s: aws storage without --mysql-dsn, mysql_dsn or STELE_MYSQL_DSN", path)
			} else {
				dsnParts(t, env["STELE_MYSQL_DSN"])
			}
		}
	}
	for _, b := range []string{"stele-server", "stele-witness", "stele-collector"} {
		if !ran[b] {
			t.Errorf("no systemd unit runs %s", b)
		}
	}
	// Every example env file is one a unit reads.
	envs, _ := filepath.Glob("config/*.env.example")
	for _, e := range envs {
		used := false
		for _, d := range dropins {
			for _, ef := range parseUnit(t, d)["EnvironmentFile"] {
				used = used || filepath.Base(ef)+".example" == filepath.Base(e)
			}
		}
		if !used {
			t.Errorf("%s is read by no systemd unit", e)
		}
	}
}

// TestWitnessConfig loads the example witness config with the witness's own
// strict loader (it checks the log keys too).
func TestWitnessConfig(t *testing.T) {
	c, err := witness.LoadConfig("config/stele-witness.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Logs) == 0 {
		t.Error("the example witness config witnesses no log")
	}
	// The loader is strict, so the check above can fail.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"listn": "x"}`), 0o600)
	if _, err := witness.LoadConfig(bad); err == nil {
		t.Error("a misspelt key was accepted")
	}
}
