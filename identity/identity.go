// Package identity turns raw identity-event records (Entra audit and
// sign-in logs, Okta System Log, AWS CloudTrail, OCSF, generic JSON) into
// the normalised stelev1.IdentityEvent, and exports it as OCSF.
//
// The raw record is the source of truth: Normalize is a pure function of
// the format and the record bytes, so a stored event's normalised view can
// be re-derived by a newer normaliser at any time without touching the log.
// The kind taxonomy, native ids and source names are documented in
// docs/identity.md.
package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Version is the normaliser version stamped into every view it makes. Bump
// it whenever the output for some record changes.
const Version = "2"

// OCSFVersion is the OCSF schema version the class and activity ids are
// taken from.
const OCSFVersion = "1.8.0"

// Flags set on normalised events.
const (
	// FlagUnknownActivity: the normaliser does not know the activity; the
	// event is admitted with a catch-all kind and kept raw.
	FlagUnknownActivity = "unknown_activity"
	// FlagLegacySchema: the 2018 Entra diagnostic schema, kept raw with
	// minimal normalisation.
	FlagLegacySchema = "legacy_schema"
	// FlagNumericResult: the result was a number (legacy records).
	FlagNumericResult = "numeric_result"
	// FlagPlaceholderIP: the IP was a placeholder such as "<null>".
	FlagPlaceholderIP = "placeholder_ip"
	// FlagNoNativeID: the record has no id of its own; the native id is the
	// SHA-256 of the record.
	FlagNoNativeID = "no_native_id"
	// FlagNoEventTime: the record carries no event time.
	FlagNoEventTime = "no_event_time"
	// FlagPlaceholderLocation: the coordinates were a placeholder (0,0)
	// and are left out.
	FlagPlaceholderLocation = "placeholder_location"
	// FlagUnknownCategory: an Entra diagnostic category the normaliser
	// does not know; the actor, time and outcome come from the common
	// fields of the envelope.
	FlagUnknownCategory = "unknown_category"
	// FlagViaPIMService: a directory role change performed by the PIM
	// service principal, the directory's half of a PIM operation.
	FlagViaPIMService = "via_pim_service"
	// FlagTenantFromSource: the record does not name its tenant (org,
	// account) — a Graph record, say — and source.tenant is the one the
	// producer's source names (entra/<tenant>/…), set by the server at
	// admission (TenantFromSource).
	FlagTenantFromSource = "tenant_from_source"
)

// TenantFromSource fills an empty source.tenant of ev from the log source
// it is admitted under ("provider/tenant/stream"), when the source's
// provider is ev's, and flags it: records that do not name their tenant
// (Graph exports, Okta events) are placed by the producer, and the view
// then says where. A tenant the record names is never replaced.
func TenantFromSource(ev *stelev1.IdentityEvent, source string) {
	if ev.GetSource() == nil || ev.Source.Tenant != "" {
		return
	}
	segs := strings.SplitN(source, "/", 3)
	if len(segs) < 2 || segs[0] != ev.Source.Provider || segs[1] == "" {
		return
	}
	ev.Source.Tenant = segs[1]
	ev.Flags = append(ev.Flags, FlagTenantFromSource)
}

// normalizer turns one record into an event. It fills everything but the
// fields Normalize sets for every format.
type normalizer struct {
	name string
	// kindAuthoritative says whether the normaliser's kind is binding. The
	// generic json normaliser cannot know the kind; the producer's stands.
	kindAuthoritative bool
	// anyValue: the record may be any JSON value, not only an object.
	anyValue bool
	run      func(o obj, ev *stelev1.IdentityEvent) error
}

var normalizers = map[string]normalizer{
	"entra.directoryAudit": {"entra-audit", true, false, entraAudit},
	"entra.signIn":         {"entra-signin", true, false, entraSignIn},
	"entra.diagnostic":     {"entra-diagnostic", true, false, entraDiagnostic},
	"okta.systemLog":       {"okta-systemlog", true, false, oktaSystemLog},
	"aws.cloudtrail":       {"aws-cloudtrail", true, false, cloudTrail},
	"ocsf":                 {"ocsf", true, false, ocsfInput},
	"json":                 {"generic-json", false, true, genericJSON},
}

