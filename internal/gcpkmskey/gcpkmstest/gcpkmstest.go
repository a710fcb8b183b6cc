// Package gcpkmstest serves the two Cloud KMS methods a tlog key needs —
// google.cloud.kms.v1.KeyManagementService's GetPublicKey and
// AsymmetricSign — over gRPC on loopback TLS, for tests. It keeps Cloud
// KMS's documented contract: CryptoKeyVersion resource names, the PEM
// public key with pem_crc32c, data_crc32c checked (INVALID_ARGUMENT on a
// mismatch) and acknowledged with verified_data_crc32c, signature_crc32c
// and name on every signature, and the status codes NOT_FOUND,
// PERMISSION_DENIED and FAILED_PRECONDITION (a version that is not
// enabled). Faults can be injected to corrupt what the client checks.
// Cloud KMS itself cannot be reached from the test machines;
// docs/operations.md says what was tested against what.
package gcpkmstest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Project and the key versions the server holds.
const (
	Project = "stele-test"
	// Ed25519Name is an enabled EC_SIGN_ED25519 version.
	Ed25519Name = "projects/" + Project + "/locations/europe-west1/keyRings/stele/cryptoKeys/log/cryptoKeyVersions/1"
	// DisabledName is an EC_SIGN_ED25519 version in state DISABLED.
	DisabledName = "projects/" + Project + "/locations/europe-west1/keyRings/stele/cryptoKeys/log/cryptoKeyVersions/2"
	// P256Name is an EC_SIGN_P256_SHA256 version: the wrong algorithm.
	P256Name = "projects/" + Project + "/locations/europe-west1/keyRings/stele/cryptoKeys/p256/cryptoKeyVersions/1"
	// DeniedName is in a project the caller has no permission on.
	DeniedName = "projects/someone-else/locations/europe-west1/keyRings/stele/cryptoKeys/log/cryptoKeyVersions/1"
)

// Fault is a corruption of a response that the client must catch.
type Fault int

const (
	// SignatureCRC makes signature_crc32c wrong.
	SignatureCRC Fault = iota
	// NotVerified answers verified_data_crc32c false.
	NotVerified
	// WrongName names another key version in the response.
	WrongName
	// PEMCRC makes pem_crc32c wrong.
	PEMCRC
	// BadSignature signs with another key (with a matching CRC).
	BadSignature
	nFaults
)

// Server is a loopback Cloud KMS.
type Server struct {
	kmspb.UnimplementedKeyManagementServiceServer

	// Addr is host:port of the gRPC endpoint (TLS).
	Addr string
	// CertFile is a PEM file with the server's self-signed certificate,
	// which is its own CA: SSL_CERT_FILE for child processes.
	CertFile string
	// Signs counts signatures made; Calls counts requests of any kind.
	Signs, Calls atomic.Int64
	// UncheckedData counts AsymmetricSign requests without data_crc32c.
	UncheckedData atomic.Int64

	cert     *x509.Certificate
	ed       ed25519.PrivateKey
	other    ed25519.PrivateKey
	p256     *ecdsa.PrivateKey
	sa       *rsa.PrivateKey
	saEmail  string
	needAuth atomic.Bool

	mu       sync.Mutex
	faults   [nFaults]int // responses still to corrupt, per fault
	disabled bool         // Ed25519Name is disabled too
	delay    time.Duration
}

// Start starts a Server stopped at the end of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ed: ed, other: other, p256: p256, sa: sa, saEmail: "stele-log@" + Project + ".iam.gserviceaccount.com"}

	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gcpkmstest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &tlsKey.PublicKey, tlsKey)
	if err != nil {
		t.Fatal(err)
	}
	s.cert, _ = x509.ParseCertificate(der)
	s.CertFile = filepath.Join(t.TempDir(), "gcpkms-ca.pem")
	if err := os.WriteFile(s.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = lis.Addr().String()
	g := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: tlsKey})))
	kmspb.RegisterKeyManagementServiceServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return s
}

