package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/internal/durable"
	"github.com/stele-dev/stele/internal/headless"
	"github.com/stele-dev/stele/internal/logkey"
	"github.com/stele-dev/stele/report"
)

// parsePeriodTime reads --from/--to: RFC 3339, or a date (midnight UTC).
func parsePeriodTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, usagef("--%s is required (RFC 3339, e.g. 2026-11-01T00:00:00Z, or a date 2026-11-01)", flag)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--%s %q is neither RFC 3339 (2026-11-01T00:00:00Z) nor a date (2026-11-01)", flag, s)
}

func cmdReport(e *env, args []string) error {
	fs := newFlags("report")
	logURL := fs.String("log", "", "root URL of the log's tlog-tiles HTTP API, e.g. http://127.0.0.1:7401/")
	keyPath := fs.String("log-key", "", "the log's verifier key file (log.pub)")
	policyPath := fs.String("policy", "", "the C2SP tlog-policy in force: its witnesses are listed and its quorum required")
	fromS := fs.String("from", "", "start of the period (RFC 3339 or YYYY-MM-DD, UTC), by admission time")
	toS := fs.String("to", "", "end of the period, excluded")
	out := fs.String("out", "", "directory to write report.json, report.html, report.pdf and report.sig to")
	cpDir := fs.String("checkpoints", "", "directory of the checkpoints the reporter saw (one signed checkpoint per file); the log's latest is added to it")
	keyFile := fs.String("signing-key", "", "the operator's signed-note signer key that seals the report; created (mode 0600, with FILE.pub) when absent")
	keyName := fs.String("signing-key-name", "stele-report-operator", "the key name of a --signing-key created now")
	pdf := fs.String("pdf", "auto", "auto: a PDF when Chromium is installed; on: require one; off: none")
	server := fs.String("server", "", "a Stele server (host:port, reader role): read erasure reasons and check every payload against its leaf")
	workers := fs.Int("workers", 4, "parallel fetches")
	driftPath := fs.String("drift", "", "the output of `stele drift --json` to report: its findings, with each cited event's receipt checked")
	alertsPath := fs.String("monitor-alerts", "", "the alerts `stele monitor` wrote (JSON lines): those raised in the period are reported")
	conn := addConnFlags(fs)
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	switch {
	case *logURL == "":
		return usagef("--log URL is required")
	case *keyPath == "":
		return usagef("--log-key FILE is required")
	case *out == "":
		return usagef("--out DIR is required")
	case *keyFile == "":
		return usagef("--signing-key FILE is required: the operator key that seals the report (created if absent)")
	case *pdf != "auto" && *pdf != "on" && *pdf != "off":
		return usagef("--pdf must be auto, on or off, got %q", *pdf)
	case *workers < 1:
		return usagef("--workers must be at least 1")
	}
	from, err := parsePeriodTime("from", *fromS)
	if err != nil {
		return err
	}
	to, err := parsePeriodTime("to", *toS)
	if err != nil {
		return err
	}
	if !to.After(from) {
		return usagef("--to must be after --from")
	}
	signer, vkey, err := reportSigner(e, *keyFile, *keyName)
	if err != nil {
		return err
	}
	vk, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	cfg := report.Config{LogURL: *logURL, VerifierKey: strings.TrimSpace(string(vk)), From: from, To: to, Workers: *workers}
	if *policyPath != "" {
		if cfg.PolicyText, err = os.ReadFile(*policyPath); err != nil {
			return err
		}
	}
	if *cpDir != "" {
		if cfg.Checkpoints, err = readCheckpointDir(*cpDir); err != nil {
			return err
		}
	}
	if *driftPath != "" {
		if cfg.Drift, err = os.ReadFile(*driftPath); err != nil {
			return err
		}
	}
	if *alertsPath != "" {
		if cfg.MonitorAlerts, err = os.ReadFile(*alertsPath); err != nil {
			return err
		}
		if cfg.MonitorAlerts == nil {
			cfg.MonitorAlerts = []byte{}
		}
	}
	if *server != "" {
		c, err := conn.dial(*server)
		if err != nil {
			return err
		}
		defer c.Close()
		cfg.Payloads = payloadFetcher(c)
		cfg.Erasures = func(ctx context.Context, index uint64) ([]byte, []byte, error) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			ev, err := c.Event(ctx, index)
			if err != nil {
				return nil, nil, rpcError(err)
			}
			return ev.Salt, ev.Payload, nil
		}
	}
	chromium := ""
	if *pdf != "off" {
		chromium = headless.Find()
		if chromium == "" && *pdf == "on" {
			return errors.New("--pdf on: no Chromium found (install Debian's chromium, or set $STELE_CHROMIUM)")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := report.Build(ctx, cfg)
	if err != nil {
		return err
	}
	if *cpDir != "" {
		if err := saveCheckpoint(*cpDir, r); err != nil {
			return err
		}
	}
	if err := report.Write(ctx, r, *out, chromium); err != nil {
		return err
	}
	if err := report.Seal(*out, signer); err != nil {
		return err
	}
	files := "report.json, report.html"
	if chromium != "" {
		files += ", report.pdf"
	}
	ev, ex := 0, 0
	for _, c := range r.Controls {
		switch c.Status {
		case report.Evidenced:
			ev++
		case report.Exception:
			ex++
		}
	}
	fmt.Fprintf(e.stdout, "report for %s, %s to %s: %d entries, %d checkpoints seen, %d of %d controls evidenced, %d with exceptions\n",
		r.Log.Origin, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), r.Entries.Count, len(r.Checkpoints), ev, len(r.Controls), ex)
	fmt.Fprintf(e.stdout, "wrote %s and report.sig to %s (seal key %s)\n", files, *out, vkey)
	if ex > 0 {
		fmt.Fprintf(e.stderr, "report: %d control(s) show an exception: see the controls section\n", ex)
		return errFailed
	}
	return nil
}

