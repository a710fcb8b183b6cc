package main

import (
	"crypto/rand"
	"net"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/scriptcmd"
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
			"exits":    scriptcmd.Exits,
			"waithttp": scriptcmd.WaitHTTP,
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
