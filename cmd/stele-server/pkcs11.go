package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/stele-dev/stele/internal/hsm"
	"github.com/stele-dev/stele/server"
)

// pkcs11Keygen is `stele-server pkcs11-keygen`: generate the log's Ed25519
// key inside a PKCS#11 token and print its verifier key.
func pkcs11Keygen(args []string) error {
	fs := flag.NewFlagSet("stele-server pkcs11-keygen", flag.ContinueOnError)
	ref := fs.String("log-key-pkcs11", "", "the key to create: module=PATH;token=LABEL;label=KEYLABEL")
	pinFile := fs.String("pkcs11-pin-file", "", "file holding the token's user PIN (default: $STELE_PKCS11_PIN)")
	origin := fs.String("origin", server.DefaultOrigin, "the log's origin: the name checkpoints are signed under")
	out := fs.String("out", "", "also write the verifier key to this file (e.g. the data directory's log.pub)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: stele-server pkcs11-keygen --log-key-pkcs11 'module=PATH;token=LABEL;label=KEYLABEL' --origin ORIGIN [--pkcs11-pin-file FILE] [--out FILE]")
		fmt.Fprintln(fs.Output(), "Generates the log's Ed25519 key inside the token (never exported) and prints its verifier key.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *ref == "" || fs.NArg() > 0 {
		return errors.New("pkcs11-keygen needs --log-key-pkcs11 and no other argument; see stele-server pkcs11-keygen -h")
	}
	c, err := hsm.ParseConfig(*ref, *pinFile)
	if err != nil {
		return err
	}
	if _, err := hsm.Generate(c); err != nil {
		return err
	}
	key, k, err := pkcs11Key(*ref, *pinFile).logKey(*origin)
	if err != nil {
		return err
	}
	k.Close()
	if *out != "" {
		if err := os.WriteFile(*out, []byte(key.VKey+"\n"), 0o644); err != nil {
			return fmt.Errorf("writing verifier key: %w", err)
		}
	}
	fmt.Println(key.VKey)
	return nil
}
