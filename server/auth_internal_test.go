package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

func TestSourcePattern(t *testing.T) {
	for _, c := range []struct {
		pattern, source string
		want            bool
	}{
		{"entra/t1/*", "entra/t1/audit", true},
		{"entra/t1/*", "entra/t1/audit/x", false},
		{"entra/t1/*", "entra/t1", false},
		{"entra/t1/*", "entra/t2/audit", false},
		{"entra/*/audit", "entra/t2/audit", true},
		{"entra/*/audit", "entra/t2/signin", false},
		{"*", "entra", true},
		{"*", "entra/t1", false},
		{"*/*/*", "a/b/c", true},
		{"entra/t1/audit", "entra/t1/audit", true},
		{"entra/t1/audit", "entra/t1/audi", false},
	} {
		p, err := parseSourcePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := p.match(c.source); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pattern, c.source, got, c.want)
		}
	}
	for _, bad := range []string{"", "entra/t*/audit", "entra//audit", "entra/**", "/entra", "entra/../x"} {
		if _, err := parseSourcePattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// TestEveryMethodHasARule: an identity holding every role may call every
// LogService method, so no method is left to the no-rule denial (which a
// new RPC gets until auth.go names it).
func TestEveryMethodHasARule(t *testing.T) {
	dir := t.TempDir()
	h := sha256.Sum256([]byte("tok"))
	pf := filepath.Join(dir, "policy.json")
	os.WriteFile(pf, []byte(fmt.Sprintf(`{"identities":[{"name":"all","token_sha256":%q,"roles":["producer","reader","admin"],"sources":["entra/*/audit"]}]}`, hex.EncodeToString(h[:]))), 0o600)
	a, err := newAuth(&Config{AuthPolicyFile: pf, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer tok"))
	sd := stelev1.LogService_ServiceDesc
	var methods []string
	for _, m := range sd.Methods {
		methods = append(methods, m.MethodName)
	}
	for _, m := range sd.Streams {
		methods = append(methods, m.StreamName)
	}
	for _, m := range methods {
		if _, _, err := a.authorize(ctx, "/"+sd.ServiceName+"/"+m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, _, err := a.authorize(ctx, "/"+sd.ServiceName+"/NoSuchMethod"); err == nil {
		t.Error("a method with no rule was allowed")
	}
}

// BenchmarkAuthorize is the per-call cost of authentication and
// authorisation with a token: a stat of the policy file, a SHA-256 and a
// map lookup.
func BenchmarkAuthorize(b *testing.B) {
	dir := b.TempDir()
	h := sha256.Sum256([]byte("tok"))
	pf := filepath.Join(dir, "policy.json")
	os.WriteFile(pf, []byte(fmt.Sprintf(`{"identities":[{"name":"p","token_sha256":%q,"roles":["producer"],"sources":["entra/*/audit"]}]}`, hex.EncodeToString(h[:]))), 0o600)
	a, err := newAuth(&Config{AuthPolicyFile: pf, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer tok"))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.authorize(ctx, stelev1.LogService_Append_FullMethodName); err != nil {
			b.Fatal(err)
		}
	}
}
