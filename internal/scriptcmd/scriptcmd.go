// Package scriptcmd holds the testscript commands the Stele binaries'
// script tests share (cmd/stele, cmd/stele-witness). It is test support:
// nothing in a binary uses it.
package scriptcmd

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// Exits is "exits N program [args...]": run program like exec, and check
// that it exits with status N. ("! exec" only tells that it failed; Stele's
// exit codes tell a failure (1) from a usage error (2).)
func Exits(ts *testscript.TestScript, neg bool, args []string) {
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

// WaitHTTP is "waithttp URL": wait (up to a minute) until GET URL answers
// 200, for a server started in the background with &name&.
func WaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waithttp URL")
	}
	var last error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(args[0])
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		last = fmt.Errorf("HTTP status %s", resp.Status)
	}
	ts.Fatalf("waithttp %s: %v", args[0], last)
}
