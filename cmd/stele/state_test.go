package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stele-dev/stele/internal/scriptcmd"
)

// stateSetup gives a script two servers' worth of loopback ports and the
// scripted tenant of drift/testdata/scenario in $WORK/scenario.
func stateSetup(env *testscript.Env) error {
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	for i, name := range []string{"GRPC", "HTTP", "GRPC2", "HTTP2"} {
		env.Setenv(name, net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])))
	}
	env.Setenv("STELE_SERVER", env.Getenv("GRPC"))
	env.Setenv("PATH", serverBinDir+string(os.PathListSeparator)+env.Getenv("PATH"))
	return os.CopyFS(filepath.Join(env.WorkDir, "scenario"), os.DirFS("../../drift/testdata/scenario"))
}

// stateCmds are the scripts' own commands.
var stateCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"exits": scriptcmd.Exits,
	// headlines N IN OUT: the first N lines of IN.
	"headlines": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: headlines N IN OUT")
		}
		n, err := strconv.Atoi(args[0])
		ts.Check(err)
		lines := strings.SplitAfter(ts.ReadFile(args[1]), "\n")
		ts.Check(os.WriteFile(ts.MkAbs(args[2]), []byte(strings.Join(lines[:n], "")), 0o600))
	},
	// samefacts A B: two `stele state --json` outputs hold the same facts
	// and unused entries.
	"samefacts": func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 2 {
			ts.Fatalf("usage: samefacts A B")
		}
		part := func(name string) string {
			var v map[string]json.RawMessage
			ts.Check(json.Unmarshal([]byte(ts.ReadFile(name)), &v))
			return string(v["facts"]) + string(v["unused"])
		}
		a, b := part(args[0]), part(args[1])
		if (a == b) == neg {
			ts.Fatalf("facts of %s and %s: equal %v, want %v\n%s\n%s", args[0], args[1], a == b, !neg, a, b)
		}
	},
	// extract FILE PATH OUT: the JSON value at a dotted path (numbers
	// index arrays); a string is written as its text.
	"extract": func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: extract FILE PATH OUT")
		}
		var v any
		ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &v))
		for _, p := range strings.Split(args[1], ".") {
			switch x := v.(type) {
			case map[string]any:
				v = x[p]
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i >= len(x) {
					ts.Fatalf("extract: %s: no element %s", args[1], p)
				}
				v = x[i]
			default:
				ts.Fatalf("extract: %s: nothing at %s", args[1], p)
			}
		}
		var out []byte
		if s, ok := v.(string); ok {
			out = []byte(s)
		} else {
			var err error
			out, err = json.Marshal(v)
			ts.Check(err)
		}
		ts.Check(os.WriteFile(ts.MkAbs(args[2]), out, 0o600))
	},
}

func TestStateScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/state", RequireExplicitExec: true, UpdateScripts: *update, Cmds: stateCmds, Setup: stateSetup})
}

// TestStateDoc runs the walk-through of docs/state.md as written: every
// "$ " line of its ```console blocks is run (stele-server lines ending in
// "&" in the background), each line printed under a command must appear
// in its output ("…" stands for any text), and "(exit
// status N)" under a command is its expected status.
func TestStateDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/state.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := docScript(doc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "walkthrough.txtar"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{Dir: dir, RequireExplicitExec: true, Cmds: stateCmds, Setup: func(env *testscript.Env) error {
		if err := stateSetup(env); err != nil {
			return err
		}
		// The walk-through runs from the repository root.
		return os.CopyFS(filepath.Join(env.WorkDir, "drift/testdata/scenario"), os.DirFS("../../drift/testdata/scenario"))
	}})
}

var exitLine = regexp.MustCompile(`^\(exit status (\d+)\)$`)

// docScript turns the console blocks of a walk-through into a testscript.
func docScript(doc []byte) ([]byte, error) {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(doc))
	in := false
	bg := 0
	var cmd string
	var expect []string
	status := 0
	flush := func() {
		if cmd == "" {
			return
		}
		if strings.HasSuffix(cmd, "&") {
			bg++
			fmt.Fprintf(&out, "exec %s &bg%d&\n", strings.TrimSpace(strings.TrimSuffix(cmd, "&")), bg)
		} else {
			fmt.Fprintf(&out, "exits %d %s\n", status, cmd)
			for _, e := range expect {
				parts := strings.Split(e, "…")
				for i := range parts {
					parts[i] = regexp.QuoteMeta(parts[i])
				}
				fmt.Fprintf(&out, "stdout '%s'\n", strings.ReplaceAll(strings.Join(parts, ".*"), "'", "''"))
			}
		}
		cmd, expect, status = "", nil, 0
	}
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "```console":
			in = true
		case in && l == "```":
			flush()
			in = false
		case in && strings.HasPrefix(l, "$ "):
			flush()
			cmd = strings.TrimPrefix(l, "$ ")
		case in && exitLine.MatchString(l):
			status, _ = strconv.Atoi(exitLine.FindStringSubmatch(l)[1])
		case in && strings.TrimSpace(l) != "":
			expect = append(expect, l)
		}
	}
	if cmd != "" || in {
		return nil, fmt.Errorf("docs/state.md: an unterminated console block")
	}
	if bg == 0 {
		return nil, fmt.Errorf("docs/state.md: the walk-through starts no server")
	}
	for i := bg; i >= 1; i-- {
		fmt.Fprintf(&out, "kill -INT bg%d\nwait bg%d\n", i, i)
	}
	return out.Bytes(), nil
}
