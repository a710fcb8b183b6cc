package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
)

// chainFlags are the flags of the commands that follow a chain of logs
// (a frozen log's freeze statement names its successor).
type chainFlags struct {
	urls *stringList
}

func addChainFlags(fs *flag.FlagSet) chainFlags {
	var urls stringList
	fs.Var(&urls, "successor-url", "ORIGIN=URL: read successor log ORIGIN at this tlog-tiles URL instead of the one its predecessor's freeze statement names (repeatable)")
	return chainFlags{urls: &urls}
}

func (f chainFlags) chain(policy *client.Policy) (*client.Chain, error) {
	urls, err := originMap("--successor-url", *f.urls)
	if err != nil {
		return nil, err
	}
	return &client.Chain{Policy: policy, URLs: urls}, nil
}

// originMap parses repeated ORIGIN=VALUE flags.
func originMap(flagName string, l stringList) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range l {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, usagef("%s %q: want ORIGIN=VALUE", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}

// frozenNote says, after a verified size, that the log is frozen.
func frozenNote(link *client.ChainLink) string {
	if link == nil || link.Freeze == nil {
		return ""
	}
	if link.Freeze.Successor == "" {
		return " (frozen; no successor)"
	}
	return fmt.Sprintf(" (frozen; successor %s)", link.Freeze.Successor)
}

// receiptInFrozenLog checks that a receipt's checkpoint is consistent with
// the frozen log's final checkpoint: the entry is in the log's final tree.
func receiptInFrozenLog(ctx context.Context, lg *client.TileLog, r *client.Receipt, final *client.Checkpoint) error {
	if err := client.CheckConsistent(ctx, r.Checkpoint, final, lg.ConsistencyProof); err != nil {
		return fmt.Errorf("the receipt's checkpoint against the frozen log's final checkpoint: %w", err)
	}
	return nil
}

// verifyLogState is `stele verify --log`: it reads the log's freeze
// statement and reports a frozen log (after checking the receipt against
// its final checkpoint) or an open one.
func verifyLogState(e *env, logURL string, v note.Verifier, policy *client.Policy, r *client.Receipt) error {
	lg, err := client.NewTileLog(logURL, v, nil)
	if err != nil {
		return usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	link := &client.ChainLink{Log: lg, URL: logURL}
	if _, err := (&client.Chain{Policy: policy}).Next(ctx, link); err != nil && link.Freeze == nil {
		return err
	}
	if link.Freeze == nil {
		cp, err := lg.Checkpoint(ctx)
		if err != nil {
			return err
		}
		if err := client.CheckConsistent(ctx, r.Checkpoint, cp, lg.ConsistencyProof); err != nil {
			return fmt.Errorf("the receipt's checkpoint against the log's: %w", err)
		}
		fmt.Fprintf(e.stdout, "log open: %s is not frozen; its checkpoint (size %d) extends the receipt's\n", cp.Origin, cp.Size)
		return nil
	}
	if err := receiptInFrozenLog(ctx, lg, r, link.Final); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "log frozen: %s; the receipt's checkpoint is consistent with the final one\n", link.Freeze)
	return nil
}
