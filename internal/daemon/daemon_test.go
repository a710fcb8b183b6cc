package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignals: once Signals has returned, a SIGTERM ends the context
// instead of the process.
func TestSignals(t *testing.T) {
	ctx, stop := Signals()
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not end the context")
	}
}

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	log, err := Logger(&b, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("not shown")
	log.Warn("shown", "k", 1)
	if s := b.String(); strings.Contains(s, "not shown") || !strings.Contains(s, `"msg":"shown","k":1`) {
		t.Errorf("log at warn = %q", s)
	}
	if _, err := Logger(&b, "loud"); err == nil || !strings.Contains(err.Error(), `"loud" is not a log level`) {
		t.Errorf("Logger(loud) = %v", err)
	}
}

func TestDialOptions(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	for _, tc := range []struct {
		s    Server
		n    int
		fail string
	}{
		{Server{Address: "127.0.0.1:1"}, 0, ""},
		{Server{Address: "h:1", TokenFile: tok}, 2, ""}, // TLS with the system roots, and the token
		{Server{Address: "h:1", TokenFile: empty}, 0, "is empty"},
		{Server{Address: "h:1", TokenFile: filepath.Join(dir, "missing")}, 0, "token file"},
		{Server{Address: "h:1", CAFile: tok}, 0, "no PEM certificate"},
		{Server{Address: "h:1", CertFile: tok}, 0, "needs both"},
	} {
		opts, err := DialOptions(tc.s)
		switch {
		case tc.fail == "" && (err != nil || len(opts) != tc.n):
			t.Errorf("DialOptions(%+v) = %d options, %v; want %d", tc.s, len(opts), err, tc.n)
		case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
			t.Errorf("DialOptions(%+v) = %v, want an error with %q", tc.s, err, tc.fail)
		}
	}
	if _, err := Dial(Server{}); err == nil {
		t.Error("Dial without an address succeeded")
	}
	c, err := Dial(Server{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestTracingOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	stop, err := Tracing("", "stele-test")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := Tracing("ftp://x", "stele-test"); err == nil {
		t.Error("Tracing accepted an ftp endpoint")
	}
}
