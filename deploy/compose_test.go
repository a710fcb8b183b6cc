package deploy_test

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/stele-dev/stele/forwarder"
)

// composeFile is the part of the Compose specification deploy/compose uses.
// It is decoded strictly: a misspelt key (or one this test does not know yet)
// is an error, so extend the struct when the file uses more of the spec.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]*struct{}      `json:"volumes"`
}

type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Restart     string            `json:"restart"`
	EnvFile     []string          `json:"env_file"`
	Environment map[string]string `json:"environment"`
	Entrypoint  []string          `json:"entrypoint"`
	Command     []string          `json:"command"`
	Volumes     []string          `json:"volumes"`
	Ports       []string          `json:"ports"`
	Healthcheck *struct {
		Test        []string `json:"test"`
		Interval    string   `json:"interval"`
		Timeout     string   `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod string   `json:"start_period"`
	} `json:"healthcheck"`
	StopGracePeriod string `json:"stop_grace_period"`
	DependsOn       map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
}

// serverConfig reads a stele-server JSON config loosely, for the addresses
// and paths it names (cmd/stele-server TestDeployConfigsLoad loads the same
// files with the server's strict loader).
func serverConfig(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// setting is a server setting: the flag if the command line gives it, else
// the config file's key.
func setting(vals map[string]string, cfg map[string]any, flagName string) string {
	if v, ok := vals[flagName]; ok {
		return v
	}
	if v, ok := cfg[strings.ReplaceAll(flagName, "-", "_")].(string); ok {
		return v
	}
	return ""
}

var healthURL = regexp.MustCompile(`^https?://127\.0\.0\.1:(\d+)(/\S*)$`)

func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		t.Fatalf("compose/compose.yaml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("compose/compose.yaml has no services")
	}
	k8sImage := kubernetesImage(t)
	env := envExample(t, "compose/stele.env.example")
	gitignore, _ := os.ReadFile("compose/.gitignore")

	var servers, witnesses, forwarders, collectors int
	for name, s := range c.Services {
		where := "compose service " + name
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", where, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("%s mounts %s, which is not in deploy/compose", where, src)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s uses volume %s, not declared under volumes:", where, src)
			}
		}
		for _, f := range s.EnvFile {
			if _, err := os.Stat(filepath.Join("compose", f+".example")); err != nil {
				t.Errorf("%s reads %s, but there is no %s.example to make it from", where, f, f)
			}
			if !slicesContains(strings.Split(string(gitignore), "\n"), f) {
				t.Errorf("compose/.gitignore does not keep %s (real secrets) out of git", f)
			}
			if out, _ := exec.Command("git", "ls-files", filepath.Join("compose", f)).Output(); len(out) > 0 {
				t.Errorf("compose/%s is committed: it holds real secrets", f)
			}
		}
		if s.Restart != "" && s.Healthcheck == nil {
			t.Errorf("%s runs for good but has no healthcheck", where)
		}
		if !strings.HasPrefix(s.Image, imageName+":") {
			continue
		}
		// A Stele container: the same image as Kubernetes, a command the
		// binary accepts, probes on the ports it listens on.
		if s.Image != k8sImage {
			t.Errorf("%s runs %s, Kubernetes runs %s: keep them the same", where, s.Image, k8sImage)
		}
		argv := s.Entrypoint
		if argv == nil {
			argv = parseDockerfile(t).entrypoint
		}
		bin, sub, vals := commandLine(t, where, append(append([]string{}, argv...), s.Command...))
		var httpPort, dataDir string
		var listenPorts []string
		switch {
		case bin == "stele-server":
			servers++
			if s.Build == nil {
				t.Errorf("%s does not build the image", where)
			} else if got := filepath.Join("compose", s.Build.Context, s.Build.Dockerfile); got != filepath.Join("..", "deploy", "Dockerfile") {
				t.Errorf("%s builds from %s, want deploy/Dockerfile", where, got)
			}
			cfg := map[string]any{}
			if p := vals["config"]; p != "" {
				src := bindSource(s.Volumes, p)
				if src == "" {
					t.Errorf("%s: --config %s is not a file mounted from deploy/compose", where, p)
				} else {
					cfg = serverConfig(t, filepath.Join("compose", src))
				}
			}
			httpPort = portOf(t, where, setting(vals, cfg, "http-addr"))
			listenPorts = []string{portOf(t, where, setting(vals, cfg, "grpc-addr")), httpPort}
			dataDir = setting(vals, cfg, "data-dir")
			if setting(vals, cfg, "storage") == "aws" {
				checkComposeAWS(t, where, c, cfg, env)
			}
		case bin == "stele-forwarder" && sub == "run":
			forwarders++
			var fc *forwarder.Config
			if src := bindSource(s.Volumes, vals["config"]); src == "" {
				t.Errorf("%s: --config %s is not a file mounted from deploy/compose", where, vals["config"])
				continue
			} else if fc, err = forwarder.LoadConfig(filepath.Join("compose", src)); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if volumeAt(s.Volumes, path.Dir(fc.Log.KeyFile)) == "" {
				t.Errorf("%s: the log key %s is not on a volume", where, fc.Log.KeyFile)
			}
			httpPort = portOf(t, where, fc.Listen)
			listenPorts = []string{httpPort}
			dataDir = fc.StateDir
		case bin == "stele-collector" && sub == "run":
			collectors++
			src := bindSource(s.Volumes, vals["config"])
			if src == "" {
				t.Errorf("%s: --config %s is not a file mounted from deploy/compose", where, vals["config"])
				continue
			}
			cfg := collectorConfig(t, filepath.Join("compose", src))
			httpPort = portOf(t, where, cfg.Listen)
			listenPorts = []string{httpPort}
			dataDir = cfg.StateDir
			if host, _, _ := net.SplitHostPort(cfg.Server.Address); c.Services[host].Image == "" {
				t.Errorf("%s: server.address %s names no service of the file", where, cfg.Server.Address)
			}
		case bin == "stele-witness" && sub == "run":
			witnesses++
			httpPort = portOf(t, where, vals["listen"])
			listenPorts = []string{httpPort}
			dataDir = vals["data-dir"]
		default:
			t.Errorf("%s runs %s %s", where, bin, sub)
			continue
		}
		if dataDir == "" || volumeAt(s.Volumes, dataDir) == "" {
			t.Errorf("%s: the data directory %q is not on a volume", where, dataDir)
		}
		for _, p := range s.Ports {
			f := strings.Split(p, ":")
			if len(f) != 3 || f[0] != "127.0.0.1" {
				t.Errorf("%s publishes %s: publish on loopback only (127.0.0.1:HOST:CONTAINER), the file runs without TLS", where, p)
				continue
			}
			if !slicesContains(listenPorts, f[2]) {
				t.Errorf("%s publishes container port %s, but it listens on %v", where, f[2], listenPorts)
			}
		}
		if s.Healthcheck == nil {
			continue
		}
		m := healthURL.FindStringSubmatch(s.Healthcheck.Test[len(s.Healthcheck.Test)-1])
		if m == nil {
			t.Errorf("%s: health check %q does not end in http://127.0.0.1:PORT/PATH", where, s.Healthcheck.Test)
			continue
		}
		if m[1] != httpPort {
			t.Errorf("%s: health check on port %s, the HTTP listener is on %s", where, m[1], httpPort)
		}
		if bin == "stele-forwarder" {
			// It needs a log to be healthy; its /healthz is tested in
			// forwarder TestDelivery.
			if m[2] != healthPath {
				t.Errorf("%s: health check path %s, want %s", where, m[2], healthPath)
			}
			continue
		}
		if !serves(t, bin, m[2]) {
			t.Errorf("%s: health check path %s: %s does not answer 200 there", where, m[2], bin)
		}
	}
	if servers != 1 || witnesses != 2 || forwarders != 1 || collectors != 1 {
		t.Errorf("compose runs %d servers, %d witnesses, %d forwarders and %d collectors, want 1, 2, 1 and 1", servers, witnesses, forwarders, collectors)
	}
}

