package collector_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/proctest"
)

// selfSigned makes a TLS certificate for 127.0.0.1 and writes it as a CA
// file.
func selfSigned(t testing.TB) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stele-test-broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

// eventHub is a Kafka-protocol broker (franz-go's kfake) set up as Event
// Hubs' Kafka endpoint is: TLS, SASL PLAIN with "$ConnectionString".
type eventHub struct {
	cluster *kfake.Cluster
	ca      string
	connStr string
	connEnv string // the environment variable holding connStr
	topic   string
	prod    *kgo.Client
	gen     *entraGen
	wanted  map[string][]byte
}

func newEventHub(t testing.TB) *eventHub {
	t.Helper()
	cert, ca := selfSigned(t)
	topic := "insights-logs-auditlogs"
	cs := "Endpoint=sb://stele-test.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c3RlbGUtdGVzdC1rZXk=;EntityPath=" + topic
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic), kfake.EnableSASL(), kfake.GroupMinSessionTimeout(500*time.Millisecond),
		kfake.Superuser("PLAIN", "$ConnectionString", cs), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(b)
	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(plain.Auth{User: "$ConnectionString", Pass: cs}.AsMechanism()), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &eventHub{cluster: cluster, ca: ca, connStr: cs, connEnv: secretEnv(cs), topic: topic, prod: prod, gen: newEntraGen(t), wanted: map[string][]byte{}}
}