// ClientOptions point a Cloud KMS client at the server without
// credentials.
func (s *Server) ClientOptions() []option.ClientOption {
	pool := x509.NewCertPool()
	pool.AddCert(s.cert)
	return []option.ClientOption{
		option.WithEndpoint(s.Addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, ""))),
	}
}

// SetEnv sets the environment (for this test and the processes it starts)
// so that a client built with Application Default Credentials reaches the
// server: $STELE_GCPKMS_ENDPOINT, SSL_CERT_FILE (the server's certificate)
// and GOOGLE_APPLICATION_CREDENTIALS, a service-account key file whose
// self-signed JWTs the server then requires on every call.
func (s *Server) SetEnv(t *testing.T) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s.sa)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     Project,
		"private_key_id": "0123456789abcdef0123456789abcdef01234567",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   s.saEmail,
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://127.0.0.1:1/o/oauth2/auth",
		"token_uri":      "https://127.0.0.1:1/token", // unused: the client signs its own JWTs
	})
	path := filepath.Join(t.TempDir(), "adc.json")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STELE_GCPKMS_ENDPOINT", s.Addr)
	t.Setenv("SSL_CERT_FILE", s.CertFile)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	t.Setenv("GOOGLE_CLOUD_PROJECT", Project)
	s.needAuth.Store(true)
}

// PublicKey is the Ed25519 public key of Ed25519Name (and DisabledName).
func (s *Server) PublicKey() ed25519.PublicKey { return s.ed.Public().(ed25519.PublicKey) }

// Inject corrupts the next n responses that carry what f corrupts.
func (s *Server) Inject(f Fault, n int) {
	s.mu.Lock()
	s.faults[f] = n
	s.mu.Unlock()
}

// Disable disables (or enables again) Ed25519Name.
func (s *Server) Disable(d bool) {
	s.mu.Lock()
	s.disabled = d
	s.mu.Unlock()
}

// SetLatency makes every call wait d first (a network round trip).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

func (s *Server) fault(f Fault) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults[f] > 0 {
		s.faults[f]--
		return true
	}
	return false
}

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

type version struct {
	alg    kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	signer crypto.Signer
	state  kmspb.CryptoKeyVersion_CryptoKeyVersionState
}

// lookup finds name as Cloud KMS would, with its error codes.
func (s *Server) lookup(ctx context.Context, name, permission string) (version, error) {
	s.Calls.Add(1)
	s.mu.Lock()
	delay, disabled := s.delay, s.disabled
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if err := s.authenticate(ctx); err != nil {
		return version{}, err
	}
	if !strings.HasPrefix(name, "projects/"+Project+"/") {
		return version{}, status.Errorf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", permission, name)
	}
	switch name {
	case Ed25519Name:
		st := kmspb.CryptoKeyVersion_ENABLED
		if disabled {
			st = kmspb.CryptoKeyVersion_DISABLED
		}
		return s.enabled(name, version{kmspb.CryptoKeyVersion_EC_SIGN_ED25519, s.ed, st})
	case DisabledName:
		return s.enabled(name, version{kmspb.CryptoKeyVersion_EC_SIGN_ED25519, s.ed, kmspb.CryptoKeyVersion_DISABLED})
	case P256Name:
		return version{kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, s.p256, kmspb.CryptoKeyVersion_ENABLED}, nil
	}
	return version{}, status.Errorf(codes.NotFound, "%s not found.", name)
}

func (s *Server) enabled(name string, v version) (version, error) {
	if v.state != kmspb.CryptoKeyVersion_ENABLED {
		return version{}, status.Errorf(codes.FailedPrecondition, "%s is not enabled, current state is: %s.", name, v.state)
	}
	return v, nil
}

