package report_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/proctest"
)

// TestAuditorWalkthrough runs docs/auditor.md's walk-through as written
// (with free ports for 7400 and 7401) against freshly built binaries.
func TestAuditorWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "date", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPING: the walk-through needs %s", tool)
		}
	}
	doc, err := os.ReadFile("../docs/auditor.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- walkthrough -->\n```sh\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/auditor.md has no walk-through block")
	}
	script := strings.NewReplacer("127.0.0.1:7400", proctest.FreeAddr(t), "127.0.0.1:7401", proctest.FreeAddr(t)).Replace(string(m[1]))

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "../cmd/stele", "../cmd/stele-server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the server, if the script stopped early
	if err != nil {
		serverLog, _ := os.ReadFile(filepath.Join(work, "server.log"))
		t.Fatalf("walk-through failed: %v\n%s\nserver log:\n%s", err, out.String(), serverLog)
	}
	for _, want := range []string{"1 admitted", "report OK: report.json, report.html", "report.json was changed after it was sealed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, out.String())
		}
	}
}
