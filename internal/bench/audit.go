package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/audit"
	"github.com/stele-dev/stele/internal/tiles"
)

// auditDuration is the least time each audit measurement runs: the bench's
// log is small, so the audit is repeated until this much time has passed;
// auditPasses is how many measurements of each way are made.
var auditDuration = 700 * time.Millisecond

const auditPasses = 5

// Audit is a full audit (every entry bundle read, every leaf parsed and
// checked, the tree rebuilt to the checkpoint's root) of the log Stele just
// ingested, three ways in the same run.
type Audit struct {
	// AloneEntriesPerSec: the audit library reading the server's log
	// directory through internal/tiles in this process (no server process in
	// the way): the ceiling the server is measured against.
	AloneEntriesPerSec float64 `json:"alone_entries_per_sec"`
	// ServerEntriesPerSec: `stele audit`'s own client (identity encoding)
	// against the running stele-server's HTTP port.
	ServerEntriesPerSec float64 `json:"server_entries_per_sec"`
	// ServerGzipEntriesPerSec: the same with a client that asks for gzip
	// (Go's default transport), so entry bundles come compressed.
	ServerGzipEntriesPerSec float64 `json:"server_gzip_entries_per_sec"`
	// Ratio is ServerEntriesPerSec / AloneEntriesPerSec.
	Ratio float64 `json:"ratio_server_over_alone"`
	// ClientCPUNsPerEntry and ServerCPUNsPerEntry: CPU nanoseconds per
	// entry audited through the server (identity encoding), of this
	// process (the audit) and of the stele-server process (serving it);
	// together, what one entry costs the machine.
	ClientCPUNsPerEntry float64 `json:"client_cpu_ns_per_entry"`
	ServerCPUNsPerEntry float64 `json:"server_cpu_ns_per_entry"`
}

// auditSide audits the server's log in-process, through the server, and
// through the server with gzip. The three alternate, auditPasses times each,
// and each reports its median, so that a burst of load elsewhere on the
// machine does not land on one of them only.
func auditSide(ctx context.Context, srv *serverProc) (Audit, error) {
	v, err := note.NewVerifier(srv.vkey)
	if err != nil {
		return Audit{}, err
	}
	local := httptest.NewServer(tiles.NewHandler(tiles.DirReader(filepath.Join(srv.dir, "log"))))
	defer local.Close()
	url := "http://" + srv.httpAddr + "/"
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	gz := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	ways := []struct {
		name string
		url  string
		hc   *http.Client
	}{
		{"in process", local.URL + "/", nil},
		{"through the server", url, nil},
		{"through the server with gzip", url, gz},
	}
	rates := make([][]float64, len(ways))
	var entries uint64
	var clientCPU, serverCPU float64
	for range auditPasses {
		for i, w := range ways {
			c0, s0, err := auditCPU(srv)
			if err != nil {
				return Audit{}, err
			}
			r, n, err := auditRate(ctx, w.url, v, w.hc)
			if err != nil {
				return Audit{}, fmt.Errorf("audit %s: %w", w.name, err)
			}
			rates[i] = append(rates[i], r)
			if i == 1 {
				c1, s1, err := auditCPU(srv)
				if err != nil {
					return Audit{}, err
				}
				entries += n
				clientCPU += c1 - c0
				serverCPU += s1 - s0
			}
		}
	}
	med := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	a := Audit{AloneEntriesPerSec: med(rates[0]), ServerEntriesPerSec: med(rates[1]), ServerGzipEntriesPerSec: med(rates[2])}
	a.Ratio = a.ServerEntriesPerSec / a.AloneEntriesPerSec
	a.ClientCPUNsPerEntry = clientCPU * 1e9 / float64(entries)
	a.ServerCPUNsPerEntry = serverCPU * 1e9 / float64(entries)
	return a, nil
}

// auditCPU returns the CPU seconds used so far by this process and by the
// server's.
func auditCPU(srv *serverProc) (client, server float64, err error) {
	server, err = procCPU(srv.pid())
	return selfCPU(), server, err
}

// auditRate audits the log at url from the start, again and again for at
// least auditDuration, and returns the entries read per second of audit
// and the entries read.
func auditRate(ctx context.Context, url string, v note.Verifier, hc *http.Client) (float64, uint64, error) {
	var entries uint64
	var secs float64
	for secs < auditDuration.Seconds() {
		rep, _, err := audit.Run(ctx, audit.Config{LogURL: url, Verifier: v, HTTPClient: hc})
		if err != nil {
			return 0, 0, err
		}
		if !rep.OK() || rep.EntriesRead == 0 {
			return 0, 0, fmt.Errorf("audit did not pass: %d failures, %d findings, %d entries", rep.FailureCount, rep.FindingCount, rep.EntriesRead)
		}
		entries += rep.EntriesRead
		secs += rep.Seconds
	}
	return float64(entries) / secs, entries, nil
}