// checkComposeAWS: the server reaches the S3 store and the database the file
// runs, with the credentials the env file gives both sides.
func checkComposeAWS(t *testing.T, where string, c composeFile, cfg map[string]any, env map[string]string) {
	t.Helper()
	endpoint, _ := cfg["s3_endpoint"].(string)
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		t.Errorf("%s: s3_endpoint %q is not a URL", where, endpoint)
		return
	}
	s3, ok := c.Services[u.Hostname()]
	if !ok {
		t.Errorf("%s: s3_endpoint %s names no service of the file", where, endpoint)
	} else if s3.Environment["VGW_PORT"] != ":"+u.Port() {
		t.Errorf("%s: s3_endpoint port %s, the store listens on %q", where, u.Port(), s3.Environment["VGW_PORT"])
	}
	bucket, _ := cfg["s3_bucket"].(string)
	created := false
	for _, s := range c.Services {
		f := strings.Fields(strings.Join(s.Command, " "))
		if !slicesContains(f, "create-bucket") {
			continue
		}
		created = true
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--bucket" && f[i+1] != bucket {
				created = false
			}
		}
	}
	if bucket == "" || !created {
		t.Errorf("%s: no service creates the bucket %q", where, bucket)
	}
	host, port, password, db := dsnParts(t, env["STELE_MYSQL_DSN"])
	if d, ok := c.Services[host]; !ok || !strings.HasPrefix(d.Image, "mariadb:") || port != "3306" {
		t.Errorf("%s: STELE_MYSQL_DSN points at %s:%s, not the file's MariaDB service", where, host, port)
	}
	if password != env["MARIADB_PASSWORD"] || db != env["MARIADB_DATABASE"] {
		t.Errorf("%s: STELE_MYSQL_DSN's password and database differ from MARIADB_PASSWORD and MARIADB_DATABASE", where)
	}
	if env["AWS_ACCESS_KEY_ID"] != env["ROOT_ACCESS_KEY"] || env["AWS_SECRET_ACCESS_KEY"] != env["ROOT_SECRET_KEY"] {
		t.Errorf("%s: the server's AWS credentials differ from the store's root credentials", where)
	}
}

