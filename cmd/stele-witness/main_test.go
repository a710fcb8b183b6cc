package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/mod/sumdb/note"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"stele-witness": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":  cmdExits,
			"waitup": cmdWaitUp,
		},
		Setup: func(env *testscript.Env) error {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			env.Setenv("ADDR", l.Addr().String())
			l.Close()
			_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
			if err != nil {
				return err
			}
			env.Setenv("LOGKEY", vkey)
			_, vkey2, err := note.GenerateKey(rand.Reader, "example.com/log")
			if err != nil {
				return err
			}
			env.Setenv("LOGKEY2", vkey2)
			return nil
		},
	})
}

// cmdExits is "exits N program [args...]": run program like exec and check
// that it exits with status N (1 for a failure, 2 for a usage error).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N program [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdWaitUp is "waitup HOST:PORT": wait until the witness there answers
// /healthz with 200 (failing after a generous bound).
func cmdWaitUp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitup HOST:PORT")
	}
	for i := 0; i < 3000; i++ {
		resp, err := http.Get(fmt.Sprintf("http://%s/healthz", args[0]))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.Fatalf("nothing answered on %s", args[0])
}
