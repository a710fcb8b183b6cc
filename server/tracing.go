package server

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// MaxTracedEvents is how many events of one Append batch are recorded as
// span events (OpenTelemetry's default per-span event limit); the rest
// are counted in stele.events.untraced.
const MaxTracedEvents = 128

// traceBatch records on the Append call's span, when it is being traced
// (internal/tracing), what became of the batch: counts, the range of log
// indexes it took, and one span event per event naming its source,
// event_id, index and outcome, so a tracing backend finds an event by its
// provider id and follows its trace back to the producer that sent it.
func traceBatch(ctx context.Context, events []*stelev1.Event, rs []result) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	var fresh, dup, refused int
	first, last := uint64(0), uint64(0)
	for i, r := range rs {
		outcome := "new"
		switch {
		case r.code != 0:
			refused++
			outcome = "refused: " + r.code.String()
		case r.duplicate:
			dup++
			outcome = "duplicate"
		default:
			if fresh == 0 || r.index < first {
				first = r.index
			}
			last = max(last, r.index)
			fresh++
		}
		if i < MaxTracedEvents {
			attrs := []attribute.KeyValue{
				attribute.String("stele.source", events[i].GetSource()),
				attribute.String("stele.event_id", events[i].GetEventId()),
				attribute.String("stele.outcome", outcome),
			}
			if r.code == 0 {
				attrs = append(attrs, attribute.Int64("stele.index", int64(r.index)))
			}
			span.AddEvent("stele.event", trace.WithAttributes(attrs...))
		}
	}
	attrs := []attribute.KeyValue{
		attribute.Int("stele.events", len(events)),
		attribute.Int("stele.events.new", fresh),
		attribute.Int("stele.events.duplicate", dup),
		attribute.Int("stele.events.refused", refused),
		attribute.Int("stele.events.untraced", max(0, len(events)-MaxTracedEvents)),
	}
	if fresh > 0 {
		attrs = append(attrs, attribute.Int64("stele.index.first", int64(first)), attribute.Int64("stele.index.last", int64(last)))
	}
	span.SetAttributes(attrs...)
}
