//go:build linux

package cli_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/importer/entragen"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

var (
	importGB     = flag.Float64("import-gb", 0, "TestImportLarge: size of the generated Entra export in GB (0: -import-mb)")
	importMB     = flag.Float64("import-mb", 3, "TestImportLarge: size of the generated Entra export in MB, when -import-gb is 0")
	importFormat = flag.String("import-format", "eventhub", "TestImportLarge: container of the export: eventhub, jsonl or graph")
)

// summaryRE matches stele import's summary line.
var summaryRE = regexp.MustCompile(`(?m)^(\d+) records in (\S+) \((\d+) events/s\): (\d+) admitted, (\d+) duplicates, (\d+) rejected$`)

type importStats struct {
	records, rate, admitted, dups, rejected int
	elapsed                                 string
	peakRSS                                 int64 // bytes, of the stele import process
	cpu                                     time.Duration
}

// TestImportLarge generates an Entra export, imports it with the real stele
// binary into a real stele-server over loopback, and imports it again: the
// first run admits every record, the second admits none (all duplicates).
// It logs events/s and the import process's peak RSS; the RSS must stay far
// below the file size (streaming, constant memory). Every imported event's
// raw record is checked (a sample for big runs) to be byte-identical to the
// file's bytes at the position its origin names. CI runs a few MB;
//
//	go test ./internal/cli -run TestImportLarge -import-gb 1 -v -timeout 60m
//
// runs the 1 GB measurement of docs/performance.md.
func TestImportLarge(t *testing.T) {
	size := int64(*importMB * 1e6)
	if *importGB > 0 {
		size = int64(*importGB * 1e9)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "github.com/stele-dev/stele/cmd/stele", "github.com/stele-dev/stele/cmd/stele-server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	export := filepath.Join(dir, "export.json")
	f, err := os.Create(export)
	if err != nil {
		t.Fatal(err)
	}
	n, err := entragen.Write(f, entragen.Container(*importFormat), size)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(export)
	t.Logf("generated %s export: %d records, %d bytes", *importFormat, n, st.Size())

	addr := freeAddr(t)
	srv := exec.Command(filepath.Join(bin, "stele-server"), "--data-dir", filepath.Join(dir, "data"),
		"--grpc-addr", addr, "--http-addr", freeAddr(t), "--checkpoint-interval", "200ms")
	var srvLog bytes.Buffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", srvLog.String())
		}
	}()

	args := []string{"import", "entra", "--server", addr, export}
	if *importFormat == string(entragen.Graph) {
		args = append(args, "--tenant", entragen.Tenant)
	}
	first := runImport(t, filepath.Join(bin, "stele"), args)
	t.Logf("first import: %d records in %s, %d events/s, %d admitted; stele import: peak RSS %.1f MiB, CPU %s",
		first.records, first.elapsed, first.rate, first.admitted, float64(first.peakRSS)/(1<<20), first.cpu.Round(time.Millisecond))
	if first.records != n || first.admitted != n || first.rejected != 0 {
		t.Fatalf("first import: %+v, want all %d records admitted", first, n)
	}
	again := runImport(t, filepath.Join(bin, "stele"), args)
	t.Logf("re-import: %d records in %s, %d events/s, %d admitted, %d duplicates; stele import: peak RSS %.1f MiB, CPU %s",
		again.records, again.elapsed, again.rate, again.admitted, again.dups, float64(again.peakRSS)/(1<<20), again.cpu.Round(time.Millisecond))
	if again.records != n || again.admitted != 0 || again.dups != n || again.rejected != 0 {
		t.Fatalf("re-import: %+v, want all %d records duplicates", again, n)
	}
	// Streaming: memory does not grow with the file. 256 MiB is far above
	// what a few MB or a GB need, and far below a GB held in memory.
	if limit := int64(256 << 20); first.peakRSS > limit || again.peakRSS > limit {
		t.Errorf("peak RSS %d / %d bytes: over %d, the importer is not streaming", first.peakRSS, again.peakRSS, limit)
	}

	checkOrigins(t, addr, export, n)
}

// checkOrigins reads events back over gRPC and checks that each one's raw
// record is the export's bytes at the offset its origin names, and that the
// record number matches.
func checkOrigins(t *testing.T, addr, export string, n int) {
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	file, err := os.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	originRE := regexp.MustCompile(`^file=(\S+) record=(\d+) offset=(\d+)$`)
	step := max(1, n/200)
	seen := map[int]bool{}
	for i := 0; i < n; i += step {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := c.Event(ctx, uint64(i))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var view stelev1.IdentityEvent
		if err := proto.Unmarshal(resp.Normalized, &view); err != nil {
			t.Fatalf("index %d: normalised view: %v", i, err)
		}
		m := originRE.FindStringSubmatch(view.Origin)
		if m == nil || m[1] != export {
			t.Fatalf("index %d: origin %q does not name %s", i, view.Origin, export)
		}
		recNo, _ := strconv.Atoi(m[2])
		off, _ := strconv.ParseInt(m[3], 10, 64)
		if seen[recNo] {
			t.Fatalf("index %d: record %d imported twice", i, recNo)
		}
		seen[recNo] = true
		buf := make([]byte, len(resp.Record))
		if _, err := file.ReadAt(buf, off); err != nil || !bytes.Equal(buf, resp.Record) {
			t.Fatalf("index %d (%s): the stored record is not the file's bytes at offset %d (%v)", i, view.Origin, off, err)
		}
	}
	t.Logf("checked %d stored records byte for byte against the export", len(seen))
}

func runImport(t *testing.T, stele string, args []string) importStats {
	t.Helper()
	cmd := exec.Command(stele, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("stele %v: %v\nstdout:\n%.2000s\nstderr:\n%.2000s", args, err, stdout.String(), stderr.String())
	}
	m := summaryRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no summary in stderr:\n%s", stderr.String())
	}
	var s importStats
	s.records, _ = strconv.Atoi(m[1])
	s.elapsed = m[2]
	s.rate, _ = strconv.Atoi(m[3])
	s.admitted, _ = strconv.Atoi(m[4])
	s.dups, _ = strconv.Atoi(m[5])
	s.rejected, _ = strconv.Atoi(m[6])
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.peakRSS = ru.Maxrss << 10 // Linux reports KiB
	}
	s.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return s
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
