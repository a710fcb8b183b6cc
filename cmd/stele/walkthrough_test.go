package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The walk-throughs in README.md and docs/witness.md are run here as
// written: the test reads the shell blocks out of the markdown, so the docs
// cannot drift from what is tested. They use the default ports (7400,
// 7401, 7480...), so each runs in its own network namespace (unshare -rn),
// where those ports are free whatever else runs on the machine. The one
// substitution is "go": a shim on the PATH turns "go build -o bin/
// ./cmd/..." into a copy of the binaries this test built (the scripts run
// in a scratch copy that is not the repository) and "go run ./cmd/X" into
// running X.

// shBlocks returns the ```sh blocks of the markdown file's section that
// starts with the heading line.
func shBlocks(t *testing.T, file, heading string) []string {
	t.Helper()
	md, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(md)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no section %q", file, heading)
	}
	section := text[i+1:]
	level := heading[:strings.Index(heading, " ")+1] // "## "
	if j := strings.Index(section[len(heading):], "\n"+level); j >= 0 {
		section = section[:len(heading)+j]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)\n```sh\n(.*?)\n```\n").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) == 0 {
		t.Fatalf("%s section %q has no sh block", file, heading)
	}
	return blocks
}

const goShim = `#!/bin/sh
# go, as the walk-through test needs it: see walkthrough_test.go.
if [ "$*" = "build -o bin/ ./cmd/..." ]; then
	mkdir -p bin && cp "$STELE_TEST_BINS"/* bin/ && exit 0
fi
if [ "$1" = run ]; then
	shift; p=$(basename "$1"); shift
	exec "$STELE_TEST_BINS/$p" "$@"
fi
echo "go shim: unexpected: go $*" >&2
exit 1
`

// runDocScript runs script with bash -euo pipefail in a fresh directory in
// its own network namespace and returns its output.
func runDocScript(t *testing.T, script string) string {
	t.Helper()
	if err := exec.Command("unshare", "-rn", "true").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("unshare -rn (a private network namespace for the default ports) is not available: %v", err)
		}
		t.Skipf("SKIPPED LOUDLY: unshare -rn is not available (%v), so the walk-through cannot use its default ports here", err)
	}
	dir := t.TempDir()
	shim := filepath.Join(dir, "shim")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shim, "go"), []byte(goShim), 0o755); err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(dir, "clone")
	if err := os.MkdirAll(clone, 0o755); err != nil {
		t.Fatal(err)
	}
	full := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait || true' EXIT\nset -x\n" + script + "\n"
	if err := os.WriteFile(filepath.Join(dir, "walk.sh"), []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-rn", "bash", "-c", `ip link set lo up && exec bash "$0"`, filepath.Join(dir, "walk.sh"))
	cmd.Dir = clone
	cmd.Env = append(os.Environ(), "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"), "STELE_TEST_BINS="+allBinDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, out.String())
	}
	return out.String()
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the walk-through's output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestReadmeWalkthrough runs README.md's walk-through and witness steps.
func TestReadmeWalkthrough(t *testing.T) {
	blocks := append(shBlocks(t, "../../README.md", "## Walk-through"), shBlocks(t, "../../README.md", "## Witnesses")...)
	out := runDocScript(t, strings.Join(blocks, "\n"))
	mustContain(t, out,
		"line 1: index 0\n", "line 1: index 0 duplicate\n", "1 duplicate, 0 refused",
		"receipt OK: entry 0", "event OK: the payload",
		"stele_checkpoint_stalled 1", "witnesses OK: the checkpoint meets the witness policy",
		"receipt OK: entry 1 ")
	// The restarted server's old checkpoint (size 1) was cosigned without
	// a new event: entry 0's receipt verified against the policy at size 1.
	if !strings.Contains(out, "receipt OK: entry 0 (source entra/00000000-0000-0000-0000-000000000001/audit, event_id a1b2c3d4-0000-4000-8000-000000000001, kind directory.role.member.add) is in stele.localhost/log at tree size 1\nwitnesses OK") {
		t.Errorf("entry 0's receipt after add-log was not at size 1 with the witness policy met:\n%s", out)
	}
	if strings.Contains(out, `"no_event_time"`) {
		t.Errorf("the walk-through's event shows the no_event_time flag")
	}
}

// TestWitnessWalkthrough runs docs/witness.md's walk-through, after the
// README's first three lines (build, PATH, scratch directory) it starts from.
func TestWitnessWalkthrough(t *testing.T) {
	prologue := readmePrologue(t)
	out := runDocScript(t, prologue+"\n"+strings.Join(shBlocks(t, "../../docs/witness.md", "## Try it: a second log and a new witness"), "\n"))
	mustContain(t, out,
		"line 1: index 0\n", "stele_checkpoint_stalled 1",
		"run=\"stele-witness add-log --origin log2.example.org/log --key log2.example.org/log+",
		"receipt OK: entry 0 ", "witnesses OK: the checkpoint meets the witness policy")
}
