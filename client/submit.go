package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Submitter submits events in batches and retries what failed for a
// transient reason, with exponential backoff and full jitter.
//
// Retries are idempotent by construction: a retry resends exactly the same
// events, and the server deduplicates on (source, event_id). So an event
// whose first attempt was admitted but whose answer was lost (a dropped
// connection, a timeout) comes back from the retry with Duplicate set and
// the original index. A duplicate counts as success: the event is in the log
// exactly once. (If the resent event differs from the admitted one in
// content, the server answers ALREADY_EXISTS; a Submitter never does that
// because it resends the same message.)
//
// Transient means: the whole call failed with Unavailable, ResourceExhausted
// or DeadlineExceeded, or one event was refused with Unavailable, or with
// ResourceExhausted because the log pushed back while sequencing. Other
// refusals (InvalidArgument, PermissionDenied, ALREADY_EXISTS, a record over
// the size limit) are final and returned in the event's result. When the
// server attaches a google.rpc.RetryInfo to its status, its delay is
// honoured (it replaces the backoff for that attempt).
type Submitter struct {
	Client *Client
	// BatchEvents caps the events per Append call (default 500).
	BatchEvents int
	// BatchBytes caps the approximate encoded size of a batch (default 4 MiB).
	BatchBytes int
	// MaxAttempts is how many times a batch is sent at most (default 10).
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the wait between attempts:
	// attempt n waits a random time in [0, min(MaxBackoff, InitialBackoff*2^n)]
	// (defaults 100ms and 10s).
	InitialBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one Append call (default 30s).
	AttemptTimeout time.Duration
	// OnRetry, if set, is told about every retry.
	OnRetry func(attempt int, wait time.Duration, err error)
	// WaitForReady makes each attempt wait, within AttemptTimeout, for the
	// connection to become ready (a server still starting) instead of
	// failing at once with Unavailable.
	WaitForReady bool
}

// SubmitResult is the outcome of one event.
type SubmitResult struct {
	// Code is OK when the event is in the log (possibly as a duplicate).
	Code      codes.Code
	Message   string
	Index     uint64
	Duplicate bool
	// Attempts is how many times the event was sent.
	Attempts int
}

// OK reports whether the event is in the log.
func (r SubmitResult) OK() bool { return r.Code == codes.OK }

func (s *Submitter) defaults() Submitter {
	c := *s
	if c.BatchEvents <= 0 {
		c.BatchEvents = 500
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 4 << 20
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	return c
}

// Submit submits events and returns one result per event, in order. The
// error is non-nil only when some events could not be submitted at all
// (ctx ended, or the attempts ran out on a transient error); their results
// then carry the last error's code. Refused events are not an error: check
// each result.
func (s *Submitter) Submit(ctx context.Context, events []*stelev1.Event) ([]SubmitResult, error) {
	if s.Client == nil {
		return nil, errors.New("submit: no client")
	}
	c := s.defaults()
	out := make([]SubmitResult, len(events))
	var firstErr error
	for start := 0; start < len(events); {
		end, size := start, 0
		for end < len(events) && end-start < c.BatchEvents {
			n := proto.Size(events[end])
			if end > start && size+n > c.BatchBytes {
				break
			}
			size += n
			end++
		}
		if err := c.batch(ctx, events[start:end], out[start:end]); err != nil && firstErr == nil {
			firstErr = err
			if ctx.Err() != nil {
				for i := end; i < len(out); i++ {
					out[i] = SubmitResult{Code: status.FromContextError(ctx.Err()).Code(), Message: ctx.Err().Error()}
				}
				return out, firstErr
			}
		}
		start = end
	}
	return out, firstErr
}

// batch submits one batch, resending the events still pending.
func (c *Submitter) batch(ctx context.Context, events []*stelev1.Event, out []SubmitResult) error {
	pending := make([]int, len(events))
	for i := range pending {
		pending[i] = i
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		send := make([]*stelev1.Event, len(pending))
		for j, i := range pending {
			send[j] = events[i]
			out[i].Attempts++
		}
		actx, cancel := context.WithTimeout(ctx, c.AttemptTimeout)
		resp, err := c.Client.Log.Append(actx, &stelev1.AppendRequest{Events: send}, grpc.WaitForReady(c.WaitForReady))
		cancel()
		var hint time.Duration
		if err == nil && len(resp.Results) != len(send) {
			err = fmt.Errorf("append: the server answered %d results for %d events", len(resp.Results), len(send))
			for _, i := range pending {
				out[i] = SubmitResult{Code: codes.Internal, Message: err.Error(), Attempts: out[i].Attempts}
			}
			return err
		}
		if err != nil {
			st := status.Convert(err)
			if !retryableCall(st.Code()) || ctx.Err() != nil {
				for _, i := range pending {
					out[i] = SubmitResult{Code: st.Code(), Message: st.Message(), Attempts: out[i].Attempts}
				}
				if ctx.Err() != nil {
					return fmt.Errorf("append: %w", ctx.Err())
				}
				return fmt.Errorf("append: %w", err)
			}
			lastErr = err
			hint = retryDelay(st)
		} else {
			var again []int
			for j, r := range resp.Results {
				i := pending[j]
				out[i] = SubmitResult{Code: codes.Code(r.Code), Message: r.Message, Index: r.Index, Duplicate: r.Duplicate, Attempts: out[i].Attempts}
				if retryableEvent(codes.Code(r.Code), r.Message) {
					again = append(again, i)
					lastErr = status.Error(codes.Code(r.Code), r.Message)
				}
			}
			pending = again
			if len(pending) == 0 {
				return nil
			}
		}
		if attempt+1 >= c.MaxAttempts {
			for _, i := range pending {
				st := status.Convert(lastErr)
				out[i].Code, out[i].Message = st.Code(), st.Message()
			}
			return fmt.Errorf("append: giving up after %d attempts: %w", c.MaxAttempts, lastErr)
		}
		wait := c.backoff(attempt)
		if hint > 0 {
			wait = hint
		}
		if c.OnRetry != nil {
			c.OnRetry(attempt+1, wait, lastErr)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			for _, i := range pending {
				out[i].Code, out[i].Message = status.FromContextError(ctx.Err()).Code(), ctx.Err().Error()
			}
			return fmt.Errorf("append: %w (last error: %v)", ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// backoff is full jitter: a random wait in [0, min(max, initial*2^attempt)].
func (c *Submitter) backoff(attempt int) time.Duration {
	d := c.MaxBackoff
	if attempt < 30 {
		if e := c.InitialBackoff << attempt; e > 0 && e < d {
			d = e
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func retryableCall(c codes.Code) bool {
	return c == codes.Unavailable || c == codes.ResourceExhausted || c == codes.DeadlineExceeded
}

func retryableEvent(c codes.Code, msg string) bool {
	switch c {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		// Pushback from the sequencer is transient; a record over the
		// size limit is not.
		return strings.HasPrefix(msg, "sequencing:")
	}
	return false
}

// retryDelay returns the delay a google.rpc.RetryInfo detail asks for, or 0.
func retryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay != nil {
			if d := ri.RetryDelay.AsDuration(); d > 0 && d < 10*time.Minute {
				return d
			}
		}
	}
	return 0
}
