// Package proctest helps the tests that run Stele's binaries as real
// processes: it builds the commands once per test process, finds free
// loopback addresses for them to listen on, and collects their output
// while the test reads it. It is test support: nothing in a binary uses it.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	binDir string
	built  = map[string]error{}
)

// Binary builds the module's command cmd/name, once per test process, and
// returns the path of the binary. A package's TestMain calls
// RemoveBinaries after m.Run.
func Binary(t testing.TB, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	err, ok := built[name]
	if !ok {
		err = build(name)
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

func build(name string) error {
	if binDir == "" {
		dir, err := os.MkdirTemp("", "stele-bin")
		if err != nil {
			return err
		}
		binDir = dir
	}
	out, err := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "github.com/stele-dev/stele/cmd/"+name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build cmd/%s: %v\n%s", name, err, out)
	}
	return nil
}

// RemoveBinaries removes what Binary built.
func RemoveBinaries() {
	mu.Lock()
	defer mu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	binDir, built = "", map[string]error{}
}

// FreeAddr returns a loopback address, 127.0.0.1:PORT, that was free when
// asked, for a process to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Buffer collects a child process's output (its Stdout or Stderr) while
// the test reads it: Write and String may run at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
