package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc/connectivity"
)

// DefaultConnectWait is how long a command waits for a server that does not
// answer before saying so: long enough for a server that is starting, short
// enough that a wrong address is reported at once.
const DefaultConnectWait = 4 * time.Second

// GRPCAddrHeader is the HTTP response header in which stele-server names
// its gRPC address, so that a client pointed at the wrong port can say
// which one to use.
const GRPCAddrHeader = "Stele-Grpc-Addr"

// Connect waits, at most wait, until the connection to the server is ready.
// A server that refuses connections may be starting, so it is tried again
// (about every second) until then. Failing, it returns an *UnreachableError
// that names the address and says what, if anything, answered there: nothing,
// or an HTTP server (the tlog-tiles port rather than the gRPC one).
func (c *Client) Connect(ctx context.Context, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c.conn.Connect()
	for {
		s := c.conn.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !c.conn.WaitForStateChange(ctx, s) {
			return &UnreachableError{URL: c.target, Err: errors.New(Diagnose(c.target, wait))}
		}
	}
}

// Diagnose says why no gRPC server answered at addr (host:port) within
// wait: nothing listens there, or what listens speaks HTTP/1 (Stele's
// tlog-tiles port, whose gRPC neighbour it names).
func Diagnose(addr string, wait time.Duration) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Sprintf("nothing is listening there (connection refused); is stele-server running, and is its --grpc-addr %s?", addr)
		}
		return fmt.Sprintf("cannot connect: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr)
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		resp.Body.Close()
		if g := resp.Header.Get(GRPCAddrHeader); g != "" {
			if h, p, err := net.SplitHostPort(g); err == nil {
				if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
					host, _, _ := net.SplitHostPort(addr)
					g = net.JoinHostPort(host, p) // it listens on every address
				}
			}
			return fmt.Sprintf("it answers HTTP/1, not gRPC: this is the HTTP (tlog-tiles) port; gRPC is on %s", g)
		}
		return fmt.Sprintf("it answers HTTP/1, not gRPC: this looks like the HTTP (tlog-tiles) port; gRPC is on stele-server's --grpc-addr (by default the port before HTTP's: try --server %s)", neighbour(addr, -1))
	}
	return fmt.Sprintf("something accepts connections there but no gRPC server answered within %s (a TLS server without --tls-ca, or another protocol?)", wait)
}

// neighbour is addr with its port moved by d: Stele's defaults put HTTP on
// the port after gRPC's (7400, 7401).
func neighbour(addr string, d int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	p, err := strconv.Atoi(port)
	if err != nil || p+d <= 0 || p+d > 65535 {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(p+d))
}
