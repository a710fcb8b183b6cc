package collector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/collector"
)

// idOf is the native id of a record in the log: properties.id for
// diagnostic-settings records, else id, uuid or eventID.
func idOf(t testing.TB, rec []byte) string {
	t.Helper()
	var v struct {
		Properties struct {
			ID string `json:"id"`
		} `json:"properties"`
		ID      string `json:"id"`
		UUID    string `json:"uuid"`
		EventID string `json:"eventID"`
	}
	if err := json.Unmarshal(rec, &v); err != nil {
		t.Fatalf("a record in the log is not JSON: %v: %.200s", err, rec)
	}
	for _, s := range []string{v.Properties.ID, v.ID, v.UUID, v.EventID} {
		if s != "" {
			return s
		}
	}
	t.Fatalf("a record in the log has no id: %.200s", rec)
	return ""
}

// entraTemplates are published-shape diagnostic records (the identity
// package's golden inputs): an audit record and an interactive sign-in.
func entraTemplate(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "identity", "testdata", "golden", "entra.diagnostic", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// entraGen makes unique diagnostic records for one tenant.
type entraGen struct {
	tenant        string
	audit, signin string
	n             int
}

const goldenTenant = "11111111-1111-4111-8111-111111111111"

func newEntraGen(t testing.TB) *entraGen {
	g := &entraGen{tenant: randomGUID(), audit: entraTemplate(t, "pim-activation"), signin: entraTemplate(t, "signin-interactive-mfa-success")}
	for _, tpl := range []string{g.audit, g.signin} {
		if !strings.Contains(tpl, goldenTenant) {
			t.Fatal("template does not carry the golden tenant")
		}
	}
	return g
}

func randomGUID() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x-%x-4%x-8%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])[:36]
}

// record returns record n of the kind ("audit" or "signin"), with a fresh id.
func (g *entraGen) record(kind string) (id string, rec []byte) {
	g.n++
	tpl, old := g.audit, `"PIM_00000000-0000-4000-8000-000000000130_00000000-0000-4000-8000-000000000131_638451299999999999"`
	if kind == "signin" {
		tpl, old = g.signin, `"00000000-0000-4000-8000-000000000141"`
	}
	id = fmt.Sprintf("%s-%s-%06d", kind, g.tenant[:8], g.n)
	s := strings.Replace(tpl, `"properties": {"id": `+old, `"properties": {"id": "`+id+`"`, 1)
	s = strings.ReplaceAll(s, goldenTenant, g.tenant)
	return id, []byte(s)
}

// blobs writes append blobs into Azurite.
type blobs struct {
	t   testing.TB
	svc *azblob.Client
}

func newBlobs(t testing.TB, az *azurite, containers ...string) *blobs {
	svc, err := azblob.NewClientFromConnectionString(az.connStr, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range containers {
		_, err := svc.CreateContainer(context.Background(), c, nil)
		if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			t.Fatalf("create container %s: %v", c, err)
		}
	}
	return &blobs{t: t, svc: svc}
}

func hourBlob(tenant string, h time.Time) string {
	return "tenantId=" + tenant + h.UTC().Format("/y=2006/m=01/d=02/h=15/m=00/PT1H.json")
}

func (b *blobs) create(container, name string) {
	b.t.Helper()
	_, err := b.svc.ServiceClient().NewContainerClient(container).NewAppendBlobClient(name).Create(context.Background(), nil)
	if err != nil {
		b.t.Fatalf("create %s/%s: %v", container, name, err)
	}
}

func (b *blobs) append(container, name string, data []byte) {
	b.t.Helper()
	_, err := b.svc.ServiceClient().NewContainerClient(container).NewAppendBlobClient(name).
		AppendBlock(context.Background(), streaming.NopCloser(bytes.NewReader(data)), nil)
	if err != nil {
		b.t.Fatalf("append to %s/%s: %v", container, name, err)
	}
}

