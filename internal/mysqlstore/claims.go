package mysqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stele-dev/stele/server/backend"
)

// Key, ClaimResult and ErrBusy are the backend interface's claim
// vocabulary (server/backend), which Claims implements.
type (
	Key         = backend.Key
	ClaimResult = backend.ClaimResult
)

// ErrBusy says that another replica is committing the same event.
var ErrBusy = backend.ErrBusy

// Claims is one batch's claims; each batch takes a new token, so a claim
// left behind by a failed commit is never mistaken for a live one.
type Claims struct {
	s     *Store
	token []byte
}

// NewClaims returns a Claims with a fresh token.
func (s *Store) NewClaims() *Claims {
	t := make([]byte, 16)
	rand.Read(t)
	return &Claims{s: s, token: t}
}

// pollEvery is how often a waiter looks at a claim held by another replica.
const pollEvery = 100 * time.Millisecond

// Claim claims keys for this batch. Each result says that the key was
// admitted (its index), or claimed, or could not be claimed.
//
// A key claimed by another replica is waited for until that replica records
// its index or the claim's lease runs out. A claim past its lease belongs to
// a replica that crashed (or stalled longer than the lease) before recording
// the index. Its leaf may or may not be in the log, so before taking the
// claim over Claim reads nextIndex, the log's next unassigned index: any
// leaf the old claimant sequenced is below it. It then waits until the
// watermark (maintained by the replicas' reindexing, which reads the log and
// fills in the dedup index) reaches that index. If the key is still not
// indexed, its leaf is not in the log and the claim is taken over.
func (c *Claims) Claim(ctx context.Context, keys []Key, nextIndex func(context.Context) (uint64, error)) []ClaimResult {
	out := make([]ClaimResult, len(keys))
	if len(keys) == 0 {
		return out
	}
	rows, err := c.fastClaim(ctx, keys)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	// Keys held by other replicas are waited on together: a batch that a
	// dead replica had claimed is taken over in one lease, not one each.
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxWaiters)
	for i, k := range keys {
		r, ok := rows[k]
		switch {
		case !ok:
			out[i].Err = fmt.Errorf("claiming (%q, %q): the row vanished", k.Source, k.EventID)
		case r.idx.Valid:
			out[i] = ClaimResult{Admitted: true, Index: uint64(r.idx.Int64)}
		case string(r.claim) == string(c.token):
			// Claimed by this batch.
		default:
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				out[i] = c.slowClaim(ctx, k, nextIndex)
			})
		}
	}
	wg.Wait()
	return out
}

// maxWaiters bounds the keys of one batch that wait on other replicas'
// claims at once (each polls the database).
const maxWaiters = 32

type dedupRow struct {
	idx   sql.NullInt64
	claim []byte
	age   time.Duration
}

// fastClaim inserts a claim row for every key that has none, in one
// statement, and reads every key's row back.
func (c *Claims) fastClaim(ctx context.Context, keys []Key) (map[Key]dedupRow, error) {
	rows := make(map[Key]dedupRow, len(keys))
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		ks := keys[start:min(start+chunk, len(keys))]
		args := make([]any, 0, 3*len(ks))
		for _, k := range ks {
			args = append(args, k.Source, k.EventID, c.token)
		}
		if _, err := c.s.db.ExecContext(ctx, `INSERT IGNORE INTO stele_dedup (source, event_id, claim, claimed_at) VALUES `+
			placeholders(len(ks), "(?,?,?,UTC_TIMESTAMP(6))"), args...); err != nil {
			return nil, fmt.Errorf("claiming events: %w", err)
		}
		args = args[:0]
		for _, k := range ks {
			args = append(args, k.Source, k.EventID)
		}
		rs, err := c.s.db.QueryContext(ctx, `SELECT source, event_id, idx, claim, TIMESTAMPDIFF(MICROSECOND, claimed_at, UTC_TIMESTAMP(6)) FROM stele_dedup WHERE `+
			strings.Repeat("(source = ? AND event_id = ?) OR ", len(ks)-1)+"(source = ? AND event_id = ?)", args...)
		if err != nil {
			return nil, fmt.Errorf("reading claims: %w", err)
		}
		for rs.Next() {
			var k Key
			var r dedupRow
			var us int64
			if err := rs.Scan(&k.Source, &k.EventID, &r.idx, &r.claim, &us); err != nil {
				rs.Close()
				return nil, fmt.Errorf("reading claims: %w", err)
			}
			r.age = time.Duration(us) * time.Microsecond
			rows[k] = r
		}
		if err := rs.Close(); err != nil {
			return nil, fmt.Errorf("reading claims: %w", err)
		}
		if err := rs.Err(); err != nil {
			return nil, fmt.Errorf("reading claims: %w", err)
		}
	}
	return rows, nil
}

