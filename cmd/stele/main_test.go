package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stele-dev/stele/internal/cli"
	"github.com/stele-dev/stele/internal/scriptcmd"
)

var update = flag.Bool("update", false, "rewrite the scripts' expected output (testscript UpdateScripts)")

// serverBinDir holds the binaries built for the scripts: stele-server,
// stele-witness, stele-bench and stele.
var serverBinDir string

// allBinDir holds every binary, stele included, as "go build -o bin/
// ./cmd/..." leaves them (the walk-through tests).
var allBinDir string

// commands are the programs testscript runs inside this test binary.
var commands = map[string]func(){
	"stele": func() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
}

// TestMain runs either the tests or, when testscript invokes this binary
// under a command's name, that command. Only the tests need stele-server,
// which lives in another package main: it is built once here, for real.
func TestMain(m *testing.M) {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	if _, ok := commands[name]; ok {
		testscript.Main(m, commands) // runs the command and exits
	}
	dir, err := os.MkdirTemp("", "stele-server-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The test runs in cmd/stele; go test puts its own go first on PATH.
	// stele-witness and stele-bench are there for the walk-throughs and
	// for the usage checks every binary shares.
	// The walk-throughs also need stele itself as a binary: it goes to
	// allBinDir, with the others, off the scripts' PATH (where stele is
	// this test binary).
	build := exec.Command("sh", "-c", `go build -o "$1/" ../stele-server ../stele-witness ../stele-bench && mkdir "$1/all" && cp "$1"/stele-* "$1/all/" && go build -o "$1/all/" .`, "sh", dir)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "building stele-server: %v\n", err)
		os.Exit(1)
	}
	serverBinDir = dir
	allBinDir = filepath.Join(dir, "all")
	testscript.Main(cleanupM{m, dir}, commands)
}

// cleanupM removes the server binary's directory once the tests have run:
// testscript.Main exits, so a defer in TestMain would never run.
type cleanupM struct {
	m   *testing.M
	dir string
}

func (c cleanupM) Run() int {
	defer os.RemoveAll(c.dir)
	return c.m.Run()
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":      scriptcmd.Exits,
			"waithttp":   scriptcmd.WaitHTTP,
			"within":     cmdWithin,
			"setenvfile": cmdSetenvFile,
			"sleep": func(ts *testscript.TestScript, neg bool, args []string) {
				d, err := time.ParseDuration(args[0] + "s")
				if neg || len(args) != 1 || err != nil {
					ts.Fatalf("usage: sleep SECONDS")
				}
				time.Sleep(d)
			},
		},
		Setup: func(env *testscript.Env) error {
			ports, err := freePorts(3)
			if err != nil {
				return err
			}
			grpcAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
			env.Setenv("GRPC", grpcAddr)
			env.Setenv("HTTP", httpAddr)
			env.Setenv("STELE_SERVER", grpcAddr)
			env.Setenv("MIRROR", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))) // stele mirror --serve
			env.Setenv("PATH", serverBinDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			return nil
		},
	})
}

// cmdWithin is "within DURATION exits N program [args...]": exits, and
// check that the program was done within DURATION. It pins promises about
// waiting (an unreachable server reported in seconds, not minutes).
func cmdWithin(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 || args[1] != "exits" {
		ts.Fatalf("usage: within DURATION exits N program [args...]")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("within: %v", err)
	}
	start := time.Now()
	scriptcmd.Exits(ts, false, args[2:])
	if took := time.Since(start); took > d {
		ts.Fatalf("%s took %s, want at most %s", args[3], took.Round(time.Millisecond), d)
	}
}

// cmdSetenvFile is "setenvfile VAR FILE": VAR is FILE's contents without
// surrounding space, as "$(cat FILE)" would give.
func cmdSetenvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setenvfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePorts returns n loopback TCP ports that were free a moment ago and
// that no other script of this run has been given, since scripts run in
// parallel and the kernel may hand a just-closed port out again.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100 {
			return nil, fmt.Errorf("no free loopback port after %d tries", tries)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		if portsUsed[p] {
			continue
		}
		portsUsed[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}
