// Package deploy_test checks the deployment files in deploy/ against the
// real binaries, since CI cannot run containers: every YAML file parses (the
// Kubernetes manifests strictly into the Kubernetes API types), every flag
// they pass exists in the binaries built by deploy/Dockerfile's own `go
// build` line, probes and health checks name ports the configs listen on and
// paths the real binaries serve, config mounts match --config arguments,
// image references agree, and every file in deploy/ is covered by a check.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stele-dev/stele/collector"
	"github.com/stele-dev/stele/internal/proctest"
)

// coverage maps every file in deploy/ to the check that validates it. A new
// file that no pattern matches fails TestEveryFileIsChecked: add a check for
// it (and a pattern here) in the same change.
var coverage = []struct{ pattern, check string }{
	{"Dockerfile", "TestDockerfile"},
	{"Dockerfile.dockerignore", "TestDockerfile"},
	{"compose/compose.yaml", "TestCompose"},
	{"compose/stele.env.example", "TestCompose"},
	{"compose/.gitignore", "TestCompose"},
	{"compose/stele-server.json", "TestCompose; strict config loader: cmd/stele-server TestDeployConfigsLoad"},
	{"kubernetes/*.yaml", "TestKubernetes"},
	{"kubernetes/stele-server.json", "TestKubernetes; strict config loader: cmd/stele-server TestDeployConfigsLoad"},
	{"systemd/*.service", "TestSystemd"},
	{"systemd/*.service.d/*.conf", "TestSystemd"},
	{"config/stele-server*.json", "TestSystemd; strict config loader: cmd/stele-server TestDeployConfigsLoad"},
	{"config/*.env.example", "TestSystemd"},
	{"config/stele-witness.json", "TestWitnessConfig"},
	{"*/stele-collector.json", "TestSystemd, TestCompose, TestKubernetes with the collector's strict loader (collectorConfig)"},
	{"config/auth-policy.example.json", "server TestExamplePolicyLoads (server/auth_test.go)"},
	{"config/stele-forwarder.json", "TestForwarderDeploy (deploy/forwarder_test.go)"},
	{"compose/stele-forwarder.json", "TestCompose, with the forwarder's strict loader"},
	{"kubernetes/stele-forwarder.json", "TestForwarderDeploy (deploy/forwarder_test.go)"},
	{"sentinel/*.json", "TestSentinelDefinitions (deploy/forwarder_test.go)"},
	{"*_test.go", "these tests"},
}

func TestEveryFileIsChecked(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		for _, c := range coverage {
			if ok, _ := filepath.Match(c.pattern, path); ok {
				return nil
			}
		}
		t.Errorf("deploy/%s is not validated by any test: add a check to deploy/*_test.go and a pattern to coverage", path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every pattern still matches something, so the table cannot rot.
	for _, c := range coverage {
		if m, _ := filepath.Glob(c.pattern); len(m) == 0 {
			t.Errorf("coverage pattern %q (%s) matches no file", c.pattern, c.check)
		}
	}
	t.Logf("%d files in deploy/", n)
}

// image is the one image every deployment file runs Stele from.
const imageName = "ghcr.io/stele-dev/stele"

// Ports and paths of the binaries (docs/configuration.md, docs/witness.md).
const (
	healthPath = "/healthz"
)

// awsFlags is the command-line interface of the "aws" storage (issue 7)
// that deploy/ relies on: name -> bool flag. TestServerFlagsPinned checks
// the binary against it.
var awsFlags = map[string]bool{
	"storage":          false,
	"s3-bucket":        false,
	"s3-prefix":        false,
	"s3-endpoint":      false,
	"s3-region":        false,
	"s3-path-style":    true,
	"mysql-dsn":        false,
	"public-tiles-url": false,
	"log-key":          false,
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary returns the path of a command built by the packages that
// deploy/Dockerfile's `go build` line names (built once per test run, with
// the default flags so the build cache is shared with the other tests).
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		df := parseDockerfile(t)
		binDir, buildErr = os.MkdirTemp("", "stele-deploy-bin")
		if buildErr != nil {
			return
		}
		args := append([]string{"build", "-o", binDir + "/"}, df.buildPackages...)
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("deploy/Dockerfile does not build %s (its go build line builds %v)", name, parseDockerfile(t).buildPackages)
	}
	return p
}

// flagSet is what a binary's -h output says about its flags.
type flagSet struct {
	name  string
	flags map[string]bool // name -> is a bool flag
}

var helpLine = regexp.MustCompile(`^  -(\S+)(?: (\S+))?`)

// flagsOf runs `bin [sub] -h` and reads the flags from its usage output
// (the flag package's PrintDefaults format: a bool flag has no type word).
func flagsOf(t *testing.T, bin string, sub ...string) flagSet {
	t.Helper()
	cmd := exec.Command(binary(t, bin), append(sub, "-h")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v -h: %v\n%s", bin, sub, err, out.String())
	}
	fs := flagSet{name: strings.Join(append([]string{bin}, sub...), " "), flags: map[string]bool{}}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if m := helpLine.FindStringSubmatch(sc.Text()); m != nil {
			fs.flags[m[1]] = m[2] == ""
		}
	}
	if len(fs.flags) == 0 {
		t.Fatalf("%s -h listed no flags:\n%s", fs.name, out.String())
	}
	return fs
}

var (
	serverFlagsOnce sync.Once
	serverFlagSet   flagSet
)

