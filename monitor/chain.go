package monitor

import (
	"context"
	"errors"
	"fmt"

	"github.com/stele-dev/stele/client"
)

// AlertLogFrozen says the monitored log is frozen (its freeze statement and
// final checkpoint verified) and names its successor, which the Follower
// monitors next. Severity "info": a planned rotation, not an attack.
const AlertLogFrozen = "log_frozen"

// AlertFreeze says a log's freeze statement does not verify, or a frozen
// log changed after it was frozen.
const AlertFreeze = "freeze"

// Follower monitors a chain of logs (temporal sharding): a Monitor on the
// current log and, once that log is frozen and verified to its final
// checkpoint, a Monitor on its successor, found and verified by
// client.Chain with the key the freeze statement names.
type Follower struct {
	chain *client.Chain
	make  func(*client.ChainLink) (*Monitor, error)
	cur   *client.ChainLink
	m     *Monitor
}

// NewFollower starts a Follower at the log first. newMonitor makes the
// Monitor of each log of the chain (its own Config.Log, State and so on).
func NewFollower(chain *client.Chain, first *client.TileLog, newMonitor func(*client.ChainLink) (*Monitor, error)) (*Follower, error) {
	link := &client.ChainLink{Log: first}
	m, err := newMonitor(link)
	if err != nil {
		return nil, err
	}
	return &Follower{chain: chain, make: newMonitor, cur: link, m: m}, nil
}

// Monitor is the monitor of the log followed now.
func (f *Follower) Monitor() *Monitor { return f.m }

// Current is the log followed now.
func (f *Follower) Current() *client.ChainLink { return f.cur }

// Step runs a step of the current log's monitor; then, if that log is
// frozen and its monitor has verified it to the final checkpoint, it emits
// AlertLogFrozen and moves on to the successor (and steps it, and so on).
func (f *Follower) Step(ctx context.Context) error {
	for {
		if err := f.m.Step(ctx); err != nil {
			return err
		}
		next, err := f.chain.Next(ctx, f.cur)
		if err != nil {
			if errors.Is(err, client.ErrVerification) {
				f.m.once(Alert{Type: AlertFreeze, Origin: f.cur.Origin(), Severity: "critical", Message: err.Error()})
			}
			return err
		}
		fr := f.cur.Freeze
		if fr == nil {
			return nil
		}
		if t := f.m.Trusted(); t == nil || t.Size != fr.Size || t.Root != fr.Root {
			// Frozen since the step read the checkpoint: the next step
			// verifies up to the final checkpoint.
			return nil
		}
		f.m.once(Alert{Type: AlertLogFrozen, Origin: fr.Origin, Severity: "info", Message: fr.String(),
			Seen: head(fr.Size, fr.Root), LogCheckpoint: string(f.cur.Final.Raw)})
		if next == nil {
			return nil
		}
		m, err := f.make(next)
		if err != nil {
			return fmt.Errorf("monitoring %s, the successor of %s: %w", next.Origin(), fr.Origin, err)
		}
		f.cur, f.m = next, m
	}
}
