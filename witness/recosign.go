package witness

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Keeping the monitoring path fresh.
//
// C2SP tlog-witness lets a witness delay updating the checkpoint it serves
// at <monitoring prefix>/<origin hash>/checkpoint by no more than an hour,
// and a v1 cosignature states that, as of its timestamp, the cosigned
// checkpoint is the largest consistent one the witness has observed for the
// log (tlog-cosignature). A log that stops sending checkpoints would leave
// a monitor reading an ever older cosignature, which it cannot tell from a
// witness that has been cut off from it. So the witness re-cosigns idle
// logs: once a log's latest cosignature is older than three quarters of
// the maximum age, it fetches the log's checkpoint from its pull URL when
// it has one (so a log that grew without pushing is caught up, through
// the same checks as a push), and otherwise — or when the log cannot be
// reached or serves nothing newer — it cosigns again the checkpoint it
// holds, which is still the largest it has observed: the same checks run
// (the log's signature against the keys configured now), with a fresh
// timestamp. Every served checkpoint is then younger than the maximum age.

// DefaultMaxCheckpointAge is the oldest cosignature the monitoring path
// serves for a configured log (tlog-witness: at most an hour).
const DefaultMaxCheckpointAge = time.Hour

// RunRecosign keeps every configured log's monitoring checkpoint younger
// than maxAge (DefaultMaxCheckpointAge if 0), checking every maxAge/12,
// until ctx is done.
func (w *Witness) RunRecosign(ctx context.Context, maxAge time.Duration) {
	if maxAge <= 0 {
		maxAge = DefaultMaxCheckpointAge
	}
	w.recosigns() // registers the metrics
	t := time.NewTicker(maxAge / 12)
	defer t.Stop()
	for {
		w.recosignIdle(ctx, maxAge)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// recosignIdle re-cosigns, once, every configured log whose latest
// cosignature is older than 3/4 of maxAge, and returns how many it
// re-cosigned.
func (w *Witness) recosignIdle(ctx context.Context, maxAge time.Duration) int {
	w.mu.RLock()
	eff := w.effective()
	w.mu.RUnlock()
	origins := make([]string, 0, len(eff))
	for o := range eff {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	n := 0
	for _, o := range origins {
		if ctx.Err() != nil {
			break
		}
		st, ok, err := w.store.state(o)
		if err != nil || !ok || time.Since(st.Updated) < maxAge*3/4 {
			continue
		}
		c := eff[o]
		if c.PullURL != "" {
			err := w.pullOnce(ctx, o)
			if now, ok, _ := w.store.state(o); err == nil && ok && now.Updated.After(st.Updated) {
				w.recosigns().WithLabelValues("pulled").Inc()
				n++
				continue
			}
			if err != nil && ctx.Err() == nil {
				w.log.Warn("re-cosigning an idle log: pulling its checkpoint failed; cosigning the held one again", "origin", o, "url", c.PullURL, "err", err)
			}
		}
		_, err = w.submitVia(ctx, &request{Old: st.Size, Checkpoint: st.Checkpoint}, "recosign")
		var e *Error
		switch {
		case err == nil:
			w.recosigns().WithLabelValues("recosigned").Inc()
			n++
		case errors.As(err, &e) && e.Reason == reasonOldMismatch:
			// A push advanced the log meanwhile: it is fresh.
		case errors.As(err, &e):
			w.recosigns().WithLabelValues("refused").Inc()
			w.log.Warn("re-cosigning an idle log refused: its monitoring checkpoint ages", "origin", o, "status", e.Status, "reason", e.Reason, "err", e.Msg)
		default:
			w.recosigns().WithLabelValues("error").Inc()
			w.log.Warn("re-cosigning an idle log failed", "origin", o, "err", err)
		}
	}
	return n
}

// freshness holds the re-cosigning metrics, registered on first use.
type freshness struct {
	once      sync.Once
	recosigns *prometheus.CounterVec
}

// recosigns returns stele_witness_recosigns_total, registering it and
// stele_witness_checkpoint_age_seconds (computed at each scrape) once.
func (w *Witness) recosigns() *prometheus.CounterVec {
	w.fresh.once.Do(func() {
		w.fresh.recosigns = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_witness_recosigns_total",
			Help: "Re-cosignings of idle logs, by outcome (pulled, recosigned, refused, error).",
		}, []string{"outcome"})
		w.m.reg.MustRegister(w.fresh.recosigns, ageCollector{w})
	})
	return w.fresh.recosigns
}

var ageDesc = prometheus.NewDesc("stele_witness_checkpoint_age_seconds",
	"Age of the cosignature served at the monitoring path, per configured log with a cosigned checkpoint.",
	[]string{"origin"}, nil)

type ageCollector struct{ w *Witness }

func (c ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ageDesc }

func (c ageCollector) Collect(ch chan<- prometheus.Metric) {
	c.w.mu.RLock()
	eff := c.w.effective()
	c.w.mu.RUnlock()
	states, err := c.w.store.allStates()
	if err != nil {
		return
	}
	for o, st := range states {
		if _, ok := eff[o]; ok {
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, time.Since(st.Updated).Seconds(), o)
		}
	}
}
