//go:build !cgo

package hsm

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
)

var errNoCgo = errors.New("PKCS#11 needs a cgo build of this binary (CGO_ENABLED=1 with a C compiler): PKCS#11 libraries are C shared objects")

// Key is unavailable without cgo.
type Key struct{}

// Open fails without cgo.
func Open(Config) (*Key, error) { return nil, errNoCgo }

// Generate fails without cgo.
func Generate(Config) (ed25519.PublicKey, error) { return nil, errNoCgo }

// Public is never called without cgo.
func (*Key) Public() crypto.PublicKey { return nil }

// Sign fails without cgo.
func (*Key) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, errNoCgo }

// Close does nothing without cgo.
func (*Key) Close() error { return nil }
