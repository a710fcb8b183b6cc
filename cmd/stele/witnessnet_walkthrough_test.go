package main

import (
	"strings"
	"testing"
)

// TestWitnessNetworkWalkthrough runs docs/witness.md's "Try it: public
// witnesses that discover the log" as written: two witnesses take the log
// from a log list file, the operator's own witness is told with add-log,
// receipts meet a policy of "own and any one public witness", and still do
// after one public witness stops.
func TestWitnessNetworkWalkthrough(t *testing.T) {
	out := runDocScript(t, readmePrologue(t)+"\n"+strings.Join(shBlocks(t, "../../docs/witness.md", "### Try it: public witnesses that discover the log"), "\n"))
	mustContain(t, out,
		"line 1: index 0", "line 1: index 1",
		"from=list:network.list",
		"— pub1.example/witness ")
	if n := strings.Count(out, "witnesses OK: the checkpoint meets the witness policy"); n != 2 {
		t.Fatalf("%d receipts met the policy, want 2:\n%s", n, out)
	}
}

// readmePrologue returns the README walk-through's first three lines
// (build, PATH, scratch directory), which the docs' walk-throughs start
// from.
func readmePrologue(t *testing.T) string {
	t.Helper()
	readme := shBlocks(t, "../../README.md", "## Walk-through")[0]
	prologue := strings.Join(strings.SplitN(readme, "\n", 4)[:3], "\n")
	if !strings.HasPrefix(prologue, "go build -o bin/ ./cmd/...\nexport PATH=") {
		t.Fatalf("the README walk-through no longer starts with the build and PATH lines:\n%s", prologue)
	}
	return prologue
}
