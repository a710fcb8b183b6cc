package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/stele-dev/stele/internal/gcpkmskey"
	"github.com/stele-dev/stele/internal/hsm"
	"github.com/stele-dev/stele/internal/kmskey"
	"github.com/stele-dev/stele/internal/logkey"
)

// outsideKey is a log key held outside the data directory — in a PKCS#11
// token or a cloud KMS — as the flag named flag gives it (ref: its value).
// noName says why the flag needs --origin; open opens the key as a signer
// and what releases it (the token session, the KMS client).
type outsideKey struct {
	flag, ref, noName string
	open              func() (crypto.Signer, io.Closer, error)
}

// outsideLogKey opens the log key that --log-key-pkcs11, --log-key-kms or
// --log-key-gcpkms names, under origin; nil when none does. The closer
// releases it. Naming more than one key, --log-key included, is an error.
func (f *flags) outsideLogKey(origin string) (*logkey.Key, io.Closer, error) {
	var named []outsideKey
	for _, k := range []outsideKey{
		pkcs11Key(f.logKeyPKCS11, f.pkcs11PINFile),
		{"log-key-kms", f.logKeyKMS, "a key in KMS carries no log name", func() (crypto.Signer, io.Closer, error) {
			k, err := kmskey.Open(context.Background(), f.logKeyKMS)
			return opened(k, io.NopCloser(nil), err)
		}},
		{"log-key-gcpkms", f.logKeyGCPKMS, "a key in Cloud KMS carries no log name", func() (crypto.Signer, io.Closer, error) {
			k, err := gcpkmskey.Open(context.Background(), f.logKeyGCPKMS)
			return opened(k, k, err)
		}},
	} {
		if k.ref != "" {
			named = append(named, k)
		}
	}
	switch {
	case len(named) == 0:
		return nil, io.NopCloser(nil), nil
	case len(named) > 1 || f.logKey != "":
		return nil, nil, errors.New("--log-key, --log-key-pkcs11, --log-key-kms and --log-key-gcpkms name different keys: give one")
	}
	return named[0].logKey(origin)
}

// pkcs11Key is the key in a PKCS#11 token that --log-key-pkcs11 names, its
// PIN in pinFile or $STELE_PKCS11_PIN.
func pkcs11Key(ref, pinFile string) outsideKey {
	return outsideKey{"log-key-pkcs11", ref, "a key in a token carries no log name (use the origin it was made for with 'stele-server pkcs11-keygen')",
		func() (crypto.Signer, io.Closer, error) {
			c, err := hsm.ParseConfig(ref, pinFile)
			if err != nil {
				return nil, nil, err
			}
			k, err := hsm.Open(c)
			return opened(k, k, err)
		}}
}

// opened is an open's answer: s and c, or only err.
func opened(s crypto.Signer, c io.Closer, err error) (crypto.Signer, io.Closer, error) {
	if err != nil {
		return nil, nil, err
	}
	return s, c, nil
}

// logKey opens k as the log key under origin, which must be given: a key
// in a token or KMS carries no log name.
func (k outsideKey) logKey(origin string) (*logkey.Key, io.Closer, error) {
	if origin == "" {
		return nil, nil, fmt.Errorf("--%s needs --origin: %s", k.flag, k.noName)
	}
	s, c, err := k.open()
	if err != nil {
		return nil, nil, err
	}
	key, err := logkey.FromSigner(origin, s)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return key, c, nil
}
