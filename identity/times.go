package identity

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// FlagTimeFallback: a time field of the record could not be read, and the
// event time was taken from another time field of the same record (the
// unread text is kept in the raw record).
const FlagTimeFallback = "time_fallback"

// zone says how a field's zone-less time text is read. docs/identity.md,
// "Time forms", is the rule book.
type zone int

const (
	// zoneRequired: only RFC 3339 with Z or a numeric offset. A time
	// without a zone is ambiguous and refused (Okta, OCSF, generic JSON).
	zoneRequired zone = iota
	// zoneUTC: the provider documents the field as UTC (Microsoft Graph
	// and Azure Monitor / Log Analytics; CloudTrail and CloudTrail Lake),
	// so a zone-less "2022-03-22 14:21:53.225" and the Log Analytics CSV
	// form "11/14/2025 1:48:53 AM" are read as UTC.
	zoneUTC
)

var (
	// isoLocal is an ISO 8601 date and time without a zone, "T" or space.
	isoLocal = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?$`)
	// usLA is the en-US form Log Analytics exports write: month/day/year,
	// 12-hour clock, optional comma and fraction.
	usLA = regexp.MustCompile(`^(\d{1,2})/(\d{1,2})/(\d{4}),? (\d{1,2}):(\d{2}):(\d{2})(\.\d{1,9})? ([AaPp][Mm])$`)
	// rfc3339Space is RFC 3339 with a space for "T" (its section 5.6 note).
	rfc3339Space = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$`)
)

// parseTime parses a provider timestamp under the strict rule: RFC 3339
// with any fraction (Entra writes 7 digits) and Z or a numeric offset.
func parseTime(field, s string) (time.Time, error) { return parseTimeZone(field, s, zoneRequired) }

// parseTimeZone parses s under rule z and returns it in UTC.
func parseTimeZone(field, s string, z zone) (time.Time, error) {
	t, err := readTime(field, s, z)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() < 1 || t.UTC().Year() < 1 || t.UTC().Year() > 9999 {
		return time.Time{}, fmt.Errorf("%s %q is outside the years 0001 to 9999", field, s)
	}
	return t.UTC(), nil
}

func readTime(field, s string, z zone) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if rfc3339Space.MatchString(s) {
		if t, err := time.Parse(time.RFC3339Nano, strings.Replace(s, " ", "T", 1)); err == nil {
			return t, nil
		}
	}
	utcHint := ""
	if z == zoneUTC {
		utcHint = `, "2006-01-02 15:04:05[.fff]" (UTC) or "1/2/2006 3:04:05 PM" (Log Analytics, UTC)`
	}
	bad := fmt.Errorf("%s %q is not an RFC 3339 time (2006-01-02T15:04:05Z or with an offset%s)", field, s, utcHint)
	switch {
	case isoLocal.MatchString(s):
		if z != zoneUTC {
			return time.Time{}, fmt.Errorf("%s %q has no zone, and this format does not document one: it is ambiguous; give it as RFC 3339 with Z or an offset", field, s)
		}
		t, err := time.Parse("2006-01-02T15:04:05.999999999", strings.Replace(s, " ", "T", 1))
		if err != nil {
			return time.Time{}, bad
		}
		return t, nil
	case usLA.MatchString(s):
		if z != zoneUTC {
			return time.Time{}, fmt.Errorf("%s %q is a month/day form this format does not document: it is ambiguous; give it as RFC 3339", field, s)
		}
		m := usLA.FindStringSubmatch(s)
		if atoi(m[1]) > 12 {
			return time.Time{}, fmt.Errorf("%s %q is day/month/year: Log Analytics exports write month/day/year (en-US), so this is not one of them and is ambiguous; export with the en-US format or as JSON", field, s)
		}
		if h := atoi(m[4]); h < 1 || h > 12 {
			return time.Time{}, fmt.Errorf("%s %q has hour %d with AM/PM: the 12-hour clock runs 1 to 12", field, s, h)
		}
		norm := fmt.Sprintf("%02s/%02s/%s %02s:%s:%s%s %s", m[1], m[2], m[3], m[4], m[5], m[6], m[7], strings.ToUpper(m[8]))
		t, err := time.Parse("01/02/2006 03:04:05.999999999 PM", norm)
		if err != nil {
			return time.Time{}, bad
		}
		return t, nil
	}
	return time.Time{}, bad
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// timeField is one candidate for an event's time: the field's name (for
// errors) and its text.
type timeField struct{ name, text string }

// setTimes sets the event time from the first candidate with text that
// parses under rule z, keeping its original text. When an earlier candidate
// has text that does not parse, the event is flagged FlagTimeFallback; when
// none parses, the first one's error is returned. Candidates without text
// are skipped.
func setTimes(ev *stelev1.IdentityEvent, z zone, cands ...timeField) error {
	var first error
	for _, c := range cands {
		if c.text == "" {
			continue
		}
		t, err := parseTimeZone(c.name, c.text, z)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		ev.EventTime = timestamppb.New(t)
		ev.EventTimeText = c.text
		if first != nil {
			addFlag(ev, FlagTimeFallback)
		}
		return nil
	}
	return first
}
