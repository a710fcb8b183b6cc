// Package gcpkmskey signs with an Ed25519 key held in Google Cloud KMS,
// where it was generated and from which it cannot be exported: a
// CryptoKeyVersion of a key with purpose ASYMMETRIC_SIGN and algorithm
// EC_SIGN_ED25519, which signs the data itself (pure Ed25519, RFC 8032) —
// the signature signed notes, checkpoints and cosignatures use.
//
// Every call follows Google's end-to-end integrity guidelines
// (https://cloud.google.com/kms/docs/data-integrity-guidelines): the
// request carries data_crc32c; a response is used only when
// verified_data_crc32c is true, its name is the version asked for and its
// signature matches signature_crc32c; a public key only when its PEM
// matches pem_crc32c. A response that fails a check is discarded and the
// call retried a limited number of times (MaxIntegrityAttempts). On top of
// that, every signature is verified under the public key before it is
// returned.
//
// A Key is a crypto.Signer, so the log's checkpoint signer
// (internal/logkey.FromSigner) and the witness's cosigner are built over it
// exactly as over a key in a file, a PKCS#11 token or AWS KMS
// (internal/kmskey). It lives in its own package so that programs which do
// not use it do not link the Google Cloud client and its auth stack.
package gcpkmskey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"regexp"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// EndpointEnv names the environment variable that, when set, replaces
// Cloud KMS's endpoint (cloudkms.googleapis.com:443), e.g. with a Private
// Service Connect endpoint. Credentials still come from Application
// Default Credentials and the connection is still TLS.
const EndpointEnv = "STELE_GCPKMS_ENDPOINT"

// DefaultTimeout bounds one call (the client library's retries included).
const DefaultTimeout = 10 * time.Second

// MaxIntegrityAttempts is how many times a call is made when responses
// fail the CRC32C or name checks ("perform a limited number of retries").
const MaxIntegrityAttempts = 3

// MaxMessage is the largest message this package sends to be signed, our
// own bound (64 KiB, the size Cloud KMS documents for its encryption
// plaintexts): a checkpoint or cosigned message is a few hundred bytes, so
// anything near this size is not one.
const MaxMessage = 64 * 1024

