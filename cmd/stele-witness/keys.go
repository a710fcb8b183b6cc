package main

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"slices"

	"github.com/stele-dev/stele/internal/gcpkmskey"
	"github.com/stele-dev/stele/internal/hsm"
	"github.com/stele-dev/stele/internal/kmskey"
	"github.com/stele-dev/stele/witness"
)

// keyFlags name a witness key held outside the data directory.
type keyFlags struct {
	pkcs11, pinFile, kms *string
	gcpkms               *string
}

func (k keyFlags) add(fs interface {
	String(name, value, usage string) *string
}) keyFlags {
	k.pkcs11 = fs.String("key-pkcs11", "", "the witness's Ed25519 key inside a PKCS#11 token (an HSM): module=PATH;token=LABEL;label=KEYLABEL; needs --name; PIN from --pkcs11-pin-file or $STELE_PKCS11_PIN (docs/witness.md)")
	k.pinFile = fs.String("pkcs11-pin-file", "", "file holding the PKCS#11 token's user PIN (default: $STELE_PKCS11_PIN)")
	k.kms = fs.String("key-kms", "", "the witness's Ed25519 key in AWS KMS (key spec ECC_NIST_EDWARDS25519): its ARN, key ID or alias/NAME; needs --name")
	k.gcpkms = fs.String("key-gcpkms", "", "the witness's Ed25519 key in Google Cloud KMS (algorithm EC_SIGN_ED25519): projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N; needs --name; credentials from Application Default Credentials")
	return k
}

// open returns the named key, or nil when the key is the data directory's
// witness.key; the closer releases the token session.
func (k keyFlags) open(ctx context.Context) (crypto.Signer, io.Closer, error) {
	switch {
	case len(slices.DeleteFunc([]string{*k.pkcs11, *k.kms, *k.gcpkms}, func(s string) bool { return s == "" })) > 1:
		return nil, nil, usageError{"--key-pkcs11, --key-kms and --key-gcpkms name different keys: give one"}
	case *k.gcpkms != "":
		key, err := gcpkmskey.Open(ctx, *k.gcpkms)
		if err != nil {
			return nil, nil, err
		}
		return key, key, nil
	case *k.pkcs11 != "":
		c, err := hsm.ParseConfig(*k.pkcs11, *k.pinFile)
		if err != nil {
			return nil, nil, err
		}
		key, err := hsm.Open(c)
		if err != nil {
			return nil, nil, err
		}
		return key, key, nil
	case *k.kms != "":
		key, err := kmskey.Open(ctx, *k.kms)
		if err != nil {
			return nil, nil, err
		}
		return key, io.NopCloser(nil), nil
	}
	return nil, io.NopCloser(nil), nil
}

// pkcs11Keygen is `stele-witness pkcs11-keygen`: generate the witness's
// Ed25519 key inside a PKCS#11 token and print its verifier key (the one
// logs put in their policies).
func pkcs11Keygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pkcs11-keygen", stderr)
	ref := fs.String("key-pkcs11", "", "the key to create: module=PATH;token=LABEL;label=KEYLABEL")
	pinFile := fs.String("pkcs11-pin-file", "", "file holding the token's user PIN (default: $STELE_PKCS11_PIN)")
	name := fs.String("name", "", "the witness's cosigner name (e.g. witness.example.com/w1)")
	if err := parse(fs, args, stderr); err != nil {
		return err
	}
	if *ref == "" || *name == "" {
		return usageError{"pkcs11-keygen needs --key-pkcs11 and --name"}
	}
	c, err := hsm.ParseConfig(*ref, *pinFile)
	if err != nil {
		return err
	}
	pub, err := hsm.Generate(c)
	if err != nil {
		return err
	}
	vkey, err := witness.VerifierKeyFor(*name, pub)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, vkey)
	return nil
}
