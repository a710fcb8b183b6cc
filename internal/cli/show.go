package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// showProof is the proof status `stele show` reports.
type showProof struct {
	// Inclusion is "verified" (against the signed checkpoint named beside
	// it) or "not checked" with the reason.
	Inclusion      string `json:"inclusion"`
	CheckpointSize uint64 `json:"checkpoint_size,omitempty"`
	Origin         string `json:"origin,omitempty"`
	// PayloadDigest is "matches the leaf" or "erased".
	PayloadDigest string                  `json:"payload_digest"`
	Erased        *stelev1.EraseTombstone `json:"erased,omitempty"`
}

type showLeaf struct {
	Source       string    `json:"source"`
	EventID      string    `json:"event_id"`
	Kind         string    `json:"kind"`
	EventTime    time.Time `json:"event_time"`
	AdmittedTime time.Time `json:"admitted_time"`
}

// cmdShow prints an entry's normalised view with its proof status.
func cmdShow(e *env, args []string) error {
	fs := newFlags("show")
	sf := addServerFlags(fs)
	ef := addEntryFlags(fs)
	raw := fs.Bool("raw", false, "print the raw record's exact bytes instead of the normalised view (proof status on stderr)")
	format := fs.String("format", "json", "json: the normalised view with the proof status; ocsf: the event as OCSF 1.8.0 (proof status on stderr)")
	keyPath := fs.String("log-key", os.Getenv("STELE_LOG_KEY"), "the log's verifier key, its file (log.pub) or the key itself: verify the entry's inclusion in the signed checkpoint (default $STELE_LOG_KEY)")
	allKeys := requireAllKeysFlag(fs)
	if err := parseNoArgs(e, fs, args); err != nil {
		return err
	}
	if byID, err := ef.byID(); err != nil {
		return err
	} else if !byID {
		if _, err := indexFlag(*ef.index); err != nil {
			return err
		}
	}
	if *format != "json" && *format != "ocsf" {
		return usagef("--format must be json or ocsf, got %q", *format)
	}
	c, err := sf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := sf.request()
	defer cancel()
	idx, err := ef.resolve(ctx, c)
	if err != nil {
		return err
	}

	var (
		l     *leaf.Leaf
		p     *payload.Payload
		proof showProof
	)
	if *keyPath != "" {
		v, err := readLogKey(*keyPath, *allKeys)
		if err != nil {
			return err
		}
		r, pl, err := c.VerifiedEvent(ctx, idx, v, nil)
		var erased *client.ErasedError
		switch {
		case errors.As(err, &erased):
			proof.Erased = erased.Tombstone
		case err != nil:
			return rpcOrVerifyError(err)
		}
		l, p = r.Leaf, pl
		proof.Inclusion, proof.CheckpointSize, proof.Origin = "verified", r.Checkpoint.Size, r.Checkpoint.Origin
	} else {
		ev, err := c.Event(ctx, idx)
		if err != nil {
			return rpcOrVerifyError(err)
		}
		if l, err = leaf.Unmarshal(ev.Leaf); err != nil {
			return fmt.Errorf("entry %d: %w", idx, err)
		}
		proof.Inclusion = "not checked: pass --log-key to verify the entry against the signed checkpoint"
		if ev.Tombstone != nil {
			proof.Erased = ev.Tombstone
		} else {
			if err := l.VerifyPayload(ev.Salt, ev.Payload); err != nil {
				return fmt.Errorf("entry %d: the payload does not match its leaf: %w", idx, err)
			}
			if p, err = payload.Unmarshal(ev.Payload); err != nil {
				return fmt.Errorf("entry %d: %w", idx, err)
			}
		}
	}
	proof.PayloadDigest = "matches the leaf"
	if proof.Erased != nil {
		proof.PayloadDigest = "erased"
	}
	status, err := json.Marshal(proof)
	if err != nil {
		return err
	}

	if p == nil { // erased
		if *raw || *format == "ocsf" {
			return &client.ErasedError{Index: idx, Tombstone: proof.Erased}
		}
		return writeJSON(e, map[string]any{"index": idx, "proof": proof, "leaf": leafView(l)})
	}
	if *raw {
		fmt.Fprintf(e.stderr, "proof: %s\n", status)
		_, err := e.stdout.Write(p.Record)
		return err
	}

	// The stored view, and the current normaliser's view of the same record.
	stored, current, curErr, err := identity.Views(p)
	if err != nil {
		return fmt.Errorf("entry %d: stored normalised view: %w", idx, err)
	}
	if *format == "ocsf" {
		view := stored
		if view == nil {
			if curErr != nil {
				return fmt.Errorf("entry %d: %w", idx, curErr)
			}
			view = current
		}
		if view.EventTime == nil {
			view.EventTime = timestamppb.New(l.EventTime)
		}
		b, err := identity.OCSF(view)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "proof: %s\n", status)
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	out := map[string]any{"index": idx, "proof": proof, "leaf": leafView(l), "format": p.Format}
	if stored != nil {
		out["normalized"] = json.RawMessage(mustJSON(stored))
	} else {
		out["normalized"] = nil
	}
	switch {
	case curErr != nil:
		out["current_normalizer_error"] = curErr.Error()
	case stored == nil || string(mustJSON(stored)) != string(mustJSON(current)):
		// The view the current normaliser derives from the raw record
		// differs from the stored one (or none was stored).
		out["current_normalized"] = json.RawMessage(mustJSON(current))
	}
	return writeJSON(e, out)
}

func leafView(l *leaf.Leaf) showLeaf {
	return showLeaf{Source: l.Source, EventID: l.EventID, Kind: l.Kind, EventTime: l.EventTime, AdmittedTime: l.AdmittedTime}
}

func mustJSON(ev *stelev1.IdentityEvent) []byte {
	b, err := identity.JSON(ev)
	if err != nil {
		b, _ = json.Marshal(err.Error())
	}
	return b
}

// rpcOrVerifyError renders a gRPC failure as "Code: message", and any other
// error (a verification failure) as it is.
func rpcOrVerifyError(err error) error {
	if errors.Is(err, client.ErrVerification) {
		return err
	}
	return rpcError(err)
}
