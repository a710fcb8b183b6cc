package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times (100 on
// every mainstream Linux build).
const clockTicks = 100

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func selfPeakRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

// procCPU returns the user+system CPU seconds of a process.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: split after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/pid/stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields after the name: state(0) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/pid/stat format")
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc/pid/stat format")
	}
	return (u + s) / clockTicks, nil
}

// procPeakRSSMiB returns a process's peak resident set size (VmHWM).
func procPeakRSSMiB(pid int) (float64, error) { return procRSSMiB(pid, "VmHWM:") }

// procRSSMiB returns a memory field of /proc/<pid>/status in MiB: "VmRSS:"
// (resident now) or "VmHWM:" (peak).
func procRSSMiB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s %q: %w", field, v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// benchOrigin is the checkpoint origin of the benchmarked log.
const benchOrigin = "bench.localhost/log"

type serverProc struct {
	cmd       *exec.Cmd
	dir       string
	grpcAddr  string
	httpAddr  string
	vkey      string
	stderr    *bytes.Buffer
	witnesses []*witnessProc
	policy    *client.Policy // nil without witnesses
	cleanup   func()         // drops an aws backend's database; nil on posix
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

func (p *serverProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	os.RemoveAll(p.dir)
	for _, w := range p.witnesses {
		w.stop()
	}
	if p.cleanup != nil {
		p.cleanup()
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startServer(ctx context.Context, cfg Config) (*serverProc, error) {
	bin, err := siblingBinary(cfg.Server, "stele-server")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.Dir, "stele-bench-server-")
	if err != nil {
		return nil, err
	}
	args := []string{"--data-dir", dir, "--origin", benchOrigin, "--checkpoint-interval", cfg.Interval.String()}
	var ws []*witnessProc
	var pol *client.Policy
	if cfg.Witnesses > 0 {
		// The witnesses must know the log's key before its first checkpoint.
		key, err := logkey.LoadOrCreate(dir, benchOrigin, benchOrigin, logkey.MLDSAAuto)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		var text string
		ws, pol, text, err = startWitnesses(ctx, cfg, cfg.Witnesses, benchOrigin, key.VKey)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		path := filepath.Join(dir, "witness-policy")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, "--witness-policy", path)
	}
	g, err := freeAddr()
	if err != nil {
		return nil, err
	}
	h, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &serverProc{dir: dir, grpcAddr: g, httpAddr: h, stderr: &bytes.Buffer{}, witnesses: ws, policy: pol}
	if cfg.Backend == BackendAWS {
		aws, drop, err := awsServerArgs(ctx)
		if err != nil {
			os.RemoveAll(dir)
			for _, w := range ws {
				w.stop()
			}
			return nil, err
		}
		args, p.cleanup = append(args, aws...), drop
	}
	p.cmd = exec.Command(bin, append(args, "--grpc-addr", g, "--http-addr", h)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		for _, w := range ws {
			w.stop()
		}
		if p.cleanup != nil {
			p.cleanup()
		}
		return nil, err
	}
	c, err := client.Dial(g)
	if err != nil {
		p.stop()
		return nil, err
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// Up once it serves a checkpoint; on aws the first one takes a moment
	// after the listeners open (Unavailable until then).
	for {
		_, err := c.Log.GetCheckpoint(wctx, &stelev1.GetCheckpointRequest{}, grpc.WaitForReady(true))
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || wctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("stele-server did not come up: %v\n%s", err, p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "log.pub"))
	if err != nil {
		p.stop()
		return nil, err
	}
	// log.pub's first line is the Ed25519 key; a second, the ML-DSA-44 one.
	p.vkey, _, _ = strings.Cut(strings.TrimSpace(string(pub)), "\n")
	return p, nil
}
