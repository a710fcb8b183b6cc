package forwarder_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/forwarder"
	"github.com/stele-dev/stele/forwarder/record"
)

// writeCerts writes a CA and a server certificate for 127.0.0.1 (PEM) to
// dir and returns the CA, certificate and key file names.
func writeCerts(t testing.TB, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stele test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return ca, cert, key
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rsyslogd finds the rsyslog daemon: STELE_TEST_RSYSLOGD (set by
// .ci/services, where its absence is a failure), else PATH or /usr/sbin.
func rsyslogd(t testing.TB) string {
	if p := os.Getenv("STELE_TEST_RSYSLOGD"); p != "" {
		return p
	}
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/rsyslogd"); err == nil {
		return "/usr/sbin/rsyslogd"
	}
	t.Skip("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls; .ci/services does it)")
	return ""
}

// haveRsyslog reports whether rsyslogd can be started (without skipping).
func haveRsyslog() bool {
	if os.Getenv("STELE_TEST_RSYSLOGD") != "" {
		return true
	}
	if _, err := exec.LookPath("rsyslogd"); err == nil {
		return true
	}
	_, err := os.Stat("/usr/sbin/rsyslogd")
	return err == nil
}

// startRsyslog starts a real rsyslogd receiving RFC 5425 (TLS, GnuTLS
// driver) on a free loopback port and writing every message, in RFC 5424
// form, to a file. It returns the address, the CA file and the output file.
func startRsyslog(t testing.TB) (addr, ca, out string) {
	t.Helper()
	bin := rsyslogd(t)
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	port := freePort(t)
	out = filepath.Join(dir, "received.log")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="4m"
  DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile=%q
  DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d")
action(type="omfile" file=%q template="RSYSLOG_SyslogProtocol23Format")
`, dir, ca, cert, key, port, out)
	cf := filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(cf, []byte(conf), 0o600)
	if b, err := exec.Command(bin, "-N1", "-f", cf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd rejects the test config: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("rsyslogd did not listen on %s: %s", addr, logb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return addr, ca, out
}

// readSyslog reads the messages rsyslog stored, one per line, waiting
// until there are want of them.
func readSyslog(t testing.TB, path string, want int, wait time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var lines []string
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 16<<20)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			f.Close()
		}
		if len(lines) >= want || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSyslogRsyslog forwards a real log to a real rsyslogd over RFC 5425
// TLS: rsyslog parses every message as RFC 5424 (its stored form keeps
// PRI, APP-NAME, MSGID and the structured data), and every stored line
// verifies with `stele verify` as rsyslog wrote it.
func TestSyslogRsyslog(t *testing.T) {
	addr, ca, out := startRsyslog(t)
	l := startLog(t)
	idx := l.appendAll(t, goldenEvents(t, 30))
	total := slices.Max(idx) + 1
	settings, _ := json.Marshal(map[string]any{"address": addr, "tls": map[string]any{"ca_file": ca}, "hostname": "fwd-test"})
	cfg := l.config(t, t.TempDir(), forwarder.SinkConfig{Name: "syslog", Type: "syslog", Settings: settings})
	f, stop := l.runForwarder(t, cfg)
	waitDelivered(t, f, total, time.Minute)
	stop()
	lines := readSyslog(t, out, int(total), 30*time.Second)
	if uint64(len(lines)) != total {
		t.Fatalf("rsyslog stored %d messages for %d entries", len(lines), total)
	}
	for i, line := range lines {
		// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG
		if !strings.HasPrefix(line, "<109>1 ") || !strings.Contains(line, " fwd-test stele - event [stele@32473 ") ||
			!strings.Contains(line, fmt.Sprintf(` index="%d"`, i)) {
			t.Fatalf("message %d as rsyslog stored it: %.300s", i, line)
		}
		doc, err := record.Find([]byte(line))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		v, err := record.Verify(doc, l.verifier, nil)
		if err != nil || v.Doc.Index != uint64(i) {
			t.Fatalf("message %d: entry %v, %v", i, v, err)
		}
	}
	p := filepath.Join(t.TempDir(), "line.txt")
	os.WriteFile(p, []byte(lines[3]), 0o600)
	if code, o, e := runCLI("verify", "--log-key", l.keyFile, p); code != 0 || !strings.Contains(o, "record OK") {
		t.Fatalf("stele verify of a line rsyslog stored: exit %d\n%s%s", code, o, e)
	}
}
