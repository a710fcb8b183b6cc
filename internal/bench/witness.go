package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stele-dev/stele/client"
)

// witnessProc is a real stele-witness process.
type witnessProc struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	stderr *bytes.Buffer
}

func (w *witnessProc) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
	os.RemoveAll(w.dir)
}

// siblingBinary finds a program next to this one or on $PATH, unless path
// is set.
func siblingBinary(path, name string) (string, error) {
	if path != "" {
		return path, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found next to this program or on $PATH: build it (go build -o bin/ ./cmd/...) or pass its path", name)
	}
	return p, nil
}

// startWitnesses starts n stele-witness processes that witness the log
// (origin, vkey) and returns them with a C2SP tlog-policy that needs every
// one of them to cosign (n of n: the most demanding quorum).
func startWitnesses(ctx context.Context, cfg Config, n int, origin, vkey string) ([]*witnessProc, *client.Policy, string, error) {
	bin, err := siblingBinary(cfg.Witness, "stele-witness")
	if err != nil {
		return nil, nil, "", err
	}
	var ws []*witnessProc
	fail := func(err error) ([]*witnessProc, *client.Policy, string, error) {
		for _, w := range ws {
			w.stop()
		}
		return nil, nil, "", err
	}
	var policy strings.Builder
	var names []string
	for i := range n {
		dir, err := os.MkdirTemp(cfg.Dir, "stele-bench-witness-")
		if err != nil {
			return fail(err)
		}
		addr, err := freeAddr()
		if err != nil {
			return fail(err)
		}
		w := &witnessProc{dir: dir, addr: addr, stderr: &bytes.Buffer{}}
		w.cmd = exec.Command(bin, "--data-dir", dir, "--listen", addr, "--name", fmt.Sprintf("w%d.bench.localhost/witness", i))
		w.cmd.Stderr = w.stderr
		if err := w.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return fail(err)
		}
		ws = append(ws, w)
		if err := waitHealthy(ctx, "http://"+addr+"/healthz"); err != nil {
			return fail(fmt.Errorf("stele-witness did not come up: %v\n%s", err, w.stderr))
		}
		if out, err := exec.CommandContext(ctx, bin, "add-log", "--data-dir", dir, "--origin", origin, "--key", vkey).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("stele-witness add-log: %v\n%s", err, out))
		}
		pub, err := os.ReadFile(filepath.Join(dir, "witness.pub"))
		if err != nil {
			return fail(err)
		}
		name := fmt.Sprintf("w%d", i)
		names = append(names, name)
		fmt.Fprintf(&policy, "witness %s %s http://%s/\n", name, strings.TrimSpace(string(pub)), addr)
	}
	fmt.Fprintf(&policy, "group bench %d %s\nquorum bench\n", n, strings.Join(names, " "))
	pol, err := client.ParsePolicy([]byte(policy.String()))
	if err != nil {
		return fail(fmt.Errorf("the witness policy the bench wrote does not parse: %w", err))
	}
	return ws, pol, policy.String(), nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
