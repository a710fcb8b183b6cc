package cli

import (
	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/logkey"
)

// requireAllKeysFlag adds --require-all-log-keys to a command that takes
// --log-key.
func requireAllKeysFlag(fs interface {
	Bool(string, bool, string) *bool
}) *bool {
	return fs.Bool("require-all-log-keys", false, "accept only checkpoints signed by every key in --log-key (e.g. both the log's Ed25519 and ML-DSA-44 keys); by default a valid signature by any one of them will do")
}

// readLogKey reads --log-key: log.pub (one key a line) or the key(s)
// themselves; with all, every key must have signed a checkpoint.
func readLogKey(path string, all bool) (*client.LogVerifier, error) {
	v, err := logkey.ReadVerifier(path)
	if err != nil {
		return nil, err
	}
	if all {
		v = v.RequireAll()
	}
	return v, nil
}
