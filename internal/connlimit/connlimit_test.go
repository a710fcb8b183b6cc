package connlimit

import (
	"net"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	d := Limits{}.WithDefaults()
	if d.HeaderTimeout != DefaultHeaderTimeout || d.IdleTimeout != DefaultIdleTimeout || d.MaxConns != DefaultMaxConns {
		t.Fatalf("defaults %+v", d)
	}
	l := Limits{HeaderTimeout: time.Minute, IdleTimeout: time.Second, MaxConns: 3}
	s := l.HTTPServer(nil)
	if s.ReadHeaderTimeout != time.Minute || s.ReadTimeout != time.Minute || s.IdleTimeout != time.Second || s.WriteTimeout != WriteTimeout || s.MaxHeaderBytes != MaxHeaderBytes {
		t.Fatalf("http.Server %+v", s)
	}
	if len(l.GRPCOptions()) != 3 {
		t.Fatal("gRPC options")
	}
	for _, bad := range []Limits{{HeaderTimeout: -1}, {IdleTimeout: -1}, {MaxConns: -1}} {
		if bad.Check() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if l.Check() != nil {
		t.Fatal(l.Check())
	}

	// The cap: the fourth connection waits until one closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	capped := l.Listener(ln)
	defer capped.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := capped.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 4 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	var got []net.Conn
	for range 3 {
		got = append(got, <-accepted)
	}
	select {
	case <-accepted:
		t.Fatal("a fourth connection was accepted over the cap of 3")
	case <-time.After(200 * time.Millisecond):
	}
	got[0].Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting connection was not accepted once one closed")
	}
	for _, c := range got[1:] {
		c.Close()
	}
}
