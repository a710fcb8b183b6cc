package forwarder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stele-dev/stele/forwarder/record"
)

// Item is one record on its way to a sink: the document and its JSON.
type Item struct {
	Doc  *record.Document
	JSON []byte
}

// Sink delivers records to one destination.
//
// Deliver sends the items, in log order, and returns nil only once the
// destination confirmed every one of them (written and synced, acknowledged,
// indexed). Any other outcome is an error:
//   - *ItemErrors: some items were refused for good (they go to the
//     dead-letter file) and/or some must be sent again;
//   - Permanent(err): the whole batch was refused for good;
//   - RetryAfter(d, err): try again, not before d (the sink's hint);
//   - anything else: try again after a jittered backoff.
//
// The forwarder may call Deliver again with items already delivered (after
// a retry or a restart); Idempotent says whether the destination then keeps
// one copy (it has an id for each record) or two.
type Sink interface {
	Deliver(ctx context.Context, items []*Item) error
	Idempotent() bool
	Close() error
}

// ItemErrors reports per-item outcomes of a batch: keys are positions in
// the batch Deliver was given. Items in neither map were delivered.
type ItemErrors struct {
	Refused map[int]error
	Retry   map[int]error
	// After is the sink's hint for the retry, 0 for none.
	After time.Duration
}

func (e *ItemErrors) Error() string {
	msg := fmt.Sprintf("%d records refused for good, %d to retry", len(e.Refused), len(e.Retry))
	for _, m := range []map[int]error{e.Refused, e.Retry} {
		for _, err := range m {
			return msg + " (first: " + err.Error() + ")"
		}
	}
	return msg
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a refusal of the whole batch for good: retrying
// the same bytes cannot succeed.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	after time.Duration
	err   error
}

func (e retryAfterError) Error() string {
	return fmt.Sprintf("%v (the sink asks to retry after %s)", e.err, e.after)
}
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as transient, with the sink's hint of when to retry
// (HTTP Retry-After, a broker's throttle time).
func RetryAfter(d time.Duration, err error) error { return retryAfterError{d, err} }

// retryHint returns the delay a sink asked for, or 0.
func retryHint(err error) time.Duration {
	var r retryAfterError
	if errors.As(err, &r) {
		return r.after
	}
	var ie *ItemErrors
	if errors.As(err, &ie) {
		return ie.After
	}
	return 0
}