// Formats returns the formats Normalize knows, sorted.
func Formats() []string {
	names := make([]string, 0, len(normalizers))
	for n := range normalizers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Known reports whether Normalize has a normaliser for format.
func Known(format string) bool {
	_, ok := normalizers[format]
	return ok
}

// ObjectRecords reports whether format is known and its records must be
// JSON objects (every format but "json", which takes any JSON value).
func ObjectRecords(format string) bool {
	n, ok := normalizers[format]
	return ok && !n.anyValue
}

// KindAuthoritative reports whether the normaliser's kind for format is
// binding on producers. It is false for "json", whose generic normaliser
// proposes a kind only as a default.
func KindAuthoritative(format string) bool { return normalizers[format].kindAuthoritative }

// GenericKind is the kind the generic json normaliser proposes.
const GenericKind = "json.event"

// ErrUnknownFormat is returned for a format without a normaliser.
var ErrUnknownFormat = errors.New("no normaliser for this format")

// Normalize derives the normalised view of one raw record of the given
// format. The result's RawRecord is record itself (not a copy). The error
// names what in the record could not be read; a well-formed record with an
// activity the normaliser does not know is not an error but is flagged
// FlagUnknownActivity.
func Normalize(format string, record []byte) (*stelev1.IdentityEvent, error) {
	n, ok := normalizers[format]
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownFormat, format, strings.Join(Formats(), ", "))
	}
	// The record's tree lives in d until Normalize returns: the view
	// keeps only strings.
	d := decoders.Get().(*decoder)
	defer d.release()
	var o obj
	if n.anyValue {
		// Any JSON value; only an object has fields to read.
		v, err := d.decode(record)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", format, err)
		}
		if v.kind == kindObject {
			o = obj(v.members)
		}
	} else {
		var err error
		if o, err = d.decodeObject(record); err != nil {
			return nil, fmt.Errorf("%s: %w", format, err)
		}
	}
	ev := &stelev1.IdentityEvent{
		Format:            format,
		Normalizer:        n.name,
		NormalizerVersion: Version,
		RawRecord:         record,
	}
	if err := n.run(o, ev); err != nil {
		return nil, fmt.Errorf("%s: %w", format, err)
	}
	if err := Consistent(ev); err != nil {
		// A normaliser bug, never the record's fault: refuse rather than
		// commit a view that says two things.
		return nil, fmt.Errorf("%s: normaliser error, please report: %w", format, err)
	}
	if ev.NativeId == "" {
		ev.NativeId = ContentID(record)
		addFlag(ev, FlagNoNativeID)
	}
	if ev.EventTime == nil {
		addFlag(ev, FlagNoEventTime)
	}
	if ev.Ocsf != nil {
		ev.Ocsf.Version = OCSFVersion
		ev.Ocsf.TypeUid = int64(ev.Ocsf.ClassUid)*100 + int64(ev.Ocsf.ActivityId)
	}
	slices.Sort(ev.Flags)
	ev.Flags = slices.Compact(ev.Flags)
	return ev, nil
}

