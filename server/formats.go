package server

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	normalizer "github.com/stele-dev/stele/identity"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Formats returns the names of the record formats the server admits: those
// package identity has a normaliser for, the one list of them.
func Formats() []string { return normalizer.Formats() }

// checkRecord checks that record is parseable for its declared format.
func checkRecord(format string, record []byte) error {
	if !normalizer.Known(format) {
		if format == "" {
			return fmt.Errorf("format is empty: name the record's format, one of %s", strings.Join(Formats(), ", "))
		}
		return fmt.Errorf("unknown format %q: use one of %s", format, strings.Join(Formats(), ", "))
	}
	if len(record) == 0 {
		return fmt.Errorf("record is empty")
	}
	// Whether it is JSON at all is the normaliser's first step
	// (normalizeEvent): parsing it here too cost a pass over every record.
	// The object check gives the first, plainest error.
	if normalizer.ObjectRecords(format) && !bytes.HasPrefix(bytes.TrimLeft(record, " \t\r\n"), []byte("{")) {
		return fmt.Errorf("record for format %q must be a JSON object", format)
	}
	return nil
}

// printable is the one rule for the free-text fields a caller sets
// (Event.origin, EraseEvent's reason and request_reference): printable
// UTF-8 text, no control characters, so that a log line or a report
// shows what is there.
func printable(name, v string) error {
	for i, r := range v {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return fmt.Errorf("%s has a non-printable character at byte %d: keep it to printable text such as \"file=export.json record=17\"", name, i)
		}
	}
	return nil
}

// maxOriginLen bounds Event.origin, the producer's note of where it found
// the record.
const maxOriginLen = 1024

// normalized is an event after the server's own normaliser has run: the
// leaf fields it settles and the normalised view it stores.
type normalized struct {
	eventID string
	kind    string
	time    time.Time
	view    []byte
}

// normalizeEvent runs the normaliser for ev's format over its raw record and
// reconciles the producer's leaf fields with it. The server never trusts a
// producer's normalised view: an empty event_id, kind or event_time is
// filled from the record; an event_id or kind that differs from the
// record's is refused, naming both. A record without an id of its own gets
// the producer's event_id, or its content id (normalizer.ContentID) when the
// producer gives none. The generic json normaliser's kind is only a default.
func normalizeEvent(ev *stelev1.Event) (normalized, error) {
	var n normalized
	if len(ev.Origin) > maxOriginLen {
		return n, fmt.Errorf("origin is %d bytes, over the limit of %d", len(ev.Origin), maxOriginLen)
	}
	if err := printable("origin", ev.Origin); err != nil {
		return n, err
	}
	view, err := normalizer.Normalize(ev.Format, ev.Record)
	if err != nil {
		return n, fmt.Errorf("record cannot be normalised: %w", err)
	}
	view.Origin = ev.Origin
	normalizer.TenantFromSource(view, ev.Source)
	noNativeID := slices.Contains(view.Flags, normalizer.FlagNoNativeID)
	switch {
	case ev.EventId == "":
		n.eventID = view.NativeId
	case ev.EventId == view.NativeId || noNativeID:
		n.eventID = ev.EventId
	default:
		return n, fmt.Errorf("event_id %q differs from the record's own id %q: leave event_id empty or set it to the record's id, which is the dedup key", ev.EventId, view.NativeId)
	}
	if noNativeID {
		view.NativeId = n.eventID
	}
	switch {
	case ev.Kind == "":
		n.kind = view.Kind
	case ev.Kind == view.Kind || !normalizer.KindAuthoritative(ev.Format):
		n.kind = ev.Kind
	default:
		return n, fmt.Errorf("kind %q differs from %q, the kind the server's normaliser (%s v%s) gives this %s record: leave kind empty or set it to %q", ev.Kind, view.Kind, view.Normalizer, view.NormalizerVersion, ev.Format, view.Kind)
	}
	view.Kind = n.kind
	switch {
	case ev.EventTime != nil:
		if err := ev.EventTime.CheckValid(); err != nil {
			return n, fmt.Errorf("event_time: %v", err)
		}
		n.time = ev.EventTime.AsTime()
	case view.EventTime != nil:
		n.time = view.EventTime.AsTime()
	default:
		return n, fmt.Errorf("event_time is missing and the %s record has no time of its own: set event_time", ev.Format)
	}
	// The payload holds the record and format; the view is this
	// function's own, so drop them rather than have Marshal copy it.
	view.RawRecord, view.Format = nil, ""
	if n.view, err = normalizer.Marshal(view); err != nil {
		return n, err
	}
	return n, nil
}
