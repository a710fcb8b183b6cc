package cli

import (
	"fmt"
	"strings"
	"time"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// cmdErase erases the payload of one entry (admin role).
func cmdErase(e *env, args []string) error {
	fs := newFlags("erase")
	sf := addServerFlags(fs)
	idxS := fs.String("index", "", "index of the entry whose payload to erase")
	reason := fs.String("reason", "", "why (required; written into the log: no personal data)")
	ref := fs.String("ref", "", "the request this erasure answers, e.g. a ticket id (required; no personal data)")
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	idx, err := indexFlag(*idxS)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("--reason TEXT is required")
	}
	if strings.TrimSpace(*ref) == "" {
		return usagef("--ref REFERENCE is required")
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := sf.request()
	defer cancel()
	resp, err := c.Log.EraseEvent(ctx, eraseRequest(idx, *reason, *ref), waitReady)
	if err != nil {
		return rpcError(err)
	}
	t := resp.Tombstone
	what := "erased"
	if resp.AlreadyErased {
		what = "already erased"
	}
	_, err = fmt.Fprintf(e.stdout, "entry %d %s: at %s by %s, request %s, reason %q; erasure event at index %d\n",
		t.GetIndex(), what, t.GetErasedAt().AsTime().Format(time.RFC3339), t.GetErasedBy(), t.GetRequestReference(), t.GetReason(), t.GetErasureIndex())
	return err
}

func eraseRequest(idx uint64, reason, ref string) *stelev1.EraseEventRequest {
	return &stelev1.EraseEventRequest{Index: idx, Reason: reason, RequestReference: ref}
}
