package client

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// SignEvent sets ev's producer signature: key's Ed25519 signature over
// leaf.ProducerMessage of the event's fields (docs/leaf-v1.md). Change
// nothing in the event afterwards, or the server refuses it.
//
// The signature covers event_id, kind and event_time, so a signed event
// must carry them; where they are empty, SignEvent first fills them in as
// the server's normaliser would (identity.Normalize of the record).
func SignEvent(ev *stelev1.Event, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing key is %d bytes, want an Ed25519 private key (%d)", len(key), ed25519.PrivateKeySize)
	}
	if ev.EventId == "" || ev.Kind == "" || ev.EventTime == nil {
		view, err := identity.Normalize(ev.Format, ev.Record)
		if err != nil {
			return fmt.Errorf("signing: event_id, kind or event_time is empty and the record cannot be normalised to fill them in: %w", err)
		}
		if ev.EventId == "" {
			ev.EventId = view.NativeId
		}
		if ev.Kind == "" {
			ev.Kind = view.Kind
		}
		if ev.EventTime == nil {
			ev.EventTime = view.EventTime
		}
	}
	if ev.EventTime == nil {
		return errors.New("signing: the event has no event_time")
	}
	msg := leaf.ProducerMessage(ev.Source, ev.SourceSeq, ev.EventId, ev.Kind, ev.EventTime.AsTime(), ev.Format, ev.Record)
	if msg == nil {
		return fmt.Errorf("signing event %q of %q: its fields cannot form a producer message (invalid source, event_id, kind, format, time or an empty record)", ev.EventId, ev.Source)
	}
	ev.ProducerSignature = &stelev1.ProducerSignature{
		PublicKey: key.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(key, msg),
	}
	return nil
}

// signAll signs each event of a batch that has no signature yet.
func signAll(events []*stelev1.Event, key ed25519.PrivateKey) error {
	for _, ev := range events {
		if ev == nil || ev.ProducerSignature != nil {
			continue
		}
		if err := SignEvent(ev, key); err != nil {
			return err
		}
	}
	return nil
}

// WithSigningKey makes every Append sent on the connection carry producer
// signatures by key: each event without one is signed (SignEvent) before it
// is sent, so Client.Append, Submitter and the CLI sign. A source that the
// server's access policy marks as signed needs it. AppendStream callers
// sign each event with SignEvent themselves.
func WithSigningKey(key ed25519.PrivateKey) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*stelev1.AppendRequest); ok {
			if err := signAll(r.Events, key); err != nil {
				return err
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// ParseSigningKey reads an Ed25519 private key in either form Stele
// accepts: a signed-note signer key "PRIVATE+KEY+name+hash+base64(0x01||seed)"
// as golang.org/x/mod/sumdb/note.GenerateKey writes it (its verifier key
// is what the server's access policy lists), or the standard base64 of the
// 32-byte seed (whose public key the policy lists in base64).
func ParseSigningKey(text string) (ed25519.PrivateKey, error) {
	text = strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(text, "PRIVATE+KEY+"); ok {
		if _, err := note.NewSigner(text); err != nil {
			return nil, fmt.Errorf("signing key: not a signed-note signer key: %v", err)
		}
		parts := strings.SplitN(rest, "+", 3)
		b, err := base64.StdEncoding.DecodeString(parts[2])
		if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 0x01 {
			return nil, errors.New("signing key: the signer key is not an Ed25519 (type 0x01) key")
		}
		return ed25519.NewKeyFromSeed(b[1:]), nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, errors.New("signing key: want a signed-note signer key (PRIVATE+KEY+name+hash+key) or the standard base64 of a 32-byte Ed25519 seed")
	}
	return ed25519.NewKeyFromSeed(b), nil
}
