package proctest

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// TestBinary builds a command once: the second call finds the same file
// without building again, and RemoveBinaries takes it away.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/stele-witness")
	}
	p := Binary(t, "stele-witness")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p, "-h").CombinedOutput(); !strings.Contains(string(out), "stele-witness") {
		t.Fatalf("%s -h: %v\n%s", p, err, out)
	}
	if p2 := Binary(t, "stele-witness"); p2 != p {
		t.Fatalf("second call: %s, want %s", p2, p)
	}
	if fi2, err := os.Stat(p); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("built again: %v %v", fi2, err)
	}
	RemoveBinaries()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("after RemoveBinaries: %v", err)
	}
}

// TestFreeAddr: the address is on loopback and can be listened on.
func TestFreeAddr(t *testing.T) {
	a := FreeAddr(t)
	if !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %s", a)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestBuffer: concurrent writes all land (run with -race to check the
// locking).
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes, want 800", n)
	}
}
