package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/cli"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
	"github.com/stele-dev/stele/server"
)

// testCA issues certificates for the auth tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64 = 100

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type certOpts struct {
	cn      string
	uri     string
	server  bool
	expired bool
}

// issue returns the PEM certificate and key.
func (ca *testCA) issue(t testing.TB, o certOpts) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: o.cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.expired {
		tmpl.NotBefore = time.Now().Add(-48 * time.Hour)
		tmpl.NotAfter = time.Now().Add(-24 * time.Hour)
	}
	if o.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	if o.uri != "" {
		u, err := url.Parse(o.uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeFile writes b to dir/name atomically (as an operator should replace
// policy and certificate files) and returns the path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

type authServer struct {
	srv      *server.Server
	grpcAddr string
	dir      string
	caFile   string
}

// startAuthServer runs a server on loopback with cfg's TLS and auth
// settings, the way stele-server wires them.
func startAuthServer(t *testing.T, cfg server.Config) *authServer {
	t.Helper()
	dir := t.TempDir()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.Logger = quietLogger()
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCOptions()...)
	srv.RegisterGRPC(gs)
	go gs.Serve(gl)
	t.Cleanup(func() {
		gs.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	return &authServer{srv: srv, grpcAddr: gl.Addr().String(), dir: dir}
}

// pki is the certificates and keys of the auth tests, as files.
type pki struct {
	dir                           string
	ca                            *testCA
	caFile, serverCert, serverKey string
	producer, reader, expired     [2]string // cert, key
	wrongCA, unknown              [2]string
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	p := &pki{dir: dir, ca: newTestCA(t, "stele test CA")}
	p.caFile = writeFile(t, dir, "ca.pem", p.ca.pem)
	sc, sk := p.ca.issue(t, certOpts{cn: "stele-server", server: true})
	p.serverCert, p.serverKey = writeFile(t, dir, "server.pem", sc), writeFile(t, dir, "server.key", sk)
	pair := func(name string, ca *testCA, o certOpts) [2]string {
		c, k := ca.issue(t, o)
		return [2]string{writeFile(t, dir, name+".pem", c), writeFile(t, dir, name+".key", k)}
	}
	p.producer = pair("producer", p.ca, certOpts{cn: "ignored-cn", uri: "spiffe://test.example/producer"})
	p.reader = pair("reader", p.ca, certOpts{cn: "reader"})
	p.expired = pair("expired", p.ca, certOpts{cn: "reader", expired: true})
	p.wrongCA = pair("wrongca", newTestCA(t, "another CA"), certOpts{cn: "reader"})
	p.unknown = pair("unknown", p.ca, certOpts{cn: "stranger"})
	return p
}

func policyJSON(t *testing.T, ids ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"identities": ids})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *pki) dial(t *testing.T, addr string, certKey [2]string, token string) *client.Client {
	t.Helper()
	opt, err := client.WithTLS(p.caFile, certKey[0], certKey[1])
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.DialOption{opt}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	c, err := client.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantCode(t *testing.T, what string, err error, want ...codes.Code) {
	t.Helper()
	got := status.Code(err)
	for _, w := range want {
		if got == w {
			return
		}
	}
	t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
}

func authAppend(t *testing.T, c *client.Client, evs ...*stelev1.Event) ([]*stelev1.AppendResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Log.Append(ctx, &stelev1.AppendRequest{Events: evs})
	if err != nil {
		return nil, err
	}
	return resp.Results, nil
}

func TestAuth(t *testing.T) {
	p := newPKI(t)
	policy := func(withProducerToken bool) []byte {
		ids := []map[string]any{
			{"name": "collector", "cert": "spiffe://test.example/producer", "roles": []string{"producer"}, "sources": []string{"entra/t1/*"}},
			{"name": "auditor", "cert": "reader", "roles": []string{"reader"}},
			{"name": "reader-token", "token_sha256": tokenHash("tok-reader"), "roles": []string{"reader"}},
		}
		if withProducerToken {
			ids = append(ids, map[string]any{"name": "okta-token", "token_sha256": tokenHash("tok-producer"), "roles": []string{"producer"}, "sources": []string{"okta/*/audit"}})
		}
		return policyJSON(t, ids...)
	}
	policyFile := writeFile(t, p.dir, "policy.json", policy(true))
	as := startAuthServer(t, server.Config{TLSCertFile: p.serverCert, TLSKeyFile: p.serverKey, ClientCAFile: p.caFile, AuthPolicyFile: policyFile})

	// Refused before anything is written: no credentials, a certificate
	// from another CA, an expired one, one the policy does not name,
	// plaintext against the TLS port.
	_, err := authAppend(t, p.dial(t, as.grpcAddr, [2]string{}, ""), event("entra/t1/audit", "x", 300))
	wantCode(t, "no client certificate", err, codes.Unauthenticated)
	if err != nil && !strings.Contains(status.Convert(err).Message(), "no credentials") {
		t.Errorf("no client certificate: unclear message %q", status.Convert(err).Message())
	}
	_, err = authAppend(t, p.dial(t, as.grpcAddr, p.wrongCA, ""), event("entra/t1/audit", "x", 300))
	wantCode(t, "certificate from the wrong CA", err, codes.Unavailable, codes.Unauthenticated)
	// (Go's client does not even send a certificate the server's CA list
	// does not name; forced, the server ends the handshake.)
	forceCert(t, as.grpcAddr, p, p.wrongCA, "unknown certificate authority")
	forceCert(t, as.grpcAddr, p, p.expired, "expired certificate")
	_, err = authAppend(t, p.dial(t, as.grpcAddr, p.expired, ""), event("entra/t1/audit", "x", 300))
	wantCode(t, "expired certificate", err, codes.Unavailable, codes.Unauthenticated)
	_, err = authAppend(t, p.dial(t, as.grpcAddr, p.unknown, ""), event("entra/t1/audit", "x", 300))
	wantCode(t, "certificate not in the policy", err, codes.Unauthenticated)
	plain, err := client.Dial(as.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, err = authAppend(t, plain, event("entra/t1/audit", "x", 300))
	wantCode(t, "plaintext", err, codes.Unavailable)
	_, err = authAppend(t, p.dial(t, as.grpcAddr, [2]string{}, "not-a-token"), event("entra/t1/audit", "x", 300))
	wantCode(t, "unknown token", err, codes.Unauthenticated)

	// The reader may not append; the producer may not read payloads.
	reader := p.dial(t, as.grpcAddr, p.reader, "")
	_, err = authAppend(t, reader, event("entra/t1/audit", "x", 300))
	wantCode(t, "reader appending", err, codes.PermissionDenied)

	// A producer's batch: the ungranted event is refused in its place, the
	// others admitted. Index 0 for the first shows nothing was written by
	// any refused call above.
	producer := p.dial(t, as.grpcAddr, p.producer, "")
	rs, err := authAppend(t, producer, event("entra/t1/audit", "a", 300), event("entra/t2/audit", "b", 300), event("entra/t1/signin", "c", 300), event("entra/t1/audit/x", "d", 300))
	if err != nil {
		t.Fatalf("producer append: %v", err)
	}
	wantResults := []codes.Code{codes.OK, codes.PermissionDenied, codes.OK, codes.PermissionDenied}
	for i, r := range rs {
		if codes.Code(r.Code) != wantResults[i] {
			t.Errorf("event %d: code %v (%s), want %v", i, codes.Code(r.Code), r.Message, wantResults[i])
		}
	}
	if rs[0].Index != 0 || rs[2].Index != 1 {
		t.Errorf("admitted at %d and %d, want 0 and 1: something else was written", rs[0].Index, rs[2].Index)
	}
	if !strings.Contains(rs[1].Message, `"entra/t2/audit"`) {
		t.Errorf("denial message %q does not name the source", rs[1].Message)
	}

	ctx := ctxT(t, 30*time.Second)
	_, err = producer.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: 0})
	wantCode(t, "producer reading a payload", err, codes.PermissionDenied)
	if _, err := producer.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: 0}); err != nil {
		t.Errorf("producer fetching a receipt: %v", err)
	}
	// Proofs are open to every identity (here one without the reader
	// role), in batches too.
	if _, err := producer.Log.GetInclusionProofs(ctx, &stelev1.GetInclusionProofsRequest{Indexes: []uint64{0, 0}}); err != nil {
		t.Errorf("producer fetching inclusion proofs: %v", err)
	}
	if _, err := reader.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: 0}); err != nil {
		t.Errorf("reader reading a payload: %v", err)
	}

	// Tokens: a producer token within its grants, a reader token.
	tokProducer := p.dial(t, as.grpcAddr, [2]string{}, "tok-producer")
	rs, err = authAppend(t, tokProducer, event("okta/o1/audit", "t1", 300), event("okta/o1/signin", "t2", 300))
	if err != nil {
		t.Fatalf("token append: %v", err)
	}
	if rs[0].Code != 0 || rs[0].Index != 2 || codes.Code(rs[1].Code) != codes.PermissionDenied {
		t.Errorf("token append results: %v", rs)
	}
	tokReader := p.dial(t, as.grpcAddr, [2]string{}, "tok-reader")
	if _, err := tokReader.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: 2}); err != nil {
		t.Errorf("reader token reading a payload: %v", err)
	}

	// Revocation: the token leaves the policy file; the same connection,
	// no restart, is refused.
	time.Sleep(10 * time.Millisecond) // a distinct modification time on coarse clocks
	writeFile(t, p.dir, "policy.json", policy(false))
	_, err = authAppend(t, tokProducer, event("okta/o1/audit", "t3", 300))
	wantCode(t, "revoked token", err, codes.Unauthenticated)
	if _, err := tokReader.Log.GetEvent(ctx, &stelev1.GetEventRequest{Index: 2}); err != nil {
		t.Errorf("the reader token still in the policy: %v", err)
	}

	// A broken policy fails closed, and fixing it restores access.
	writeFile(t, p.dir, "policy.json", []byte(`{"identities": [`))
	_, err = authAppend(t, producer, event("entra/t1/audit", "e", 300))
	wantCode(t, "broken policy", err, codes.Unavailable)
	writeFile(t, p.dir, "policy.json", policy(false))
	rs, err = authAppend(t, producer, event("entra/t1/audit", "f", 300))
	if err != nil || rs[0].Code != 0 || rs[0].Index != 3 {
		t.Fatalf("after fixing the policy: %v %v (want index 3: nothing written while refused)", rs, err)
	}

	// Every denial is counted by code and reason.
	rec := httptest.NewRecorder()
	as.srv.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`stele_auth_denied_total{code="PermissionDenied",reason="source_not_granted"} 3`,
		`stele_auth_denied_total{code="PermissionDenied",reason="not_producer"} 1`,
		`stele_auth_denied_total{code="PermissionDenied",reason="not_reader"} 1`,
		`stele_auth_denied_total{code="Unauthenticated",reason="no_credentials"} 2`,
		`stele_auth_denied_total{code="Unauthenticated",reason="unknown_token"} 2`,
		`stele_auth_denied_total{code="Unauthenticated",reason="unknown_certificate"} 1`,
		`stele_auth_denied_total{code="Unavailable",reason="policy_invalid"} 1`,
		// The expired and wrong-CA certificates forced in, and plaintext.
		`stele_auth_denied_total{code="Unauthenticated",reason="tls_handshake"} `,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(rec.Body.String(), "\n") {
			if strings.HasPrefix(l, "stele_auth") {
				t.Log(l)
			}
		}
	}
}