// serverFlags returns stele-server's flags.
func serverFlags(t *testing.T) flagSet {
	t.Helper()
	serverFlagsOnce.Do(func() { serverFlagSet = flagsOf(t, "stele-server") })
	return serverFlagSet
}

// TestServerFlagsPinned: the binary has every flag of the aws storage's
// interface that deploy/ relies on, of the right kind.
func TestServerFlagsPinned(t *testing.T) {
	fs := serverFlags(t)
	for f, b := range awsFlags {
		got, ok := fs.flags[f]
		switch {
		case !ok:
			t.Errorf("stele-server has no --%s, which deploy/ uses: align the deployment files (and awsFlags) with the binary", f)
		case got != b:
			t.Errorf("stele-server --%s: bool=%v, deploy/ expects bool=%v", f, got, b)
		}
	}
}

// parseArgs parses args with the flags fs lists, as the binary would, and
// returns the values given (a bool flag given alone is "true").
func parseArgs(t *testing.T, where string, fs flagSet, args []string) map[string]string {
	t.Helper()
	set := flag.NewFlagSet(fs.name, flag.ContinueOnError)
	set.SetOutput(&bytes.Buffer{})
	for name, isBool := range fs.flags {
		if isBool {
			set.Bool(name, false, "")
		} else {
			set.String(name, "", "")
		}
	}
	if err := set.Parse(args); err != nil {
		t.Errorf("%s: %s rejects %q: %v", where, fs.name, args, err)
		return nil
	}
	if set.NArg() != 0 {
		t.Errorf("%s: %s gets stray arguments %q", where, fs.name, set.Args())
	}
	vals := map[string]string{}
	set.Visit(func(f *flag.Flag) { vals[f.Name] = f.Value.String() })
	return vals
}

// commandLine checks a whole command line (binary path first) of a Stele
// command and returns the binary's base name, the subcommand (stele-witness)
// and the flag values.
func commandLine(t *testing.T, where string, argv []string) (bin, sub string, vals map[string]string) {
	t.Helper()
	if len(argv) == 0 {
		t.Fatalf("%s: empty command", where)
	}
	bin = filepath.Base(argv[0])
	args := argv[1:]
	switch bin {
	case "stele-server":
		return bin, "", parseArgs(t, where, serverFlags(t), args)
	case "stele-witness":
		sub = "run"
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			sub, args = args[0], args[1:]
		}
		return bin, sub, parseArgs(t, where, flagsOf(t, "stele-witness", sub), args)
	case "stele-forwarder", "stele-collector":
		sub = "run"
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			sub, args = args[0], args[1:]
		}
		return bin, sub, parseArgs(t, where, flagsOf(t, bin, sub), args)
	default:
		t.Errorf("%s: runs %q, not a Stele command", where, argv[0])
		return bin, "", nil
	}
}

// portOf returns the port of a listen address such as "0.0.0.0:7401".
func portOf(t *testing.T, where, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Errorf("%s: bad listen address %q: %v", where, addr, err)
	}
	return port
}

func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }

var (
	servedMu sync.Mutex
	served   = map[string]map[string]int{} // binary -> path -> status
)

// serves starts the real binary on loopback (stele-server on a POSIX log in
// a temporary directory, stele-witness with a temporary state directory) and
// reports whether it answers GET path with 200. Used for every probe and
// health check path the deployment files name.
func serves(t *testing.T, bin, path string) bool {
	t.Helper()
	servedMu.Lock()
	defer servedMu.Unlock()
	if st, ok := served[bin][path]; ok {
		return st == http.StatusOK
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	var args []string
	switch bin {
	case "stele-server":
		args = []string{"--data-dir", dir, "--grpc-addr", freeAddr(t), "--http-addr", addr}
	case "stele-witness":
		args = []string{"run", "--data-dir", dir, "--listen", addr}
	case "stele-collector":
		// A collector whose source cannot be reached still serves its
		// endpoints (the source's errors show in /status and /metrics).
		cfg := filepath.Join(dir, "collector.json")
		os.WriteFile(cfg, []byte(`{"server": {"address": "`+freeAddr(t)+`"}, "state_dir": "`+dir+`/state", "listen": "`+addr+`",
  "sources": [{"name": "s", "entra_storage": {"auth": "connection_string", "connection_string_env": "STELE_DEPLOY_TEST_CONN"}}]}`), 0o600)
		args = []string{"run", "--config", cfg}
		t.Setenv("STELE_DEPLOY_TEST_CONN", "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;BlobEndpoint=http://"+freeAddr(t)+"/x;")
	default:
		t.Fatalf("no way to start %s", bin)
	}
	cmd := exec.Command(binary(t, bin), args...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// /healthz of a new server answers 503 until the first checkpoint is
	// published: wait for 200 there, then ask for the path.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	get := func(p string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for get(healthPath) != http.StatusOK {
		if ctx.Err() != nil {
			t.Fatalf("%s did not become healthy on %s:\n%s", bin, addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := get(path)
	if served[bin] == nil {
		served[bin] = map[string]int{}
	}
	served[bin][path] = st
	return st == http.StatusOK
}

// TestServesIsNotBlind: the path check can fail.
func TestServesIsNotBlind(t *testing.T) {
	if serves(t, "stele-witness", "/no-such-health-path") {
		t.Error("stele-witness answered 200 for a path it does not serve: the probe path check would pass anything")
	}
}

// readRepoFile reads a file named relative to the repository root.
func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collectorConfig loads a stele-collector config with the collector's own
// strict loader.
func collectorConfig(t *testing.T, path string) *collector.Config {
	t.Helper()
	c, err := collector.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
