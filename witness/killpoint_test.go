package witness

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/proctest"
)

// TestKillBetweenCommitAndReply kills the real binary with SIGKILL at the
// exact point after a new state is durable and before the cosignature is
// sent (held there by the binary's test hook). After a restart the witness
// knows the size it committed, so it never cosigns anything older or
// conflicting, although the client never saw that cosignature.
func TestKillBetweenCommitAndReply(t *testing.T) {
	lg := newTestLog(t, "example.com/killpoint")
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "witness.json")
	raw, _ := json.Marshal(FileConfig{Logs: []LogConfig{lg.config()}})
	if err := os.WriteFile(cfg, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	// Cosign size 3 normally, then hold the commit of size 5.
	addr := proctest.FreeAddr(t)
	logs := &proctest.Buffer{}
	cmd := exec.Command(witnessBinary(t), "--data-dir", dir, "--listen", addr, "--name", "bin.example/w", "--config", cfg)
	cmd.Env = append(os.Environ(), "STELE_WITNESS_TEST_HOLD_AFTER_COMMIT=1h")
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	url := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 2000 {
			t.Fatalf("stele-witness did not come up:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c := &http.Client{Timeout: time.Minute}
		resp, err := c.Post(url+"/add-checkpoint", "", bytes.NewReader(lg.request(t, 0, 5)))
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	for i := 0; !strings.Contains(logs.String(), "holding the reply after commit"); i++ {
		if i > 3000 {
			t.Fatalf("the witness never reached the commit point:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "size=5") {
		t.Fatalf("held at the wrong commit:\n%s", logs)
	}
	cmd.Process.Kill() // SIGKILL between commit and reply
	cmd.Wait()
	if r := <-done; r.err == nil {
		t.Fatalf("the client got status %d from a witness killed before replying", r.status)
	}

	// Restart without the hook: the committed size 5 survived.
	p := startWitnessProc(t, dir, "--config", cfg)
	url = p.url
	r := post(t, url, lg.request(t, 0, 5))
	if r.status != http.StatusConflict || string(r.body) != "5\n" || len(r.ctype) != 1 || r.ctype[0] != "text/x.tlog.size" {
		t.Fatalf("old 0 after restart: %d %q %v, want 409 \"5\\n\" text/x.tlog.size", r.status, r.body, r.ctype)
	}
	if r := post(t, url, lg.request(t, 0, 3)); r.status != http.StatusConflict || string(r.body) != "5\n" {
		t.Fatalf("an older checkpoint after restart: %d %q, want 409 \"5\\n\"", r.status, r.body)
	}
	if r := post(t, url, lg.request(t, 5, 3)); r.status != http.StatusBadRequest {
		t.Fatalf("old 5 size 3: %d %q, want 400", r.status, r.body)
	}
	// The next honest step is cosigned.
	r = post(t, url, lg.request(t, 5, 8))
	if r.status != http.StatusOK {
		t.Fatalf("old 5 size 8: %d %q", r.status, r.body)
	}
	checkCosignature(t, readVKey(t, dir), readMLDSAVKey(t, dir), lg, lg.checkpoint(t, 8), r.body)
	p.stop(t)
}
