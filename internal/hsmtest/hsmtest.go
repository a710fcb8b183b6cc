// Package hsmtest gives tests a fresh SoftHSM2 token in a temporary
// directory. SoftHSM2 comes from Debian's softhsm2 package (.ci/services
// installs it); without it a test skips with a loud message, unless CI is
// set, in which case it fails.
package hsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stele-dev/stele/internal/hsm"
)

// Modules are where Debian and others put SoftHSM2's PKCS#11 library.
var Modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// PIN is the user PIN of every test token.
const PIN = "4321"

// Token initialises a SoftHSM2 token labelled label in a new directory,
// points $SOFTHSM2_CONF at it for this test (and the processes it starts),
// and returns a Config for a key labelled keyLabel in it.
func Token(t testing.TB, label, keyLabel string) hsm.Config {
	t.Helper()
	var module string
	for _, m := range Modules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	util, err := exec.LookPath("softhsm2-util")
	if module == "" || err != nil {
		msg := "SoftHSM2 is not installed (Debian package softhsm2): the PKCS#11 tests need it; `source .ci/services && stele_services_start` installs it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, fmt.Appendf(nil, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", filepath.Join(dir, "tokens")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "87654321").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return hsm.Config{Module: module, Token: label, Label: keyLabel, PIN: PIN}
}
