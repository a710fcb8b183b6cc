// Package connlimittest holds connections open against a server the way
// an attacker would, for tests of connection limits against real binaries.
package connlimittest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// Held are connections a test holds open.
type Held struct {
	t     testing.TB
	Conns []net.Conn
}

// New returns an empty set; its connections are closed when the test ends.
func New(t testing.TB) *Held { return &Held{t: t} }

func (h *Held) dial(addr string) net.Conn {
	h.t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	h.Conns = append(h.Conns, c)
	return c
}

// Silent opens n connections to addr that never send a byte.
func (h *Held) Silent(addr string, n int) {
	h.t.Helper()
	for range n {
		h.dial(addr)
	}
}

// KeepAlive opens n HTTP/1.1 connections to addr, reads path once on
// each (expecting 200 and a keep-alive answer) and leaves them idle.
func (h *Held) KeepAlive(addr, path string, n int) {
	h.t.Helper()
	for range n {
		c := h.dial(addr)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			h.t.Fatalf("GET %s on a keep-alive connection: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			h.t.Fatalf("GET %s on a keep-alive connection: %s, close %v", path, resp.Status, resp.Close)
		}
	}
}

// WaitClosed fails the test unless the server closes every held
// connection (EOF or reset) within d.
func (h *Held) WaitClosed(d time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for i, c := range h.Conns {
		c.SetReadDeadline(deadline)
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			h.t.Fatalf("held connection %d (of %d) still open after %v", i, len(h.Conns), d)
		}
	}
}

// FDs counts the open descriptors of process pid (Linux /proc).
func FDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
