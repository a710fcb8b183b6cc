// Package kmstest serves the two AWS KMS operations a tlog key needs —
// GetPublicKey and Sign, over the KMS JSON 1.1 protocol as the KMS API
// reference documents them (POST /, Content-Type
// application/x-amz-json-1.1, X-Amz-Target TrentService.<Operation>,
// SigV4-signed, errors as {"__type": …, "message": …} with status 400) —
// on loopback HTTPS, for tests. AWS KMS itself cannot be reached from the
// test machines; docs/operations.md says what was tested against what.
package kmstest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Account and Region are where the test keys live.
const (
	Account = "111122223333"
	Region  = "us-east-2"
)

// Server is a loopback KMS with one Ed25519 signing key (Ed25519ARN, also
// reachable as alias/stele-log) and one ECC_NIST_P256 key (P256ARN).
type Server struct {
	URL string
	// CABundle is a PEM file with the server's certificate, for
	// AWS_CA_BUNDLE.
	CABundle   string
	Ed25519ARN string
	P256ARN    string
	// Signs counts successful Sign calls.
	Signs atomic.Int64

	srv      *httptest.Server
	ed       ed25519.PrivateKey
	p256     *ecdsa.PrivateKey
	mu       sync.Mutex
	throttle int  // Sign answers ThrottlingException this many more times
	disabled bool // the Ed25519 key is disabled
	corrupt  bool // Sign returns a signature by another key
}

// Start starts a Server closed at the end of the test, and sets the
// environment (for this test and the processes it starts) so the AWS SDK's
// default chain reaches it: AWS_ENDPOINT_URL_KMS, AWS_CA_BUNDLE, a region
// and static credentials.
func Start(t testing.TB) *Server {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		ed: ed, p256: p256,
		Ed25519ARN: fmt.Sprintf("arn:aws:kms:%s:%s:key/1234abcd-12ab-34cd-56ef-1234567890ab", Region, Account),
		P256ARN:    fmt.Sprintf("arn:aws:kms:%s:%s:key/0987dcba-09ab-87cd-65ef-0987654321ba", Region, Account),
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.CABundle = filepath.Join(t.TempDir(), "kms-ca.pem")
	if err := os.WriteFile(s.CABundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_KMS", s.URL)
	t.Setenv("AWS_CA_BUNDLE", s.CABundle)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return s
}

// PublicKey is the Ed25519 key's public half.
func (s *Server) PublicKey() ed25519.PublicKey { return s.ed.Public().(ed25519.PublicKey) }

// Throttle makes the next n Sign calls fail with ThrottlingException.
func (s *Server) Throttle(n int) { s.mu.Lock(); s.throttle = n; s.mu.Unlock() }

// Disable disables (or re-enables) the Ed25519 key: KMS then answers
// DisabledException.
func (s *Server) Disable(v bool) { s.mu.Lock(); s.disabled = v; s.mu.Unlock() }

// Corrupt makes Sign return signatures by another key.
func (s *Server) Corrupt(v bool) { s.mu.Lock(); s.corrupt = v; s.mu.Unlock() }

func fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func (s *Server) key(id string) (arn string, ok bool) {
	switch id {
	case s.Ed25519ARN, "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/stele-log",
		fmt.Sprintf("arn:aws:kms:%s:%s:alias/stele-log", Region, Account):
		return s.Ed25519ARN, true
	case s.P256ARN, "0987dcba-09ab-87cd-65ef-0987654321ba":
		return s.P256ARN, true
	}
	return "", false
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		fail(w, http.StatusNotFound, "UnknownOperationException", "POST / only")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		fail(w, http.StatusBadRequest, "SerializationException", "Content-Type must be application/x-amz-json-1.1, got "+ct)
		return
	}
	if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/") || !strings.Contains(a, "/"+Region+"/kms/aws4_request") {
		fail(w, http.StatusBadRequest, "UnrecognizedClientException", "the request is not SigV4-signed for kms in "+Region)
		return
	}
	var req struct {
		KeyId            string
		Message          []byte
		MessageType      string
		SigningAlgorithm string
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	arn, ok := s.key(req.KeyId)
	if !ok {
		fail(w, http.StatusBadRequest, "NotFoundException", fmt.Sprintf("Key '%s' does not exist", req.KeyId))
		return
	}
	s.mu.Lock()
	disabled := s.disabled && arn == s.Ed25519ARN
	s.mu.Unlock()
	if disabled {
		fail(w, http.StatusBadRequest, "DisabledException", arn+" is disabled.")
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch r.Header.Get("X-Amz-Target") {
	case "TrentService.GetPublicKey":
		resp := map[string]any{"KeyId": arn, "KeyUsage": "SIGN_VERIFY"}
		var pub any
		if arn == s.Ed25519ARN {
			pub = s.PublicKey()
			resp["KeySpec"], resp["CustomerMasterKeySpec"] = "ECC_NIST_EDWARDS25519", "ECC_NIST_EDWARDS25519"
			resp["SigningAlgorithms"] = []string{"ED25519_SHA_512", "ED25519_PH_SHA_512"}
		} else {
			pub = s.p256.Public()
			resp["KeySpec"], resp["CustomerMasterKeySpec"] = "ECC_NIST_P256", "ECC_NIST_P256"
			resp["SigningAlgorithms"] = []string{"ECDSA_SHA_256"}
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			fail(w, http.StatusInternalServerError, "KMSInternalException", err.Error())
			return
		}
		resp["PublicKey"] = der
		json.NewEncoder(w).Encode(resp)
	case "TrentService.Sign":
		s.mu.Lock()
		throttled := s.throttle > 0
		if throttled {
			s.throttle--
		}
		corrupt := s.corrupt
		s.mu.Unlock()
		if throttled {
			fail(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
			return
		}
		switch {
		case len(req.Message) == 0 || len(req.Message) > 4096:
			fail(w, http.StatusBadRequest, "ValidationException", "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096")
			return
		case arn != s.Ed25519ARN:
			if req.SigningAlgorithm != "ECDSA_SHA_256" {
				fail(w, http.StatusBadRequest, "InvalidKeyUsageException", "The signing algorithm "+req.SigningAlgorithm+" is not supported by "+arn)
				return
			}
			d := sha256.Sum256(req.Message)
			sig, _ := ecdsa.SignASN1(rand.Reader, s.p256, d[:])
			json.NewEncoder(w).Encode(map[string]any{"KeyId": arn, "Signature": sig, "SigningAlgorithm": req.SigningAlgorithm})
			return
		case req.SigningAlgorithm != "ED25519_SHA_512" || req.MessageType != "RAW":
			fail(w, http.StatusBadRequest, "ValidationException", "ED25519_SHA_512 requires MessageType RAW (got "+req.SigningAlgorithm+", "+req.MessageType+")")
			return
		}
		key := s.ed
		if corrupt {
			_, key, _ = ed25519.GenerateKey(rand.Reader)
		}
		s.Signs.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"KeyId": arn, "Signature": ed25519.Sign(key, req.Message), "SigningAlgorithm": "ED25519_SHA_512"})
	default:
		fail(w, http.StatusBadRequest, "UnknownOperationException", "unknown operation "+r.Header.Get("X-Amz-Target"))
	}
}