func storageConfig(ts *testServer, stateDir string, az *azurite, tenant string) string {
	return fmt.Sprintf(`{
  "server": {"address": %q},
  "state_dir": %q,
  "listen": "-",
  "sources": [{"name": "entra-blobs", "entra_storage": {
    "auth": "connection_string", "connection_string_env": %q,
    "containers": ["insights-logs-auditlogs", "insights-logs-signinlogs"],
    "tenants": [%q], "poll_interval": "100ms"}}]
}`, ts.addr, stateDir, az.connEnv, tenant)
}

// runCollector runs a collector in-process until the returned stop is called.
func runCollector(t testing.TB, cfgPath string, cli *client.Client) (*collector.Collector, func()) {
	t.Helper()
	return runCollectorLog(t, cfgPath, cli, quiet())
}

// runCollectorLog is runCollector with a logger.
func runCollectorLog(t testing.TB, cfgPath string, cli *client.Client, log *slog.Logger) (*collector.Collector, func()) {
	t.Helper()
	cfg, err := collector.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{Config: cfg, Submitter: &client.Submitter{Client: cli, WaitForReady: true}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("the collector did not stop within a minute of being told to")
		}
	}
	t.Cleanup(func() { cancel(); <-done })
	return c, stop
}

func statusOf(c *collector.Collector) collector.SourceStatus { return c.Status()[0] }

// TestStorageEndToEnd reads hourly append blobs from Azurite while they
// grow — a line split across two appends, a malformed line, a new hour —
// into a real stele-server, then restarts from the durable cursor.
func TestStorageEndToEnd(t *testing.T) {
	t.Parallel()
	az := startAzurite(t)
	ts := startServer(t, t.TempDir(), "")
	g := newEntraGen(t)
	bl := newBlobs(t, az, "insights-logs-auditlogs", "insights-logs-signinlogs")
	now := time.Now().UTC().Truncate(time.Hour)
	h1, h2 := now.Add(-2*time.Hour), now
	audit1, signin2 := hourBlob(g.tenant, h1), hourBlob(g.tenant, h2)
	want := map[string][]byte{}
	lines := func(kind string, n int) []byte {
		var buf bytes.Buffer
		for range n {
			id, rec := g.record(kind)
			want[id] = rec
			buf.Write(rec)
			buf.WriteByte('\n')
		}
		return buf.Bytes()
	}
	bl.create("insights-logs-auditlogs", audit1)
	bl.append("insights-logs-auditlogs", audit1, lines("audit", 50))
	bl.append("insights-logs-auditlogs", audit1, []byte("{\"category\": \"AuditLogs\", \"properties\": {\"id\": \"broken\"\n"))
	bl.append("insights-logs-auditlogs", audit1, lines("audit", 50))
	bl.create("insights-logs-signinlogs", signin2)
	bl.append("insights-logs-signinlogs", signin2, lines("signin", 30))
	splitID, split := g.record("signin")
	bl.append("insights-logs-signinlogs", signin2, split[:len(split)/2]) // the rest comes later

	state := t.TempDir()
	cfg := writeConfig(t, t.TempDir(), storageConfig(ts, state, az, g.tenant))
	c, stop := runCollector(t, cfg, ts.cli)
	l := newLogged()
	l.waitFor(t, ts.cli, len(want), time.Minute)
	time.Sleep(300 * time.Millisecond) // several polls: the half line must stay out
	l.sync(t, ts.cli)
	if _, ok := l.records[splitID]; ok {
		t.Fatal("a half-written line was submitted")
	}
	// The blobs grow while the collector runs; a new hour appears.
	bl.append("insights-logs-signinlogs", signin2, append(split[len(split)/2:], '\n'))
	want[splitID] = split
	for range 4 {
		bl.append("insights-logs-signinlogs", signin2, lines("signin", 10))
		time.Sleep(50 * time.Millisecond)
	}
	audit3 := hourBlob(g.tenant, h1.Add(time.Hour))
	bl.create("insights-logs-auditlogs", audit3)
	bl.append("insights-logs-auditlogs", audit3, lines("audit", 20))
	l.waitFor(t, ts.cli, len(want), time.Minute)
	st := statusOf(c)
	if st.Events["malformed"] != 1 || st.Events["admitted"] != uint64(len(want)) || st.Events["duplicate"] != 0 {
		t.Errorf("events by outcome = %v, want 1 malformed, %d admitted, 0 duplicates", st.Events, len(want))
	}
	stop()

	// A restart resumes at the cursor: nothing is sent twice.
	c, stop = runCollector(t, cfg, ts.cli)
	bl.append("insights-logs-auditlogs", audit3, lines("audit", 10))
	l.waitFor(t, ts.cli, len(want), time.Minute)
	time.Sleep(300 * time.Millisecond)
	st = statusOf(c)
	if st.Events["admitted"] != 10 || st.Events["duplicate"] != 0 {
		t.Errorf("after a restart: events by outcome = %v, want 10 admitted and no duplicates", st.Events)
	}
	stop()
	l.sync(t, ts.cli)
	checkExactlyOnce(t, l, want)
}

