package main

import (
	"context"
	"errors"

	"github.com/stele-dev/stele/internal/gcpkmskey"
	"github.com/stele-dev/stele/internal/logkey"
)

// openGCPKMSKey opens the log key in Google Cloud KMS (--log-key-gcpkms)
// under origin, which must be given: a key in KMS carries no log name.
func openGCPKMSKey(name, origin string) (*logkey.Key, *gcpkmskey.Key, error) {
	if origin == "" {
		return nil, nil, errors.New("--log-key-gcpkms needs --origin: a key in Cloud KMS carries no log name")
	}
	k, err := gcpkmskey.Open(context.Background(), name)
	if err != nil {
		return nil, nil, err
	}
	key, err := logkey.FromSigner(origin, k)
	if err != nil {
		k.Close()
		return nil, nil, err
	}
	return key, k, nil
}
