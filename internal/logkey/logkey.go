// Package logkey loads or creates the Ed25519 key a log signs its
// checkpoints with, as C2SP signed-note keys.
package logkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

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
}

// LoadOrCreate reads dir/log.key, or generates it (mode 0600) when absent,
// and (re)writes dir/log.pub. When origin is empty, an existing key's name
// is used, or defaultOrigin for a new key. An existing key whose name is not
// origin is an error: the key name must equal the checkpoint origin.
func LoadOrCreate(dir, origin, defaultOrigin string) (*Key, error) {
	privPath := filepath.Join(dir, PrivateFile)
	skey, err := durable.ReadOrCreateSecret(privPath, "log key", func() (string, error) {
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
	if err := durable.WriteAtomic(filepath.Join(dir, PublicFile), []byte(k.VKey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("writing verifier key: %w", err)
	}
	return k, nil
}

// Load reads the private key in path, which must exist: it is never
// created, so replicas that share a log cannot each make their own key. When
// origin is set, the key's name must equal it. Nothing is written.
func Load(path, origin string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading log key: %w (copy log.key from the log's first server, or leave --log-key unset to create one in the data directory)", err)
	}
	return fromSecret(strings.TrimSpace(string(raw)), path, origin, "use the key's origin")
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

// ReadVerifier reads a verifier key file such as log.pub, or takes path
// itself as the key when it is one (name+hash+key, as in
// --log-key "$(cat stele-data/log.pub)").
func ReadVerifier(path string) (note.Verifier, error) {
	if v, err := note.NewVerifier(strings.TrimSpace(path)); err == nil {
		return v, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading log verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%s does not hold a signed-note verifier key (name+hash+key): %w", path, err)
	}
	return v, nil
}