// checkExactlyOnce checks the log holds every wanted record once, byte for
// byte, and nothing else.
func checkExactlyOnce(t testing.TB, l *logged, want map[string][]byte) {
	t.Helper()
	for id, rec := range want {
		got, ok := l.records[id]
		switch {
		case !ok:
			t.Errorf("record %s is not in the log", id)
		case !bytes.Equal(got, rec):
			t.Errorf("record %s differs in the log:\n got %.200s\nwant %.200s", id, got, rec)
		case l.count[id] != 1:
			t.Errorf("record %s is in the log %d times", id, l.count[id])
		}
	}
	if len(l.records) != len(want) {
		t.Errorf("the log holds %d records, want %d", len(l.records), len(want))
	}
}

// TestStorageAuthModes reads Azurite with the account key (shared_key)
// and with an account SAS (list and read only), not only the connection
// string.
func TestStorageAuthModes(t *testing.T) {
	t.Parallel()
	az := startAzurite(t)
	cred, err := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP, // Azurite serves http
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.AccountPermissions{Read: true, List: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{
		`"auth": "shared_key", "account_url": %q, "account_name": "` + azuriteAccount + `", "account_key_env": "` + secretEnv(azuriteKey) + `"`,
		`"auth": "sas", "account_url": %q, "sas_token_env": "` + secretEnv(qp.Encode()) + `"`,
	} {
		auth := fmt.Sprintf(mode, az.endpoint)
		t.Run(strings.Split(auth, `"`)[3], func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, t.TempDir(), "")
			g := newEntraGen(t)
			bl := newBlobs(t, az, "insights-logs-auditlogs")
			name := hourBlob(g.tenant, time.Now())
			bl.create("insights-logs-auditlogs", name)
			want := map[string][]byte{}
			var buf bytes.Buffer
			for range 30 {
				id, rec := g.record("audit")
				want[id] = rec
				buf.Write(rec)
				buf.WriteByte('\n')
			}
			bl.append("insights-logs-auditlogs", name, buf.Bytes())
			cfg := fmt.Sprintf(`{"server": {"address": %q}, "state_dir": %q, "listen": "-",
  "sources": [{"name": "entra-blobs", "entra_storage": {%s, "containers": ["insights-logs-auditlogs"], "tenants": [%q], "poll_interval": "100ms"}}]}`,
				ts.addr, t.TempDir(), auth, g.tenant)
			_, stop := runCollector(t, writeConfig(t, t.TempDir(), cfg), ts.cli)
			l := newLogged()
			l.waitFor(t, ts.cli, len(want), time.Minute)
			stop()
			checkExactlyOnce(t, l, want)
		})
	}
}