// versionName is a CryptoKeyVersion's resource name.
var versionName = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/[^/]+$`)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// Key is an Ed25519 key version in Cloud KMS. It is safe for concurrent
// use.
type Key struct {
	client  *kms.KeyManagementClient
	name    string
	pub     ed25519.PublicKey
	level   kmspb.ProtectionLevel
	timeout time.Duration
}

// Open finds the key version name
// (projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N),
// reads its public key and checks it can sign checkpoints. Credentials
// come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's, or the metadata server of GCE/GKE/Cloud Run); $STELE_GCPKMS_ENDPOINT
// replaces the endpoint. opts are appended to the client's options (tests
// point it at a loopback server with option.WithEndpoint and
// option.WithoutAuthentication).
func Open(ctx context.Context, name string, opts ...option.ClientOption) (*Key, error) {
	if name == "" {
		return nil, errors.New("no Cloud KMS key version named: give projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N")
	}
	if !versionName.MatchString(name) {
		return nil, fmt.Errorf("Cloud KMS key %q is not a key version's name: give projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N (a version, since each version is its own key)", name)
	}
	var all []option.ClientOption
	if ep := os.Getenv(EndpointEnv); ep != "" {
		all = append(all, option.WithEndpoint(ep))
	}
	all = append(all, opts...)
	c, err := kms.NewKeyManagementClient(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("Cloud KMS client (credentials from Application Default Credentials): %w", err)
	}
	k, err := open(ctx, c, name)
	if err != nil {
		c.Close()
		return nil, err
	}
	return k, nil
}

func open(ctx context.Context, c *kms.KeyManagementClient, name string) (*Key, error) {
	pk, err := integrity(func() (*kmspb.PublicKey, error) {
		ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
		pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: name})
		if err != nil {
			return nil, fmt.Errorf("Cloud KMS key %s: reading its public key: %w", name, err)
		}
		if pk.GetPemCrc32C() == nil || crc32c([]byte(pk.GetPem())) != pk.GetPemCrc32C().GetValue() {
			return nil, integrityError(fmt.Sprintf("Cloud KMS key %s: the public key's PEM does not match its pem_crc32c", name))
		}
		if pk.GetName() != name {
			return nil, integrityError(fmt.Sprintf("Cloud KMS key %s: GetPublicKey answered for %q", name, pk.GetName()))
		}
		return pk, nil
	})
	if err != nil {
		return nil, err
	}
	if pk.GetAlgorithm() != kmspb.CryptoKeyVersion_EC_SIGN_ED25519 {
		return nil, fmt.Errorf("Cloud KMS key %s has algorithm %s, not EC_SIGN_ED25519: checkpoints and cosignatures are Ed25519; create the key with --purpose asymmetric-signing --default-algorithm ec-sign-ed25519", name, pk.GetAlgorithm())
	}
	block, rest := pem.Decode([]byte(pk.GetPem()))
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("Cloud KMS key %s: its public key is not one PEM PUBLIC KEY block", name)
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("Cloud KMS key %s: its public key is not a SubjectPublicKeyInfo: %w", name, err)
	}
	pub, ok := parsed.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("Cloud KMS key %s: its public key is a %T, not Ed25519", name, parsed)
	}
	return &Key{client: c, name: name, pub: pub, level: pk.GetProtectionLevel(), timeout: DefaultTimeout}, nil
}

// integrityError is a response that failed an integrity check: it is
// discarded and the call retried.
type integrityError string

func (e integrityError) Error() string { return string(e) }

// integrity makes call until it succeeds, fails otherwise than an
// integrity check, or has failed MaxIntegrityAttempts integrity checks.
func integrity[T any](call func() (T, error)) (T, error) {
	var last error
	for range MaxIntegrityAttempts {
		v, err := call()
		var ie integrityError
		if !errors.As(err, &ie) {
			return v, err
		}
		last = err
	}
	var zero T
	return zero, fmt.Errorf("%w (%d responses in a row failed Cloud KMS's integrity checks: the network path or the client is corrupting data)", last, MaxIntegrityAttempts)
}

// Name is the key version's resource name.
func (k *Key) Name() string { return k.name }

// ProtectionLevel is where the key lives (SOFTWARE, HSM, …).
func (k *Key) ProtectionLevel() kmspb.ProtectionLevel { return k.level }

// Public returns the Ed25519 public key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Close closes the client's connection.
func (k *Key) Close() error { return k.client.Close() }

// Sign signs message with pure Ed25519 (opts must be crypto.Hash(0)).
// The signature is checked against the public key before it is returned.
func (k *Key) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("Cloud KMS EC_SIGN_ED25519 signs whole messages (pure Ed25519): opts must be crypto.Hash(0)")
	}
	if len(message) > MaxMessage {
		return nil, fmt.Errorf("message of %d bytes: this signer sends at most %d bytes to Cloud KMS; a checkpoint this large has too many extension lines", len(message), MaxMessage)
	}
	sum := crc32c(message)
	return integrity(func() ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
		defer cancel()
		out, err := k.client.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{
			Name:       k.name,
			Data:       message,
			DataCrc32C: wrapperspb.Int64(sum),
		})
		if err != nil {
			return nil, fmt.Errorf("Cloud KMS AsymmetricSign with %s: %w", k.name, err)
		}
		if !out.GetVerifiedDataCrc32C() {
			return nil, integrityError(fmt.Sprintf("Cloud KMS AsymmetricSign with %s: the response does not say data_crc32c was verified (verified_data_crc32c false)", k.name))
		}
		if out.GetName() != k.name {
			return nil, integrityError(fmt.Sprintf("Cloud KMS AsymmetricSign with %s: the response names key version %q", k.name, out.GetName()))
		}
		if out.GetSignatureCrc32C() == nil || crc32c(out.GetSignature()) != out.GetSignatureCrc32C().GetValue() {
			return nil, integrityError(fmt.Sprintf("Cloud KMS AsymmetricSign with %s: the signature does not match its signature_crc32c", k.name))
		}
		if !ed25519.Verify(k.pub, message, out.GetSignature()) {
			return nil, fmt.Errorf("Cloud KMS AsymmetricSign with %s returned a signature that does not verify under the key version's public key", k.name)
		}
		return out.GetSignature(), nil
	})
}