// message sends one Event Hub message of n records, as a diagnostic
// setting writes them: {"records": [ … ]}.
func (h *eventHub) message(t testing.TB, n int) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"records": [`)
	for i := range n {
		kind := "audit"
		if i%2 == 1 {
			kind = "signin"
		}
		id, rec := h.gen.record(kind)
		h.wanted[id] = rec
		if i > 0 {
			b.WriteString(",\n")
		}
		b.Write(rec)
	}
	b.WriteString("]}")
	h.produce(t, b.Bytes())
}

func (h *eventHub) produce(t testing.TB, v []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.prod.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// ehConfig is a collector of h. The kill tests' group timeouts are short
// (a killed member holds its partitions until they pass); the others use
// Event Hubs' documented minimum session timeout, which a loaded machine's
// heartbeats keep.
func ehConfig(ts *testServer, stateDir string, h *eventHub) string {
	return ehConfigTimeouts(ts, stateDir, h, "6s", "10s")
}

func ehConfigTimeouts(ts *testServer, stateDir string, h *eventHub, session, rebalance string) string {
	return fmt.Sprintf(`{
  "server": {"address": %q},
  "state_dir": %q,
  "listen": "-",
  "sources": [{"name": "entra-eventhub", "entra_eventhub": {
    "brokers": [%q], "connection_string_env": %q, "consumer_group": "stele",
    "tls_ca": %q, "session_timeout": %q, "rebalance_timeout": %q}}]
}`, ts.addr, stateDir, h.cluster.ListenAddrs()[0], h.connEnv, h.ca, session, rebalance)
}

// TestEventHubEndToEnd consumes Event Hub messages over a TLS + SASL PLAIN
// Kafka endpoint, a malformed message among them, into a real stele-server;
// a restart resumes from the committed offsets.
func TestEventHubEndToEnd(t *testing.T) {
	t.Parallel()
	ts := startServer(t, t.TempDir(), "")
	h := newEventHub(t)
	for i := range 20 {
		h.message(t, 1+i%7)
	}
	h.produce(t, []byte("this is not JSON"))
	h.message(t, 300) // two messages: over one batch
	h.message(t, 300)
	cfg := writeConfig(t, t.TempDir(), ehConfig(ts, t.TempDir(), h))
	c, stop := runCollector(t, cfg, ts.cli)
	l := newLogged()
	l.waitFor(t, ts.cli, len(h.wanted), time.Minute)
	for range 10 {
		h.message(t, 3)
	}
	l.waitFor(t, ts.cli, len(h.wanted), time.Minute)
	st := statusOf(c)
	if st.Events["malformed"] != 1 || st.Events["admitted"] != uint64(len(h.wanted)) || st.Events["duplicate"] != 0 {
		t.Errorf("events by outcome = %v, want 1 malformed, %d admitted, no duplicates", st.Events, len(h.wanted))
	}
	stop()

	c, stop = runCollector(t, cfg, ts.cli)
	h.message(t, 9)
	l.waitFor(t, ts.cli, len(h.wanted), time.Minute)
	time.Sleep(300 * time.Millisecond)
	if st := statusOf(c); st.Events["admitted"] != 9 || st.Events["duplicate"] != 0 || st.Events["malformed"] != 0 {
		t.Errorf("after a restart: events by outcome = %v, want 9 admitted, nothing read twice", st.Events)
	}
	if !strings.Contains(string(st.Cursor), `"committed"`) {
		t.Errorf("the cursor shows no committed offsets: %s", st.Cursor)
	}
	stop()
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, h.wanted)
}

type ehFeed struct {
	t    testing.TB
	h    *eventHub
	left int
}

func (f *ehFeed) step(t testing.TB) bool {
	if f.left == 0 {
		return false
	}
	n := min(f.left, 1+mrand.IntN(30))
	f.left -= n
	f.h.message(t, n)
	return true
}

func (f *ehFeed) want() map[string][]byte { return f.h.wanted }

// TestCrashEventHub SIGKILLs the collector while messages arrive.
func TestCrashEventHub(t *testing.T) {
	// Not parallel: the group's 2 s session has to survive the kill
	// cycles, and with the package's other tests beside it on a 2-core
	// machine the last member once never got its partitions (CI, Dec 6).
	ts := startServer(t, t.TempDir(), "")
	h := newEventHub(t)
	// 2 s: short, so that a killed member's partitions move soon, but
	// kept by heartbeats when the tests beside it load the machine (1 s
	// was not: the group churned without consuming).
	cfg := writeConfig(t, t.TempDir(), ehConfigTimeouts(ts, t.TempDir(), h, "2s", "4s"))
	torture(t, ts, cfg, &ehFeed{h: h, left: 400*cycles() + 200})
}

// TestEventHubRebalance runs two collectors in one consumer group while
// messages arrive, the second joining while the log server is down for
// longer than the group's rebalance timeout: the first, holding a batch it
// cannot deliver, is dropped from the group and its commit refused. Every
// record is in the log exactly once, and a refused commit is not a source
// error (it used to tear the Kafka client down and pay the error pause).
func TestEventHubRebalance(t *testing.T) {
	t.Parallel()
	ts := startServer(t, t.TempDir(), "")
	h := newEventHub(t)
	cfg := writeConfig(t, t.TempDir(), ehConfigTimeouts(ts, t.TempDir(), h, "6s", "1s"))
	cfg2 := writeConfig(t, t.TempDir(), ehConfigTimeouts(ts, t.TempDir(), h, "6s", "1s"))
	for range 20 {
		h.message(t, 50)
	}
	// The collectors' own connections outlive the server's restart.
	cli, err := client.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var logs proctest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	_, stop1 := runCollectorLog(t, cfg, cli, log)
	feed := func(n int) {
		for range n {
			h.message(t, 1+mrand.IntN(40))
			time.Sleep(20 * time.Millisecond)
		}
	}
	feed(20)
	dir, addr := ts.dir, ts.addr
	ts.stop()
	feed(20) // the first collector reads these and cannot deliver them
	time.Sleep(time.Second)
	_, stop2 := runCollectorLog(t, cfg2, cli, log)
	feed(20)
	time.Sleep(4 * time.Second)
	next := startServer(t, dir, addr)
	*ts, next.down = *next, true // stopped once, through ts
	feed(20)
	stop2()
	feed(20)
	l := newLogged()
	l.waitFor(t, ts.cli, len(h.wanted), time.Minute)
	stop1()
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, h.wanted)
	out := logs.String()
	if strings.Contains(out, "committing offsets") {
		t.Errorf("a commit the rebalance refused was a source error:\n%s", out)
	}
	t.Logf("commits refused by the rebalance: %d", strings.Count(out, "offsets not committed"))
}
