package server_test

import (
	"flag"
	"io"
	"log"
	"os"
	"testing"

	"github.com/go-sql-driver/mysql"
	"k8s.io/klog/v2"

	"github.com/stele-dev/stele/internal/proctest"
)

func TestMain(m *testing.M) {
	// Tessera logs through klog; keep test output to what matters.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Set("logtostderr", "false")
	fs.Set("alsologtostderr", "false")
	fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	// The MySQL driver reports connections the health test cuts on purpose.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	code := m.Run()
	proctest.RemoveBinaries() // crash_test.go's binary
	os.Exit(code)
}