func (c *Claims) row(ctx context.Context, k Key) (dedupRow, bool, error) {
	var r dedupRow
	var us int64
	err := c.s.db.QueryRowContext(ctx, `SELECT idx, claim, TIMESTAMPDIFF(MICROSECOND, claimed_at, UTC_TIMESTAMP(6)) FROM stele_dedup WHERE source = ? AND event_id = ?`,
		k.Source, k.EventID).Scan(&r.idx, &r.claim, &us)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("reading claim: %w", err)
	}
	r.age = time.Duration(us) * time.Microsecond
	return r, true, nil
}

// slowClaim waits on another replica's claim on k, and takes it over once it
// is past its lease and its leaf is known not to be in the log.
func (c *Claims) slowClaim(ctx context.Context, k Key, nextIndex func(context.Context) (uint64, error)) ClaimResult {
	fail := func(err error) ClaimResult {
		if ctx.Err() != nil {
			return ClaimResult{Err: ErrBusy}
		}
		return ClaimResult{Err: err}
	}
	for {
		r, ok, err := c.row(ctx, k)
		if err != nil {
			return fail(err)
		}
		switch {
		case !ok:
			// Released by its claimant: claim it afresh.
			res, err := c.s.db.ExecContext(ctx, `INSERT IGNORE INTO stele_dedup (source, event_id, claim, claimed_at) VALUES (?,?,?,UTC_TIMESTAMP(6))`, k.Source, k.EventID, c.token)
			if err != nil {
				return fail(fmt.Errorf("claiming event: %w", err))
			}
			if n, _ := res.RowsAffected(); n == 1 {
				return ClaimResult{}
			}
			continue
		case r.idx.Valid:
			return ClaimResult{Admitted: true, Index: uint64(r.idx.Int64)}
		case string(r.claim) == string(c.token):
			return ClaimResult{}
		case r.age < c.s.lease:
			if err := sleep(ctx, min(pollEvery, c.s.lease-r.age)); err != nil {
				return fail(err)
			}
			continue
		}
		// The claim is stale. Any leaf its claimant sequenced is below the
		// log's next index; wait until the indexes cover that far.
		next, err := nextIndex(ctx)
		if err != nil {
			return fail(fmt.Errorf("reading the log's next index: %w", err))
		}
		for {
			w, err := c.s.Watermark()
			if err != nil {
				return fail(err)
			}
			if w >= next {
				break
			}
			if err := sleep(ctx, pollEvery); err != nil {
				return fail(err)
			}
		}
		res, err := c.s.db.ExecContext(ctx, `UPDATE stele_dedup SET claim = ?, claimed_at = UTC_TIMESTAMP(6)
			WHERE source = ? AND event_id = ? AND claim <=> ? AND idx IS NULL`, c.token, k.Source, k.EventID, r.claim)
		if err != nil {
			return fail(fmt.Errorf("taking over a stale claim: %w", err))
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return ClaimResult{}
		}
		// Indexed or taken over meanwhile: look again.
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives up this batch's claims on keys whose leaves are known not to
// have been sequenced, so a retry need not wait out the lease.
func (c *Claims) Release(keys []Key) error {
	ctx, cancel := bg()
	defer cancel()
	for _, k := range keys {
		if _, err := c.s.db.ExecContext(ctx, `DELETE FROM stele_dedup WHERE source = ? AND event_id = ? AND claim = ? AND idx IS NULL`,
			k.Source, k.EventID, c.token); err != nil {
			return fmt.Errorf("releasing claim: %w", err)
		}
	}
	return nil
}
