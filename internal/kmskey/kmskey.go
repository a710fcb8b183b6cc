// Package kmskey signs with an Ed25519 key held in AWS KMS, where it was
// generated and from which it cannot be exported: key spec
// ECC_NIST_EDWARDS25519, key usage SIGN_VERIFY, and every signature a KMS
// Sign call with the ED25519_SHA_512 algorithm over the raw message
// (MessageType RAW), which is pure Ed25519 (RFC 8032) — the signature
// signed notes, checkpoints and cosignatures use.
//
// A Key is a crypto.Signer, so the log's checkpoint signer
// (internal/logkey.FromSigner) and the witness's cosigner are built over it
// exactly as over a key in a file or in a PKCS#11 token. Which cloud KMSs
// can hold a tlog key, and why, is in docs/operations.md.
package kmskey

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// MaxMessage is the largest message KMS signs with MessageType RAW.
const MaxMessage = 4096

// DefaultTimeout bounds one Sign call (retries included).
const DefaultTimeout = 10 * time.Second

// Key is an Ed25519 key in AWS KMS. It is safe for concurrent use.
type Key struct {
	client  *kms.Client
	id      string
	pub     ed25519.PublicKey
	timeout time.Duration
}

// Open finds the key named keyID (a key ID, key ARN, alias name or alias
// ARN) with the SDK's standard configuration chain (environment, shared
// files, instance or workload roles; AWS_ENDPOINT_URL_KMS and AWS_CA_BUNDLE
// are honoured), reads its public key and checks it can sign checkpoints.
// When keyID is an ARN and no region is configured, the ARN's region is
// used. optFns change the KMS client's options (tests point it elsewhere).
func Open(ctx context.Context, keyID string, optFns ...func(*kms.Options)) (*Key, error) {
	if keyID == "" {
		return nil, errors.New("no KMS key named: give its key ID, ARN or alias (alias/NAME)")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration for KMS: %w", err)
	}
	if cfg.Region == "" {
		if a, err := arn.Parse(keyID); err == nil && a.Region != "" {
			cfg.Region = a.Region
		} else {
			return nil, fmt.Errorf("KMS key %q: no AWS region configured; set AWS_REGION or name the key by its ARN", keyID)
		}
	}
	return open(ctx, kms.NewFromConfig(cfg, optFns...), keyID)
}

func open(ctx context.Context, c *kms.Client, keyID string) (*Key, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	out, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, fmt.Errorf("KMS key %q: reading its public key: %w", keyID, err)
	}
	if out.KeySpec != types.KeySpecEccNistEdwards25519 {
		return nil, fmt.Errorf("KMS key %q has key spec %s, not ECC_NIST_EDWARDS25519: checkpoints and cosignatures are Ed25519; create one with --key-spec ECC_NIST_EDWARDS25519 --key-usage SIGN_VERIFY", keyID, out.KeySpec)
	}
	if out.KeyUsage != types.KeyUsageTypeSignVerify {
		return nil, fmt.Errorf("KMS key %q has key usage %s, not SIGN_VERIFY", keyID, out.KeyUsage)
	}
	if !slices.Contains(out.SigningAlgorithms, types.SigningAlgorithmSpecEd25519Sha512) {
		return nil, fmt.Errorf("KMS key %q does not offer the ED25519_SHA_512 signing algorithm (it offers %v)", keyID, out.SigningAlgorithms)
	}
	pk, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("KMS key %q: its public key is not a DER SubjectPublicKeyInfo: %w", keyID, err)
	}
	pub, ok := pk.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("KMS key %q: its public key is a %T, not Ed25519", keyID, pk)
	}
	id := keyID
	if out.KeyId != nil && *out.KeyId != "" {
		id = *out.KeyId // the key ARN: an alias can be moved to another key, the ARN cannot
	}
	return &Key{client: c, id: id, pub: pub, timeout: DefaultTimeout}, nil
}

// ID is the key's ARN as KMS reported it.
func (k *Key) ID() string { return k.id }

// Public returns the Ed25519 public key.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Sign signs message with pure Ed25519 (opts must be crypto.Hash(0)).
// The signature is checked against the public key before it is returned,
// so a key swapped behind an alias or a faulty answer never reaches a
// checkpoint.
func (k *Key) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("KMS Ed25519 signs whole messages (pure Ed25519): opts must be crypto.Hash(0)")
	}
	if len(message) > MaxMessage {
		return nil, fmt.Errorf("message of %d bytes: KMS signs at most %d bytes raw; a checkpoint this large has too many extension lines", len(message), MaxMessage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	out, err := k.client.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(k.id),
		Message:          message,
		MessageType:      types.MessageTypeRaw,
		SigningAlgorithm: types.SigningAlgorithmSpecEd25519Sha512,
	})
	if err != nil {
		return nil, fmt.Errorf("KMS Sign with %s: %w", k.id, err)
	}
	if !ed25519.Verify(k.pub, message, out.Signature) {
		return nil, fmt.Errorf("KMS Sign with %s returned a signature that does not verify under the key's public key", k.id)
	}
	return out.Signature, nil
}
