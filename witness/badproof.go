package witness

import (
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// badProofWarnInterval is the least time between two WARN lines about
// refused consistency proofs; the ones in between are only counted (in
// stele_witness_add_checkpoint_requests_total{reason="bad_proof"} and in
// the next line's "refused_since_last_warning").
const badProofWarnInterval = 10 * time.Second

// badProofWarner logs refused consistency proofs at WARN, at most once per
// badProofWarnInterval. A failed proof is not evidence against the log
// (anyone can post its genuine checkpoint with junk hashes), so it must not
// fill the logs either.
type badProofWarner struct {
	sometimes rate.Sometimes
	since     atomic.Int64
}

func (b *badProofWarner) warn(log *slog.Logger, req *request, via string, e *Error) {
	b.since.Add(1)
	b.sometimes.Do(func() {
		n := b.since.Swap(0)
		log.Warn("add-checkpoint refused: bad consistency proof (not evidence against the log: anyone can send one)",
			"via", via, "old", req.Old, "err", e.Msg, "refused_since_last_warning", n)
	})
}