// forceCert presents certKey in a raw TLS handshake, whatever CAs the
// server asks for, and wants the server to refuse it with alert.
func forceCert(t *testing.T, addr string, p *pki, certKey [2]string, alert string) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certKey[0], certKey[1])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.pem)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }})
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), alert) {
		t.Errorf("presenting %s: got %v, want the handshake refused with %q", filepath.Base(certKey[0]), err, alert)
	}
}

func TestAuthConfigErrors(t *testing.T) {
	p := newPKI(t)
	bad := map[string]string{
		"unknown key":      `{"identities": [], "extra": 1}`,
		"unknown role":     `{"identities": [{"name": "a", "token_sha256": "` + tokenHash("a") + `", "roles": ["writer"]}]}`,
		"partial wildcard": `{"identities": [{"name": "a", "token_sha256": "` + tokenHash("a") + `", "roles": ["producer"], "sources": ["entra/t*/audit"]}]}`,
		"no sources":       `{"identities": [{"name": "a", "token_sha256": "` + tokenHash("a") + `", "roles": ["producer"]}]}`,
		"bad hash":         `{"identities": [{"name": "a", "token_sha256": "abc", "roles": ["reader"]}]}`,
		"duplicate token":  `{"identities": [{"name": "a", "token_sha256": "` + tokenHash("a") + `", "roles": ["reader"]}, {"name": "b", "token_sha256": "` + tokenHash("a") + `", "roles": ["reader"]}]}`,
	}
	for name, pol := range bad {
		f := writeFile(t, p.dir, "bad.json", []byte(pol))
		_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), AuthPolicyFile: f, Logger: quietLogger()})
		if err == nil {
			t.Errorf("%s: server.New accepted the policy", name)
		}
	}
	if _, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), ClientCAFile: p.caFile, Logger: quietLogger()}); err == nil {
		t.Error("a client CA without TLS was accepted")
	}
}

