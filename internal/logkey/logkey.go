// Package logkey loads or creates the keys a log signs its checkpoints
// with, as C2SP signed-note keys: an Ed25519 key (log.key) and, for logs
// that also sign with the post-quantum ML-DSA-44 (the default for new
// logs), an ML-DSA-44 key (log-mldsa.key). log.pub lists their verifier
// keys, one a line, Ed25519 first.
package logkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
)

const (
	// PrivateFile is the private key's file name in the data directory.
	PrivateFile = "log.key"
	// PublicFile is the verifier key's file name in the data directory.
	PublicFile = "log.pub"
)

// Key is a loaded log key.
type Key struct {
	Signer   note.Signer
	Verifier note.Verifier
	// VKey is the verifier key in signed-note text form.
	VKey string
	// MLDSA is the log's ML-DSA-44 key, an additional checkpoint signer;
	// nil when the log signs with Ed25519 only.
	MLDSA *MLDSAKey
}

// AdditionalSigners are the checkpoint signers besides Signer (Tessera's
// WithCheckpointSigner(Signer, AdditionalSigners()...)).
func (k *Key) AdditionalSigners() []note.Signer {
	if k.MLDSA == nil {
		return nil
	}
	return []note.Signer{k.MLDSA.Signer}
}

// VKeys are the log's verifier keys, Ed25519 first.
func (k *Key) VKeys() []string {
	if k.MLDSA == nil {
		return []string{k.VKey}
	}
	return []string{k.VKey, k.MLDSA.VKey}
}

// PublicText is log.pub's content: the verifier keys, one a line.
func (k *Key) PublicText() []byte {
	return []byte(strings.Join(k.VKeys(), "\n") + "\n")
}

// WritePublic (re)writes dir/log.pub.
func (k *Key) WritePublic(dir string) error {
	if err := durable.WriteAtomic(filepath.Join(dir, PublicFile), k.PublicText(), 0o644); err != nil {
		return fmt.Errorf("writing verifier key: %w", err)
	}
	return nil
}

// LoadOrCreate reads dir/log.key, or generates it (mode 0600) when absent,
// applies pq to dir/log-mldsa.key (MLDSAAuto: a new log gets one, an
// existing log keeps what it has), and (re)writes dir/log.pub. When origin
// is empty, an existing key's name is used, or defaultOrigin for a new key.
// An existing key whose name is not origin is an error: the key name must
// equal the checkpoint origin.
func LoadOrCreate(dir, origin, defaultOrigin string, pq MLDSA) (*Key, error) {
	privPath := filepath.Join(dir, PrivateFile)
	created := false
	skey, err := durable.ReadOrCreateSecret(privPath, "log key", func() (string, error) {
		created = true
		if origin == "" {
			origin = defaultOrigin
		}
		skey, _, err := note.GenerateKey(rand.Reader, origin)
		return skey, err
	})
	if err != nil {
		return nil, err
	}
	k, err := fromSecret(skey, privPath, origin, "use the key's origin or another data directory")
	if err != nil {
		return nil, err
	}
	if k.MLDSA, err = loadOrCreateMLDSA(dir, k.Signer.Name(), created, pq); err != nil {
		return nil, err
	}
	if err := k.WritePublic(dir); err != nil {
		return nil, err
	}
	return k, nil
}

// Load reads the private key in path, which must exist: it is never
// created, so replicas that share a log cannot each make their own key. When
// origin is set, the key's name must equal it. Nothing is written. A file
// other users can access is refused as log.key in a data directory is
// (durable.CheckSecretFile): a private key is private wherever it lives.
func Load(path, origin string) (*Key, error) {
	skey, err := durable.ReadSecret(path, "log key")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (copy log.key from the log's first server, or leave --log-key unset to create one in the data directory)", err)
	}
	if err != nil {
		return nil, err
	}
	return fromSecret(skey, path, origin, "use the key's origin")
}

// fromSecret makes the Key of the private key skey, read from path. When
// origin is set, the key's name must equal it; fix says what to do if not.
func fromSecret(skey, path, origin, fix string) (*Key, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("log key %s is not a valid Ed25519 signed-note key", path)
	}
	if origin != "" && signer.Name() != origin {
		return nil, fmt.Errorf("log key %s is for origin %q but the origin is set to %q: a log's origin cannot change; %s", path, signer.Name(), origin, fix)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("deriving verifier key: %w", err)
	}
	return &Key{Signer: signer, Verifier: verifier, VKey: vkey}, nil
}

// VerifierKey derives the signed-note verifier key from a private key.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	s, err := note.NewSigner(skey)
	if err != nil {
		return "", fmt.Errorf("not a valid signed-note private key: %w", err)
	}
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 0x01 {
		return "", errors.New("private key is not an Ed25519 (type 0x01) signed-note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(s.Name(), pub)
}

// ReadVerifier reads a verifier key file such as log.pub (one key a
// line: the log's Ed25519 key and, for a log that also signs with
// ML-DSA-44, that key), or takes path itself as the key(s) when it is (as
// in --log-key "$(cat stele-data/log.pub)"). The result accepts a
// checkpoint signed by any of the keys; its RequireAll wants all of them.
func ReadVerifier(path string) (*client.LogVerifier, error) {
	if v, err := client.NewLogVerifier(strings.Fields(path)...); err == nil {
		return v, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading log verifier key: %w", err)
	}
	v, err := client.NewLogVerifier(strings.Fields(string(raw))...)
	if err != nil {
		return nil, fmt.Errorf("%s does not hold a signed-note verifier key (name+hash+key; a line for each of the log's keys): %w", path, err)
	}
	return v, nil
}