// ContentID is the id of a record that has none of its own: "sha256:" and
// the lowercase hex SHA-256 of the exact record bytes.
func ContentID(record []byte) string {
	sum := sha256.Sum256(record)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SourceName is the stream name the event belongs to under Stele's naming
// convention (entra/<tenantId>/audit, entra/<tenantId>/signin,
// okta/<org-host>/system, aws/<account-id>/cloudtrail), or "" when the
// record does not say which tenant it is from.
func SourceName(ev *stelev1.IdentityEvent) string {
	s := ev.GetSource()
	if s.GetProvider() == "" || s.GetTenant() == "" || s.GetStream() == "" {
		return ""
	}
	return s.GetProvider() + "/" + s.GetTenant() + "/" + s.GetStream()
}

// The view's fields that Marshal leaves out: they are in the payload.
var (
	rawRecordField = viewField("raw_record")
	formatField    = viewField("format")
)

func viewField(name protoreflect.Name) protoreflect.FieldNumber {
	return (&stelev1.IdentityEvent{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// Marshal encodes a normalised view for payload.Payload.Normalized:
// deterministic protobuf binary, without RawRecord and Format, which the
// payload already holds. Unmarshal puts them back.
func Marshal(ev *stelev1.IdentityEvent) ([]byte, error) {
	var m proto.Message = ev
	if len(ev.RawRecord) > 0 || ev.Format != "" {
		m = withoutPayloadFields(ev)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("identity: encoding normalised view: %w", err)
	}
	return b, nil
}

// withoutPayloadFields returns a shallow copy of ev without RawRecord and
// Format: cloning the whole view would copy every nested message only to
// encode it once.
func withoutPayloadFields(ev *stelev1.IdentityEvent) proto.Message {
	src := ev.ProtoReflect()
	c := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != rawRecordField && fd.Number() != formatField {
			c.Set(fd, v)
		}
		return true
	})
	return c.Interface()
}

// Unmarshal decodes a normalised view written by Marshal and restores the
// raw record and format from the payload it was stored in.
func Unmarshal(normalized []byte, format string, record []byte) (*stelev1.IdentityEvent, error) {
	ev := &stelev1.IdentityEvent{}
	if err := proto.Unmarshal(normalized, ev); err != nil {
		return nil, fmt.Errorf("identity: decoding normalised view: %w", err)
	}
	ev.RawRecord = record
	ev.Format = format
	return ev, nil
}

// Renormalize re-derives the normalised view of a stored event with the
// current normaliser, keeping the producer's origin claim from the stored
// view (it is not in the raw record).
func Renormalize(stored *stelev1.IdentityEvent) (*stelev1.IdentityEvent, error) {
	ev, err := Normalize(stored.GetFormat(), stored.GetRawRecord())
	if err != nil {
		return nil, err
	}
	ev.Origin = stored.GetOrigin()
	return ev, nil
}

// outcomeSegment is the last segment of an outcome-bearing kind
// (signin.*.success|failure|unknown): the kind repeats the outcome's
// decision, it never makes its own.
func outcomeSegment(s stelev1.OutcomeStatus) string {
	switch s {
	case stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS:
		return "success"
	case stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE, stelev1.OutcomeStatus_OUTCOME_STATUS_TIMEOUT:
		return "failure"
	}
	return "unknown"
}

// Consistent reports a view that contradicts itself: a sign-in kind whose
// outcome segment differs from the outcome, or an OCSF class that differs
// from the event class. Normalize refuses such a view; tests and fuzz
// targets assert it over every record.
func Consistent(ev *stelev1.IdentityEvent) error {
	if strings.HasPrefix(ev.Kind, "signin.") {
		seg := ev.Kind[strings.LastIndexByte(ev.Kind, '.')+1:]
		if want := outcomeSegment(ev.GetOutcome().GetStatus()); seg != want {
			return fmt.Errorf("kind %q says %s but the outcome is %s", ev.Kind, seg, ev.GetOutcome().GetStatus())
		}
	}
	if o := ev.GetOcsf(); o != nil && o.ClassUid != 0 && ev.EventClass != stelev1.EventClass_EVENT_CLASS_OTHER && classOf(o.ClassUid) != ev.EventClass {
		return fmt.Errorf("OCSF class %d does not match event class %s", o.ClassUid, ev.EventClass)
	}
	return nil
}

func addFlag(ev *stelev1.IdentityEvent, f string) { ev.Flags = append(ev.Flags, f) }

// setTime sets the event time from a record field's text (RFC 3339 only).
func setTime(ev *stelev1.IdentityEvent, field, text string) error {
	return setTimes(ev, zoneRequired, timeField{field, text})
}

// dashes maps the dashes providers write in activity names to "-".
var dashes = strings.NewReplacer("\u2013", "-", "\u2014", "-", "\u2012", "-", "\u2212", "-")

// activityKey is the matching form of an activity name: lower case, Unicode
// dashes as "-", whitespace collapsed, a trailing "." stripped.
func activityKey(s string) string {
	// ASCII text (every name Entra writes) in one pass and one allocation;
	// TestActivityKey holds it to activityKeyText.
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return activityKeyText(s)
		case c == ' ' || c >= '\t' && c <= '\r':
			space = len(b) > 0
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	if n := len(b); n > 0 && b[n-1] == '.' {
		b = b[:n-1]
	}
	return string(b)
}

// activityKeyText is activityKey for any text.
func activityKeyText(s string) string {
	s = dashes.Replace(s)
	s = strings.Join(strings.Fields(strings.ToLower(s)), " ")
	return strings.TrimSuffix(s, ".")
}

// class sets the event class and OCSF ids.
func class(ev *stelev1.IdentityEvent, c stelev1.EventClass, classUID, activityID int32) {
	ev.EventClass = c
	ev.Ocsf = &stelev1.OcsfClass{ClassUid: classUID, ActivityId: activityID}
}

// OCSF class uids (schema 1.8.0).
const (
	ocsfAccountChange        = 3001
	ocsfAuthentication       = 3002
	ocsfAuthorizeSession     = 3003
	ocsfEntityManagement     = 3004
	ocsfUserAccessManagement = 3005
	ocsfGroupManagement      = 3006
)

// classOf maps an OCSF class uid to the event class.
func classOf(uid int32) stelev1.EventClass {
	switch uid {
	case ocsfAccountChange:
		return stelev1.EventClass_EVENT_CLASS_ACCOUNT_CHANGE
	case ocsfAuthentication:
		return stelev1.EventClass_EVENT_CLASS_AUTHENTICATION
	case ocsfAuthorizeSession:
		return stelev1.EventClass_EVENT_CLASS_AUTHORIZE_SESSION
	case ocsfEntityManagement:
		return stelev1.EventClass_EVENT_CLASS_ENTITY_MANAGEMENT
	case ocsfUserAccessManagement:
		return stelev1.EventClass_EVENT_CLASS_USER_ACCESS_MANAGEMENT
	case ocsfGroupManagement:
		return stelev1.EventClass_EVENT_CLASS_GROUP_MANAGEMENT
	}
	return stelev1.EventClass_EVENT_CLASS_OTHER
}

// realIP returns ip unless it is a placeholder, flagging placeholders.
func realIP(ev *stelev1.IdentityEvent, ip string) string {
	switch strings.ToLower(strings.TrimSpace(ip)) {
	case "":
		return ""
	case "<null>", "null", "n/a", "-":
		addFlag(ev, FlagPlaceholderIP)
		return ""
	}
	return ip
}

// JSON renders a normalised view as indented JSON with proto field names,
// in field-number order, without the raw record (print that separately:
// it is the exact bytes, not JSON text of the view). The output is stable
// for a given event: protojson's deliberately varying whitespace is
// normalised away.
func JSON(ev *stelev1.IdentityEvent) ([]byte, error) {
	c := proto.CloneOf(ev)
	c.RawRecord = nil
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("identity: rendering JSON: %w", err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, fmt.Errorf("identity: rendering JSON: %w", err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("identity: rendering JSON: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// Views returns a stored payload's normalised view as stored, and the view
// the current normaliser derives from its raw record, with the fields the
// server settled on admission (kind, native id, origin, a tenant taken from
// the source) carried over so the
// two compare on what the normaliser derives. stored is nil when the
// payload holds no view; currentErr is the current normaliser's error, if
// it cannot read the record. err is set only when the stored view does not
// decode.
func Views(p *payload.Payload) (stored, current *stelev1.IdentityEvent, currentErr, err error) {
	if len(p.Normalized) > 0 {
		if stored, err = Unmarshal(p.Normalized, p.Format, p.Record); err != nil {
			return nil, nil, nil, err
		}
	}
	current, currentErr = Normalize(p.Format, p.Record)
	if current != nil && stored != nil {
		current.Kind, current.NativeId, current.Origin = stored.Kind, stored.NativeId, stored.Origin
		if !slices.Contains(stored.Flags, FlagNoNativeID) {
			current.Flags = slices.DeleteFunc(current.Flags, func(f string) bool { return f == FlagNoNativeID })
		}
		if slices.Contains(stored.Flags, FlagTenantFromSource) && current.GetSource() != nil && current.Source.Tenant == "" {
			// Settled at admission from the source, which the payload does
			// not hold.
			current.Source.Tenant = stored.GetSource().GetTenant()
			current.Flags = append(current.Flags, FlagTenantFromSource)
		}
	}
	return stored, current, currentErr, nil
}
