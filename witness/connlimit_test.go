package witness

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/internal/connlimit/connlimittest"
)

// TestIdleConnectionsClosed runs the real stele-witness with short
// connection limits and holds connections open against it: silent ones
// and keep-alive ones left idle. It never holds more than --max-conns,
// closes them all, and keeps cosigning for a log that pushes meanwhile.
func TestIdleConnectionsClosed(t *testing.T) {
	const maxConns = 8
	lg := newTestLog(t, "example.com/conns")
	cfg := writeConfig(t, lg)
	p := startWitnessProc(t, t.TempDir(), "--config", cfg, "--header-timeout", "1s", "--idle-timeout", "2s", "--max-conns", fmt.Sprint(maxConns))
	addr := strings.TrimPrefix(p.url, "http://")
	base := connlimittest.FDs(t, p.cmd.Process.Pid)

	held := connlimittest.New(t)
	held.KeepAlive(addr, "/healthz", maxConns/2)
	held.Silent(addr, 60)
	if n := connlimittest.FDs(t, p.cmd.Process.Pid) - base; n > maxConns+2 {
		t.Fatalf("the witness holds %d more descriptors than at start with %d connections held against it, want at most --max-conns %d", n, len(held.Conns), maxConns)
	}
	start := time.Now()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post(p.url+"/add-checkpoint", "", strings.NewReader(string(lg.request(t, 0, 5))))
	if err != nil {
		t.Fatalf("add-checkpoint while connections are held: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("add-checkpoint: %s", resp.Status)
	}
	t.Logf("add-checkpoint waited %v behind %d held connections", time.Since(start), len(held.Conns))
	held.WaitClosed(30 * time.Second)
	c.CloseIdleConnections()
}