// bindSource returns the host file bind-mounted at target, "" if none.
func bindSource(vols []string, target string) string {
	for _, v := range vols {
		f := strings.Split(v, ":")
		if len(f) >= 2 && f[1] == target && strings.HasPrefix(f[0], ".") {
			return f[0]
		}
	}
	return ""
}

// volumeAt returns the named volume mounted at target, "" if none.
func volumeAt(vols []string, target string) string {
	for _, v := range vols {
		f := strings.Split(v, ":")
		if len(f) >= 2 && f[1] == target && !strings.HasPrefix(f[0], ".") && !strings.HasPrefix(f[0], "/") {
			return f[0]
		}
	}
	return ""
}

// envExample reads an example env file: KEY=VALUE lines, comments, and
// every secret-looking value marked EXAMPLE.
func envExample(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "EXAMPLE VALUES ONLY") {
		t.Errorf("%s does not say that its values are examples", path)
	}
	env := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			t.Errorf("%s:%d: not KEY=VALUE: %q", path, i+1, line)
			continue
		}
		env[k] = v
		for _, s := range []string{"PASSWORD", "SECRET", "DSN", "ACCESS_KEY"} {
			if strings.Contains(k, s) && !strings.Contains(v, "EXAMPLE") {
				t.Errorf("%s:%d: %s looks like a real secret: mark example values with EXAMPLE", path, i+1, k)
			}
		}
	}
	return env
}

// dsnParts returns the host and port of a go-sql-driver DSN
// user:password@tcp(host:port)/dbname?params, and its password and database.
func dsnParts(t *testing.T, dsn string) (host, port, password, db string) {
	t.Helper()
	m := regexp.MustCompile(`^([^:@]+):([^@]*)@tcp\(([^)]+)\)/([^?]+)(\?.*)?$`).FindStringSubmatch(dsn)
	if m == nil {
		t.Errorf("DSN %q is not user:password@tcp(host:port)/dbname", dsn)
		return
	}
	host, port, err := net.SplitHostPort(m[3])
	if err != nil {
		t.Errorf("DSN %q: %v", dsn, err)
	}
	return host, port, m[2], m[4]
}