// reportSigner loads the operator's signer key, creating it (and
// FILE.pub) when absent.
func reportSigner(e *env, path, name string) (note.Signer, string, error) {
	created := false
	skey, err := durable.ReadOrCreateSecret(path, "report signing key", func() (string, error) {
		created = true
		sk, _, err := note.GenerateKey(rand.Reader, name)
		return sk, err
	})
	if err != nil {
		return nil, "", err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s is not a signed-note signer key (PRIVATE+KEY+name+hash+key): %v", path, err)
	}
	vkey, err := logkey.VerifierKey(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", path, err)
	}
	if created {
		if err := durable.WriteAtomic(path+".pub", []byte(vkey+"\n"), 0o644); err != nil {
			return nil, "", err
		}
		fmt.Fprintf(e.stderr, "report: created the operator signing key %s; give auditors %s.pub\n", path, path)
	}
	return signer, vkey, nil
}

// readCheckpointDir reads every regular file of dir as a checkpoint.
func readCheckpointDir(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, d := range ents {
		if !d.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, d.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// saveCheckpoint keeps the log's latest checkpoint in the reporter's
// directory, so the next period's report starts from it.
func saveCheckpoint(dir string, r *report.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("%d-%s.checkpoint", r.Log.LatestSize, r.Log.LatestRoot[:16])
	return durable.WriteAtomic(filepath.Join(dir, name), []byte(r.Log.LatestCheckpoint), 0o644)
}

func cmdVerifyReport(e *env, args []string) error {
	fs := newFlags("verify-report")
	keyPath := fs.String("key", "", "the operator's verifier key file (the signing key's .pub)")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one report DIR, got %d", len(pos))
	}
	if *keyPath == "" {
		return usagef("--key FILE is required")
	}
	v, err := logkey.ReadVerifier(*keyPath)
	if err != nil {
		return err
	}
	names, err := report.VerifyDir(pos[0], v)
	if err != nil {
		fmt.Fprintf(e.stderr, "report verification FAILED: %v\n", err)
		return errFailed
	}
	fmt.Fprintf(e.stdout, "report OK: %s sealed by %s\n", strings.Join(names, ", "), v.Name())
	return nil
}
