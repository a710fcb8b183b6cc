package main

import (
	"strings"
	"testing"
)

// TestRotationWalkthrough runs docs/operations.md's rotation walk-through
// (a log frozen and continued by a successor, every consumer following),
// after the README's first three lines (build, PATH, scratch directory).
func TestRotationWalkthrough(t *testing.T) {
	readme := shBlocks(t, "../../README.md", "## Walk-through")[0]
	prologue := strings.Join(strings.SplitN(readme, "\n", 4)[:3], "\n")
	out := runDocScript(t, prologue+"\n"+strings.Join(shBlocks(t, "../../docs/operations.md", "## Rotating to a new log (freezing and temporal sharding)"), "\n"))
	mustContain(t, out,
		"its successor is log audit.example.org/2026b at http://127.0.0.1:7411/",
		"receipt OK: entry 0 ", "witnesses OK: the checkpoint meets the witness policy",
		"log frozen: log audit.example.org/2026a is frozen at size 1",
		"audit OK: audit.example.org/2026a verified at size 1",
		"audit OK: audit.example.org/2026b verified at size 1",
		`"type":"log_frozen"`,
		"monitor: audit.example.org/2026b verified at size 1",
		"mirrored audit.example.org/2026a at size 1 into mirror-a",
		"log frozen: log audit.example.org/2026a is frozen at size 1",
		`"mode":"frozen"`, `"frozen_size":1`, `"successor":"audit.example.org/2026b"`)
}
