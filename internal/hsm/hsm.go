// Package hsm signs with an Ed25519 key that lives in a PKCS#11 token (a
// hardware security module, a cloud HSM's PKCS#11 library, or SoftHSM2)
// and never leaves it: the key is generated inside the token, marked
// sensitive and not extractable, and every signature is a C_Sign call with
// the EdDSA mechanism (PKCS#11 3.0, CKM_EDDSA over Ed25519 keys of type
// CKK_EC_EDWARDS).
//
// A Key is a crypto.Signer, so the log's checkpoint signer (internal/logkey)
// is built over it exactly as over a key in a file. PKCS#11 libraries are C
// shared objects: this package needs a cgo build; without cgo, Open and
// Generate say so.
package hsm

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Config names a key in a PKCS#11 token.
type Config struct {
	// Module is the path of the token's PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// Token is the token's label.
	Token string
	// Label is the key pair's label (CKA_LABEL) in the token.
	Label string
	// PIN is the user PIN.
	PIN string
}

// ParseConfig reads a key reference of the form
// "module=PATH;token=LABEL;label=KEYLABEL" (the order is free). The PIN is
// never part of it: it comes from pinFile when set, else from the
// environment variable STELE_PKCS11_PIN, so it shows in no process list.
func ParseConfig(ref, pinFile string) (Config, error) {
	var c Config
	for part := range strings.SplitSeq(ref, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return c, fmt.Errorf("PKCS#11 key reference %q: %q is not name=value; write module=PATH;token=LABEL;label=KEYLABEL", ref, part)
		}
		switch k {
		case "module":
			c.Module = v
		case "token":
			c.Token = v
		case "label":
			c.Label = v
		case "pin", "pin-value":
			return c, errors.New("PKCS#11 key reference: the PIN does not go in the reference (it would show in process lists and shell history); put it in a file for --pkcs11-pin-file or in $STELE_PKCS11_PIN")
		default:
			return c, fmt.Errorf("PKCS#11 key reference %q: unknown attribute %q (want module, token and label)", ref, k)
		}
	}
	switch {
	case c.Module == "":
		return c, fmt.Errorf("PKCS#11 key reference %q names no module=PATH (the token's PKCS#11 library)", ref)
	case c.Token == "":
		return c, fmt.Errorf("PKCS#11 key reference %q names no token=LABEL", ref)
	case c.Label == "":
		return c, fmt.Errorf("PKCS#11 key reference %q names no label=KEYLABEL", ref)
	}
	if pinFile != "" {
		b, err := os.ReadFile(pinFile)
		if err != nil {
			return c, fmt.Errorf("reading the PKCS#11 PIN: %w", err)
		}
		c.PIN = strings.TrimRight(string(b), "\r\n")
	} else {
		c.PIN = os.Getenv("STELE_PKCS11_PIN")
	}
	if c.PIN == "" {
		return c, errors.New("no PKCS#11 PIN: give --pkcs11-pin-file FILE or set $STELE_PKCS11_PIN")
	}
	return c, nil
}
