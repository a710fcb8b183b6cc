package server

import (
	"crypto/ed25519"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stele-dev/stele/leaf"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// producerSignature checks an event's producer signature, if it has one,
// and returns it for the leaf. A signature that is malformed is refused
// with InvalidArgument, one that does not verify over the event with
// Unauthenticated; no leaf ever holds a signature that does not verify.
// Whether the source needs a signature, and whose key it may be, is the
// access policy's (checkSigners).
func producerSignature(ev *stelev1.Event, eventTime time.Time) (*leaf.Signature, *result) {
	ps := ev.ProducerSignature
	if ps == nil {
		return nil, nil
	}
	if len(ps.PublicKey) != ed25519.PublicKeySize {
		r := refuse(codes.InvalidArgument, "producer_signature.public_key is %d bytes, want %d (an Ed25519 public key)", len(ps.PublicKey), ed25519.PublicKeySize)
		return nil, &r
	}
	if len(ps.Signature) != ed25519.SignatureSize {
		r := refuse(codes.InvalidArgument, "producer_signature.signature is %d bytes, want %d (an Ed25519 signature)", len(ps.Signature), ed25519.SignatureSize)
		return nil, &r
	}
	sig := &leaf.Signature{PublicKey: ed25519.PublicKey(ps.PublicKey), Sig: ps.Signature}
	msg := leaf.ProducerMessage(ev.Source, ev.SourceSeq, ev.EventId, ev.Kind, eventTime, ev.Format, ev.Record)
	if msg == nil || !ed25519.Verify(sig.PublicKey, msg, sig.Sig) {
		r := refuse(codes.Unauthenticated, "the producer signature by key %s does not verify over this event: sign leaf.ProducerMessage of exactly the source, source_seq, event_id, kind, event_time, format and record sent (docs/leaf-v1.md)", sig.KeyID())
		return nil, &r
	}
	return sig, nil
}

// checkSigners refuses, under the access policy, an event of a source that
// needs a producer signature and has none, and an event signed by a key
// that is not one of the identity's signing keys. ok is false with the
// refusal.
func checkSigners(pol *policy, id *identity, ev *stelev1.Event) (result, bool) {
	ps := ev.ProducerSignature
	if ps == nil {
		if pol.needsSignature(ev.Source) {
			return refuse(codes.Unauthenticated, "source %q requires a producer signature: sign the event with one of identity %q's signing keys (client.WithSigningKey, stele submit --signing-key)", ev.Source, id.name), false
		}
		return result{}, true
	}
	if len(ps.PublicKey) == ed25519.PublicKeySize && !id.keys[[ed25519.PublicKeySize]byte(ps.PublicKey)] {
		k := (&leaf.Signature{PublicKey: ps.PublicKey}).KeyID()
		return refuse(codes.Unauthenticated, "the event is signed by key %s, which is not one of identity %q's signing keys in the access policy", k, id.name), false
	}
	return result{}, true
}