// authenticate checks the self-signed service-account JWT once SetEnv has
// made credentials part of the contract.
func (s *Server) authenticate(ctx context.Context) error {
	if !s.needAuth.Load() {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		return status.Error(codes.Unauthenticated, "Request is missing required authentication credential.")
	}
	parts := strings.Split(strings.TrimPrefix(auth[0], "Bearer "), ".")
	if len(parts) != 3 {
		return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials: not a JWT.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials: bad JWT signature encoding.")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.sa.PublicKey, crypto.SHA256, h[:], sig); err != nil {
		return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials: JWT not signed by the service account.")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss string `json:"iss"`
		Exp int64  `json:"exp"`
	}
	if err != nil || json.Unmarshal(body, &claims) != nil || claims.Iss != s.saEmail || claims.Exp < time.Now().Unix() {
		return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials: wrong issuer or expired.")
	}
	return nil
}

// GetPublicKey implements KeyManagementService.GetPublicKey.
func (s *Server) GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	v, err := s.lookup(ctx, req.GetName(), "cloudkms.cryptoKeyVersions.viewPublicKey")
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(v.signer.Public())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	out := &kmspb.PublicKey{
		Pem: string(p), PemCrc32C: crc(p), Algorithm: v.alg, Name: req.GetName(),
		ProtectionLevel: kmspb.ProtectionLevel_HSM,
	}
	if s.fault(PEMCRC) {
		out.PemCrc32C = wrapperspb.Int64(out.PemCrc32C.GetValue() ^ 1)
	}
	if s.fault(WrongName) {
		out.Name = P256Name
	}
	return out, nil
}

// AsymmetricSign implements KeyManagementService.AsymmetricSign for data
// (not digest) with EC_SIGN_ED25519 versions.
func (s *Server) AsymmetricSign(ctx context.Context, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	v, err := s.lookup(ctx, req.GetName(), "cloudkms.cryptoKeyVersions.useToSign")
	if err != nil {
		return nil, err
	}
	if v.alg != kmspb.CryptoKeyVersion_EC_SIGN_ED25519 {
		if len(req.GetData()) > 0 {
			return nil, status.Errorf(codes.InvalidArgument, "data may only be specified for RAW_PKCS1, EC_SIGN_ED25519 and post-quantum algorithms; %s has algorithm %s: send a digest", req.GetName(), v.alg)
		}
		return nil, status.Errorf(codes.Unimplemented, "this test server signs only EC_SIGN_ED25519 data")
	}
	if req.GetDigest() != nil {
		return nil, status.Errorf(codes.InvalidArgument, "digest may not be specified for algorithm EC_SIGN_ED25519: send data")
	}
	verified := false
	if req.GetDataCrc32C() != nil {
		if req.GetDataCrc32C().GetValue() != crc(req.GetData()).GetValue() {
			return nil, status.Error(codes.InvalidArgument, "The checksum in field data_crc32c did not match the data in field data.")
		}
		verified = true
	} else {
		s.UncheckedData.Add(1)
	}
	key := v.signer.(ed25519.PrivateKey)
	if s.fault(BadSignature) {
		key = s.other
	}
	sig := ed25519.Sign(key, req.GetData())
	s.Signs.Add(1)
	out := &kmspb.AsymmetricSignResponse{
		Signature: sig, SignatureCrc32C: crc(sig), VerifiedDataCrc32C: verified,
		Name: req.GetName(), ProtectionLevel: kmspb.ProtectionLevel_HSM,
	}
	if s.fault(SignatureCRC) {
		out.SignatureCrc32C = wrapperspb.Int64(out.SignatureCrc32C.GetValue() ^ 0x80)
	}
	if s.fault(NotVerified) {
		out.VerifiedDataCrc32C = false
	}
	if s.fault(WrongName) {
		out.Name = DisabledName
	}
	return out, nil
}

// String names the server in failure messages.
func (s *Server) String() string { return fmt.Sprintf("gcpkmstest at %s", s.Addr) }
