package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/internal/durable"
)

// A frozen log (docs/operations.md, "Rotating to a new log") serves a
// freeze statement at client.FreezePath beside its checkpoint. The mirror
// copies it, verified (signed by the log key, naming the tree of the final
// checkpoint), once the copy holds that checkpoint: the statement is
// written after the checkpoint it names, so a copy never says it is frozen
// at a tree it does not hold. From then on the source's checkpoint must
// not change.

// Frozen is the log's freeze statement once the copy holds the final
// checkpoint it names; nil while the log is not frozen.
func (m *Mirror) Frozen() *client.Freeze { return m.frozen }

// openFreeze reads the copy's freeze statement, if any, and checks it
// names the copy's checkpoint.
func (m *Mirror) openFreeze(cp *client.Checkpoint) error {
	raw, err := os.ReadFile(filepath.Join(m.cfg.Dir, client.FreezePath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mirror: the local copy's freeze statement: %w", err)
	}
	f, err := client.ParseFreeze(raw, m.cfg.Log.Verifier())
	if err != nil {
		return fmt.Errorf("mirror: the local copy in %s: %w", m.cfg.Dir, err)
	}
	if f.Size != cp.Size || f.Root != cp.Root {
		return fmt.Errorf("mirror: the local copy in %s: %v, but its checkpoint is at size %d (root %x)", m.cfg.Dir, f, cp.Size, cp.Root)
	}
	m.frozen = f
	m.metrics.frozen.Set(1)
	return nil
}

// syncFreeze copies the source's freeze statement once the copy holds the
// final checkpoint it names.
func (m *Mirror) syncFreeze(ctx context.Context) error {
	if m.frozen != nil || m.cur == nil {
		return nil
	}
	f, final, err := m.cfg.Log.Freeze(ctx)
	if err != nil {
		if errors.Is(err, client.ErrVerification) {
			return err
		}
		return fmt.Errorf("source freeze statement: %w", err)
	}
	if f == nil || final.Size != m.cur.Size || final.Root != m.cur.Root {
		// Not frozen, or frozen since this catch-up read the checkpoint:
		// the next one mirrors the final checkpoint first.
		return nil
	}
	if err := durable.WriteAtomic(filepath.Join(m.cfg.Dir, client.FreezePath), f.Raw, 0o644); err != nil {
		return fmt.Errorf("mirror: writing the freeze statement: %w", err)
	}
	m.frozen = f
	m.metrics.frozen.Set(1)
	m.cfg.Logger.Info("the log is frozen: mirrored its freeze statement", "frozen", f.String())
	return nil
}