// TestCertReload replaces the server's certificate files under a running
// server: new connections get the new certificate.
func TestCertReload(t *testing.T) {
	p := newPKI(t)
	as := startAuthServer(t, server.Config{TLSCertFile: p.serverCert, TLSKeyFile: p.serverKey})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.pem)
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", as.grpcAddr, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "stele-server" {
		t.Fatalf("served %q", cn)
	}
	c, k := p.ca.issue(t, certOpts{cn: "stele-server-renewed", server: true})
	writeFile(t, p.dir, "server.key", k)
	writeFile(t, p.dir, "server.pem", c)
	if cn := served(); cn != "stele-server-renewed" {
		t.Fatalf("after replacing the files, served %q", cn)
	}
	// A half-written pair keeps the last good certificate.
	writeFile(t, p.dir, "server.pem", []byte("garbage"))
	if cn := served(); cn != "stele-server-renewed" {
		t.Fatalf("after a bad certificate file, served %q", cn)
	}
	// The plaintext-era client API still works over TLS with no auth.
	cli := p.dial(t, as.grpcAddr, [2]string{}, "")
	if _, err := authAppend(t, cli, event("entra/t1/audit", "a", 300)); err != nil {
		t.Fatalf("TLS without auth: %v", err)
	}
}

// TestCLIOverTLSWithToken runs the stele CLI against a TLS server with a
// bearer token.
func TestCLIOverTLSWithToken(t *testing.T) {
	p := newPKI(t)
	pol := policyJSON(t, map[string]any{"name": "ci", "token_sha256": tokenHash("s3cret"), "roles": []string{"producer", "reader"}, "sources": []string{"test/*"}})
	as := startAuthServer(t, server.Config{TLSCertFile: p.serverCert, TLSKeyFile: p.serverKey, AuthPolicyFile: writeFile(t, p.dir, "policy.json", pol)})
	events := filepath.Join(p.dir, "events.jsonl")
	os.WriteFile(events, []byte(`{"source":"test/a","event_id":"1","kind":"k","event_time":"2026-11-25T10:00:00Z","format":"json","record":{"id":"1"}}`+"\n"+
		`{"source":"other/a","event_id":"2","kind":"k","event_time":"2026-11-25T10:00:00Z","format":"json","record":{"id":"2"}}`+"\n"), 0o600)
	run := func(env map[string]string, args ...string) (int, string, string) {
		for k, v := range env {
			t.Setenv(k, v)
		}
		var out, errb bytes.Buffer
		code := cli.Main(args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run(map[string]string{"STELE_TOKEN": "s3cret"}, "submit", "--server", as.grpcAddr, "--tls-ca", p.caFile, events)
	if code != 1 || !strings.Contains(out, "line 1: index 0") || !strings.Contains(out, "PermissionDenied") {
		t.Fatalf("submit: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, out, errs = run(nil, "checkpoint", "--server", as.grpcAddr, "--tls-ca", p.caFile, "--token", "s3cret")
	if code != 0 || !strings.Contains(out, server.DefaultOrigin) {
		t.Fatalf("checkpoint: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = run(map[string]string{"STELE_TOKEN": ""}, "checkpoint", "--server", as.grpcAddr, "--tls-ca", p.caFile, "--token", "wrong", "--timeout", "5s")
	if code != 1 || !strings.Contains(errs, "Unauthenticated") {
		t.Fatalf("wrong token: exit %d\n%s", code, errs)
	}
}

// TestExamplePolicy: the example policy in deploy/config loads.
func TestExamplePolicy(t *testing.T) {
	srv, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), AuthPolicyFile: "../deploy/config/auth-policy.example.json", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestAuthStream: AppendStream applies the grants per event, and a token
// revoked while the stream is open refuses its next batch.
func TestAuthStream(t *testing.T) {
	p := newPKI(t)
	pol := func(ids ...map[string]any) []byte { return policyJSON(t, ids...) }
	producer := map[string]any{"name": "streamer", "token_sha256": tokenHash("tok-stream"), "roles": []string{"producer"}, "sources": []string{"entra/*/audit"}}
	reader := map[string]any{"name": "r", "token_sha256": tokenHash("tok-r"), "roles": []string{"reader"}}
	policyFile := writeFile(t, p.dir, "policy.json", pol(producer, reader))
	as := startAuthServer(t, server.Config{TLSCertFile: p.serverCert, TLSKeyFile: p.serverKey, AuthPolicyFile: policyFile})
	c := p.dial(t, as.grpcAddr, [2]string{}, "tok-stream")
	stream, err := c.Log.AppendStream(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	send := func(id uint64, evs ...*stelev1.Event) []*stelev1.AppendResult {
		t.Helper()
		if err := stream.Send(&stelev1.AppendStreamRequest{BatchId: id, Events: evs}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.BatchId != id || len(resp.Results) != len(evs) {
			t.Fatalf("response %d with %d results, want %d with %d", resp.BatchId, len(resp.Results), id, len(evs))
		}
		return resp.Results
	}
	rs := send(1, event("entra/t1/audit", "a", 300), event("entra/t1/signin", "b", 300), event("entra/t2/audit", "c", 300))
	if rs[0].Code != 0 || codes.Code(rs[1].Code) != codes.PermissionDenied || rs[2].Code != 0 || rs[2].Index != 1 {
		t.Fatalf("first batch: %v", rs)
	}
	writeFile(t, p.dir, "policy.json", pol(reader))
	rs = send(2, event("entra/t1/audit", "d", 300))
	if codes.Code(rs[0].Code) != codes.Unauthenticated {
		t.Fatalf("after revocation: %v", rs)
	}
	stream.CloseSend()
	// Nothing was written after the revocation.
	r := p.dial(t, as.grpcAddr, [2]string{}, "tok-r")
	ctx := ctxT(t, 30*time.Second)
	if _, err := r.Log.GetReceipt(ctx, &stelev1.GetReceiptRequest{Index: 1}); err != nil {
		t.Fatal(err)
	}
	cp, err := r.Log.GetCheckpoint(ctx, &stelev1.GetCheckpointRequest{})
	if err != nil || cp.Size != 2 {
		t.Fatalf("checkpoint size %v (%v), want 2", cp.GetSize(), err)
	}
}

// BenchmarkAppendAuth measures what authentication and per-event grants
// cost an Append over TLS: with no policy, and with a token policy.
func BenchmarkAppendAuth(b *testing.B) {
	for _, withPolicy := range []bool{false, true} {
		name := "tls"
		if withPolicy {
			name = "tls+token+policy"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			ca := newBenchCA(b, dir)
			cfg := server.Config{TLSCertFile: ca.serverCert, TLSKeyFile: ca.serverKey, DataDir: filepath.Join(dir, "data"), Logger: quietLogger()}
			if withPolicy {
				pol, _ := json.Marshal(map[string]any{"identities": []map[string]any{{"name": "p", "token_sha256": tokenHash("tok"), "roles": []string{"producer"}, "sources": []string{"bench/*"}}}})
				os.WriteFile(filepath.Join(dir, "policy.json"), pol, 0o600)
				cfg.AuthPolicyFile = filepath.Join(dir, "policy.json")
			}
			srv, err := server.New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			gl, _ := net.Listen("tcp", "127.0.0.1:0")
			gs := grpc.NewServer(srv.GRPCOptions()...)
			srv.RegisterGRPC(gs)
			go gs.Serve(gl)
			defer func() { gs.Stop(); srv.Close(context.Background()) }()
			opt, err := client.WithTLS(ca.caFile, "", "")
			if err != nil {
				b.Fatal(err)
			}
			c, err := client.Dial(gl.Addr().String(), opt, client.WithToken("tok"))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ResetTimer()
			for i := range b.N {
				evs := make([]*stelev1.Event, 100)
				for j := range evs {
					evs[j] = event("bench/a", fmt.Sprintf("%d-%d", i, j), 1000)
				}
				rs, err := c.Append(context.Background(), evs)
				if err != nil || rs[0].Code != 0 {
					b.Fatalf("%v %v", rs, err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

type benchCA struct{ caFile, serverCert, serverKey string }

func newBenchCA(b *testing.B, dir string) benchCA {
	ca := newTestCA(b, "bench CA")
	c, k := ca.issue(b, certOpts{cn: "stele-server", server: true})
	os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o600)
	os.WriteFile(filepath.Join(dir, "server.pem"), c, 0o600)
	os.WriteFile(filepath.Join(dir, "server.key"), k, 0o600)
	return benchCA{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")}
}
