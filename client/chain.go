package client

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/mod/sumdb/note"
)

// ChainLink is one log of a chain of logs (temporal sharding): each frozen
// log's freeze statement names the next. Freeze and Final are nil for the
// chain's head, the log that is still open.
type ChainLink struct {
	Log    *TileLog
	URL    string
	Freeze *Freeze
	// Final is the frozen log's final checkpoint (the one Freeze names),
	// checked against Chain.Policy when one is set.
	Final *Checkpoint
}

// Origin is the link's log origin.
func (c *ChainLink) Origin() string { return c.Log.Verifier().Name() }

// Chain follows a chain of logs from a first log to the open one: it reads
// each log's freeze statement (TileLog.Freeze), verifies it with that log's
// key, checks the final checkpoint against Policy, and continues with the
// successor the statement names, verified with the key the statement names.
// The forwarder and the explorer can follow a rotated log with it the same
// way the stele CLI does.
type Chain struct {
	// HTTPClient reads every log (nil: a default client).
	HTTPClient *http.Client
	// Policy, when set, is the witness policy every frozen log's final
	// checkpoint must meet.
	Policy *Policy
	// URLs maps a successor's origin to the URL to read it at, overriding
	// the successor-url of the freeze statement (which is optional).
	URLs map[string]string
	// MaxLogs bounds how many logs are followed. Default 1000.
	MaxLogs int
}

// Next reads the freeze statement of link's log. It returns nil when the log
// is not frozen, and otherwise link (with Freeze and Final set) and the
// successor's link. A frozen log without a successor ends the chain: Next
// then returns the updated link and a nil successor.
func (c *Chain) Next(ctx context.Context, link *ChainLink) (*ChainLink, error) {
	f, final, err := link.Log.Freeze(ctx)
	if err != nil || f == nil {
		return nil, err
	}
	if c.Policy != nil {
		if err := c.Policy.Check(final); err != nil {
			return nil, fmt.Errorf("%w: the final checkpoint of frozen log %s: %v", ErrVerification, f.Origin, err)
		}
	}
	link.Freeze, link.Final = f, final
	if f.Successor == "" {
		return nil, nil
	}
	v, err := f.SuccessorVerifier()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	u := c.URLs[f.Successor]
	if u == "" {
		u = f.SuccessorURL
	}
	if u == "" {
		return nil, fmt.Errorf("%s names successor %s but no URL for it: give one (Chain.URLs, or the CLI's --successor-url %s=URL)", f.Origin, f.Successor, f.Successor)
	}
	return c.open(u, v)
}

func (c *Chain) open(u string, v note.Verifier) (*ChainLink, error) {
	lg, err := NewTileLog(u, v, c.HTTPClient)
	if err != nil {
		return nil, err
	}
	return &ChainLink{Log: lg, URL: u}, nil
}

// Follow returns every log of the chain from the log at logURL (verified
// with verifier) to the open one, or to a frozen log that names no
// successor.
func (c *Chain) Follow(ctx context.Context, logURL string, verifier note.Verifier) ([]*ChainLink, error) {
	max := c.MaxLogs
	if max == 0 {
		max = 1000
	}
	link, err := c.open(logURL, verifier)
	if err != nil {
		return nil, err
	}
	links := []*ChainLink{link}
	seen := map[string]bool{link.Origin(): true}
	for {
		next, err := c.Next(ctx, link)
		if err != nil {
			return links, fmt.Errorf("following the chain of logs at %s: %w", link.Origin(), err)
		}
		if next == nil {
			return links, nil
		}
		if seen[next.Origin()] {
			return links, fmt.Errorf("%w: the chain of logs comes back to %s", ErrVerification, next.Origin())
		}
		if len(links) == max {
			return links, fmt.Errorf("the chain of logs is longer than %d logs", max)
		}
		seen[next.Origin()] = true
		links = append(links, next)
		link = next
	}
}
