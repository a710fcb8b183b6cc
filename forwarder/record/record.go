// Package record defines the document stele-forwarder delivers to a SIEM
// for each log entry, and verifies such a document offline, years later,
// against the log's public key alone.
//
// A document (schema "stele.record/v1") is one JSON object:
//
//	stele_record     "v1"
//	type             "event": an entry with its payload;
//	                 "erased": an entry whose payload was erased before it
//	                 was forwarded (leaf, receipt and tombstone only);
//	                 erasure events themselves are "event"s from source
//	                 stele/erasure and carry "erasure" (the notice).
//	origin, index    the log and the entry's position in it
//	leaf_hash        hex RFC 6962 leaf hash of the entry
//	source, source_seq, event_id, kind, event_time, admitted_time
//	                 the leaf's fields, for searching (checked against the leaf)
//	format           the raw record's format, e.g. "entra.directoryAudit"
//	record           the raw record, exactly the provider's bytes, as a JSON
//	                 string (JSON strings hold any valid UTF-8 exactly)
//	record_base64    instead of record, when the bytes are not valid UTF-8
//	salt             base64 salt of the payload commitment
//	normalized_pb    base64 of the committed normalised view (protobuf),
//	                 absent for payloads stored without one
//	normalized       the normalised view as JSON (proto field names)
//	ocsf             the OCSF event derived from the normalised view
//	erasure          the erasure notice (see Erasure)
//	receipt          the C2SP tlog-proof: signed checkpoint with its
//	                 cosignatures, inclusion proof, and the leaf as extra data
//
// Verify checks every field that can be checked: the receipt's signature
// and inclusion proof, the leaf fields against the receipt's leaf, the
// payload (format, record, normalized_pb) against the leaf's salted digest,
// and the JSON views against what this build derives from the committed
// view.
package record

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stele-dev/stele/client"
	"github.com/stele-dev/stele/identity"
	"github.com/stele-dev/stele/internal/jsonappend"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// Schema is the value of the stele_record field.
const Schema = "v1"

// Document types.
const (
	TypeEvent  = "event"
	TypeErased = "erased"
)

// ErasureSource is the source of the erasure events a log appends (see
// server.ErasureSource; repeated here so verifiers need not import the
// server).
const ErasureSource = "stele/erasure"

// Erasure is an erasure notice: sinks that can delete what they hold for
// ErasedIndex do so. On an erasure event (type "event", source
// stele/erasure) it is decoded from the event's own record; on an "erased"
// document it is the server's tombstone.
type Erasure struct {
	ErasedIndex      uint64 `json:"erased_index"`
	ErasureIndex     uint64 `json:"erasure_index,omitempty"`
	Reason           string `json:"reason,omitempty"`
	RequestReference string `json:"request_reference,omitempty"`
	ErasedBy         string `json:"erased_by,omitempty"`
	Time             string `json:"time,omitempty"`
}

// Document is one delivered record.
type Document struct {
	Schema       string          `json:"stele_record"`
	Type         string          `json:"type"`
	Origin       string          `json:"origin"`
	Index        uint64          `json:"index"`
	LeafHash     string          `json:"leaf_hash"`
	Source       string          `json:"source"`
	SourceSeq    uint64          `json:"source_seq,omitempty"`
	EventID      string          `json:"event_id"`
	Kind         string          `json:"kind"`
	EventTime    string          `json:"event_time"`
	AdmittedTime string          `json:"admitted_time"`
	Format       string          `json:"format,omitempty"`
	Record       *string         `json:"record,omitempty"`
	RecordBase64 string          `json:"record_base64,omitempty"`
	Salt         string          `json:"salt,omitempty"`
	NormalizedPB string          `json:"normalized_pb,omitempty"`
	Normalized   json.RawMessage `json:"normalized,omitempty"`
	OCSF         json.RawMessage `json:"ocsf,omitempty"`
	Erasure      *Erasure        `json:"erasure,omitempty"`
	Receipt      string          `json:"receipt"`

	// receiptJSON, when set, is Receipt encoded as a JSON string (see
	// Checkpoint): AppendJSON copies it instead of escaping Receipt.
	receiptJSON []byte
	// compactViews: Normalized and OCSF are compact JSON already (Build
	// made them), AppendJSON copies them without compacting them again.
	compactViews bool
}

// Entry is what the forwarder knows of a verified entry: Build turns it
// into a Document.
type Entry struct {
	Origin string
	Index  uint64
	// LeafBytes is the entry as in the log; Leaf its parse.
	LeafBytes []byte
	Leaf      *leaf.Leaf
	// Receipt is the entry's C2SP tlog-proof with the leaf as extra data.
	Receipt []byte
	// Salt and Payload: the payload as committed; nil when erased.
	Salt    []byte
	Payload *payload.Payload
	// Tombstone is set when the payload was erased.
	Tombstone *stelev1.EraseTombstone
	// Checkpoint, when set, is the checkpoint Receipt ends with, its JSON
	// encoding shared by every entry under it.
	Checkpoint *Checkpoint
}

// Build makes the document for a verified entry. The payload must have
// been checked against the leaf already.
func Build(e *Entry) (*Document, error) {
	l := e.Leaf
	lh := rfc6962.DefaultHasher.HashLeaf(e.LeafBytes)
	d := &Document{Schema: Schema, Type: TypeEvent, Origin: e.Origin, Index: e.Index, LeafHash: hex.EncodeToString(lh),
		Source: l.Source, SourceSeq: l.SourceSeq, EventID: l.EventID, Kind: l.Kind,
		EventTime: ts(l.EventTime), AdmittedTime: ts(l.AdmittedTime), Receipt: string(e.Receipt)}
	if c := e.Checkpoint; c != nil {
		d.receiptJSON = c.receiptJSON(e.Receipt)
	}
	if e.Payload == nil {
		if e.Tombstone == nil {
			return nil, fmt.Errorf("record: entry %d has neither payload nor tombstone", e.Index)
		}
		t := e.Tombstone
		d.Type = TypeErased
		d.Erasure = &Erasure{ErasedIndex: e.Index, ErasureIndex: t.ErasureIndex, Reason: t.Reason,
			RequestReference: t.RequestReference, ErasedBy: t.ErasedBy, Time: ts(t.GetErasedAt().AsTime())}
		return d, nil
	}
	p := e.Payload
	d.Format, d.Salt = p.Format, base64.StdEncoding.EncodeToString(e.Salt)
	if utf8.Valid(p.Record) {
		s := string(p.Record)
		d.Record = &s
	} else {
		d.RecordBase64 = base64.StdEncoding.EncodeToString(p.Record)
	}
	if len(p.Normalized) > 0 {
		d.NormalizedPB = base64.StdEncoding.EncodeToString(p.Normalized)
		norm, ocsf, err := views(p, l)
		if err != nil {
			return nil, fmt.Errorf("record: entry %d: %w", e.Index, err)
		}
		d.Normalized, d.OCSF, d.compactViews = norm, ocsf, true
	}
	if l.Source == ErasureSource {
		var er Erasure
		if err := json.Unmarshal(p.Record, &er); err != nil {
			return nil, fmt.Errorf("record: entry %d is an erasure event whose record does not parse: %w", e.Index, err)
		}
		er.ErasureIndex = e.Index
		d.Erasure = &er
	}
	return d, nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// views renders the committed normalised view as JSON and as OCSF (nil
// when the view has no OCSF class).
func views(p *payload.Payload, l *leaf.Leaf) (norm, ocsf json.RawMessage, err error) {
	ev, err := identity.Unmarshal(p.Normalized, p.Format, nil)
	if err != nil {
		return nil, nil, err
	}
	// identity.JSON's rendering (proto field names, no raw record), compact,
	// without its defensive copy and indentation: ev is ours, its raw
	// record left out, and this runs for every record forwarded.
	j, err := appendProtoJSON(make([]byte, 0, 4*len(p.Normalized)+256), ev)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: rendering JSON: %w", err)
	}
	if ev.GetOcsf().GetClassUid() == 0 {
		return j, nil, nil
	}
	if ev.EventTime == nil {
		ev.EventTime = timestamppb.New(l.EventTime)
	}
	m, err := identity.OCSFObject(ev)
	if err != nil {
		return nil, nil, err
	}
	o, err := AppendOCSF(make([]byte, 0, 1024), m)
	if err != nil {
		return nil, nil, err
	}
	return j, o, nil
}

// Marshal encodes the document as compact JSON (no HTML escaping, so the
// record string reads as the provider wrote it).
// It is AppendJSON to a buffer of the right size; the error is kept for
// callers of the encoding/json version it replaced and is always nil.
func (d *Document) Marshal() ([]byte, error) {
	// The keys and punctuation take about 300 bytes, the receipt's escaped
	// newlines one byte each.
	n := 512 + len(d.Origin) + len(d.LeafHash) + len(d.Source) + len(d.EventID) + len(d.Kind) + len(d.EventTime) + len(d.AdmittedTime) +
		len(d.Format) + len(d.Salt) + len(d.Normalized) + len(d.OCSF) + len(d.NormalizedPB) + len(d.RecordBase64) + max(len(d.receiptJSON), len(d.Receipt)+strings.Count(d.Receipt, "\n"))
	if r := d.Record; r != nil {
		// Quotes, backslashes and newlines (a pretty-printed record)
		// take two bytes each in the JSON string: counted, so the
		// buffer is not regrown (and copied) for a record full of them.
		n += len(*r) + strings.Count(*r, `"`) + strings.Count(*r, `\`) + strings.Count(*r, "\n") + 64
	}
	return d.AppendJSON(make([]byte, 0, n)), nil
}

// RecordBytes returns the raw record's exact bytes.
func (d *Document) RecordBytes() ([]byte, error) {
	switch {
	case d.Record != nil && d.RecordBase64 != "":
		return nil, errors.New("record: both record and record_base64 are set")
	case d.Record != nil:
		return []byte(*d.Record), nil
	case d.RecordBase64 != "":
		b, err := base64.StdEncoding.DecodeString(d.RecordBase64)
		if err != nil {
			return nil, fmt.Errorf("record: record_base64: %w", err)
		}
		return b, nil
	}
	return nil, nil
}

// Find extracts a Stele document from what a SIEM returns: the document
// itself, or any JSON object or JSON string (at any depth) holding one,
// such as a Splunk event ({"event": ...}), an Elasticsearch hit
// ({"_source": ...}), a Kafka message value, a syslog message, a Security
// Lake row's unmapped field or a Log Analytics row. Exactly one document
// must be found.
func Find(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("empty input: want a Stele record document (or a SIEM's copy of one)")
	}
	// A syslog line or other text: the document is the first JSON object
	// in it.
	if len(b) > 0 && b[0] != '{' && b[0] != '[' && b[0] != '"' {
		i := bytes.IndexByte(b, '{')
		if i < 0 {
			return nil, errors.New("no JSON object in the input: want a Stele record document (or a SIEM's copy of one)")
		}
		b = b[i:]
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the input is not JSON: %v", err)
	}
	var found [][]byte
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 8 || len(found) > 1 {
			return
		}
		switch x := v.(type) {
		case map[string]any:
			if v, ok := x["stele_record"]; ok && !isJSONText(v) {
				raw, err := json.Marshal(x)
				if err == nil {
					found = append(found, raw)
				}
				return
			}
			for _, c := range x {
				walk(c, depth+1)
			}
		case []any:
			for _, c := range x {
				walk(c, depth+1)
			}
		case string:
			if s := bytes.TrimSpace([]byte(x)); len(s) > 0 && s[0] == '{' && bytes.Contains(s, []byte(`"stele_record"`)) {
				var inner any
				d := json.NewDecoder(bytes.NewReader(s))
				d.UseNumber()
				if d.Decode(&inner) == nil {
					walk(inner, depth+1)
				}
			}
		}
	}
	walk(v, 0)
	switch len(found) {
	case 0:
		return nil, errors.New("no Stele record document (an object with a stele_record field) in the input")
	case 1:
		return found[0], nil
	}
	return nil, errors.New("more than one Stele record document in the input: give one at a time")
}

// isJSONText reports whether v is a string holding a JSON object (a
// document stored as text under a stele_record key).
func isJSONText(v any) bool {
	s, ok := v.(string)
	return ok && strings.HasPrefix(strings.TrimSpace(s), "{")
}

// Parse decodes a document strictly: unknown fields are refused.
func Parse(b []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("record: not a Stele record document: %v", err)
	}
	if dec.More() {
		return nil, errors.New("record: data after the document")
	}
	if d.Schema != Schema {
		return nil, fmt.Errorf("record: stele_record is %q, this build reads %q", d.Schema, Schema)
	}
	return &d, nil
}

// Verified is what Verify established.
type Verified struct {
	Receipt *client.Receipt
	Doc     *Document
	// Payload is the verified payload; nil for an erased entry.
	Payload *payload.Payload
	// OCSFChecked: the ocsf field is what this build maps the committed
	// view to.
	OCSFChecked bool
	// Notes says what was not checked, and why.
	Notes []string
}

// Verify checks a document offline against the log's verifier (and the
// witness policy, when given). Every error wraps client.ErrVerification
// except a document that does not parse.
func Verify(b []byte, logVerifier note.Verifier, policy *client.Policy) (*Verified, error) {
	if logVerifier == nil {
		return nil, errors.New("record: no log verifier key")
	}
	d, err := Parse(b)
	if err != nil {
		return nil, err
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: entry %d: %s", client.ErrVerification, d.Index, fmt.Sprintf(format, a...))
	}
	r, err := client.VerifyReceipt([]byte(d.Receipt), logVerifier)
	if err != nil {
		return nil, fail("receipt: %v", err)
	}
	if policy != nil {
		if err := policy.Check(r.Checkpoint); err != nil {
			return nil, fail("%v", err)
		}
	}
	v := &Verified{Receipt: r, Doc: d}
	l := r.Leaf
	lh := rfc6962.DefaultHasher.HashLeaf(r.LeafBytes)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"origin", d.Origin, r.Checkpoint.Origin},
		{"index", d.Index, r.Index},
		{"leaf_hash", d.LeafHash, hex.EncodeToString(lh)},
		{"source", d.Source, l.Source},
		{"source_seq", d.SourceSeq, l.SourceSeq},
		{"event_id", d.EventID, l.EventID},
		{"kind", d.Kind, l.Kind},
		{"event_time", d.EventTime, ts(l.EventTime)},
		{"admitted_time", d.AdmittedTime, ts(l.AdmittedTime)},
	} {
		if c.got != c.want {
			return nil, fail("the document's %s is %v, the receipt's leaf says %v", c.name, c.got, c.want)
		}
	}
	switch d.Type {
	case TypeErased:
		if d.Erasure == nil || d.Erasure.ErasedIndex != d.Index {
			return nil, fail("an erased entry's document must carry its erasure notice")
		}
		if d.Record != nil || d.RecordBase64 != "" || d.Salt != "" || d.NormalizedPB != "" || d.Normalized != nil || d.OCSF != nil {
			return nil, fail("an erased entry's document carries payload fields")
		}
		v.Notes = append(v.Notes, "the payload was erased before it was forwarded: the leaf and its receipt verify, there is no record to check")
		return v, nil
	case TypeEvent:
	default:
		return nil, fail("unknown type %q", d.Type)
	}
	rec, err := d.RecordBytes()
	if err != nil {
		return nil, fail("%v", err)
	}
	salt, err := base64.StdEncoding.DecodeString(d.Salt)
	if err != nil {
		return nil, fail("salt: %v", err)
	}
	var norm []byte
	if d.NormalizedPB != "" {
		if norm, err = base64.StdEncoding.DecodeString(d.NormalizedPB); err != nil {
			return nil, fail("normalized_pb: %v", err)
		}
	}
	p := &payload.Payload{Format: d.Format, Record: rec, Normalized: norm}
	pb, err := p.Marshal()
	if err != nil {
		return nil, fail("the payload does not encode: %v", err)
	}
	if err := l.VerifyPayload(salt, pb); err != nil {
		return nil, fail("the record is not the one the log commits to: %v", err)
	}
	if l.Signature != nil {
		if err := l.VerifySignature(p.Format, p.Record); err != nil {
			return nil, fail("producer signature by key %s: %v", l.Signature.KeyID(), err)
		}
	}
	v.Payload = p
	if l.Source == ErasureSource {
		var er Erasure
		if err := json.Unmarshal(rec, &er); err != nil || d.Erasure == nil {
			return nil, fail("an erasure event's document must carry the notice its record holds")
		}
		er.ErasureIndex = d.Index
		if *d.Erasure != er {
			return nil, fail("the erasure notice is not the one the erasure event's record holds")
		}
	} else if d.Erasure != nil {
		return nil, fail("an erasure notice on an entry that is not an erasure event")
	}
	if len(norm) == 0 {
		if d.Normalized != nil || d.OCSF != nil {
			return nil, fail("normalized or ocsf without the committed view (normalized_pb) they derive from")
		}
		v.Notes = append(v.Notes, "the payload holds no normalised view")
		return v, nil
	}
	wantNorm, wantOCSF, err := views(p, l)
	if err != nil {
		return nil, fail("the committed view does not decode: %v", err)
	}
	if !sameJSON(d.Normalized, wantNorm) {
		return nil, fail("normalized is not the JSON form of the committed view (normalized_pb)")
	}
	switch {
	case d.OCSF == nil && wantOCSF == nil:
	case d.OCSF == nil:
		return nil, fail("ocsf is missing")
	case wantOCSF == nil:
		return nil, fail("ocsf is present but the committed view has no OCSF class")
	case !sameJSON(d.OCSF, wantOCSF):
		var meta struct {
			Metadata struct {
				Version string `json:"version"`
			} `json:"metadata"`
		}
		if json.Unmarshal(d.OCSF, &meta) == nil && meta.Metadata.Version != "" && meta.Metadata.Version != identity.OCSFVersion {
			v.Notes = append(v.Notes, fmt.Sprintf("ocsf not checked: mapped to OCSF %s, this build maps to %s (the record and view it derives from verified)", meta.Metadata.Version, identity.OCSFVersion))
			break
		}
		return nil, fail("ocsf is not the OCSF form of the committed view")
	default:
		v.OCSFChecked = true
	}
	return v, nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Receipt builds the C2SP tlog-proof of an entry in cp.
func Receipt(cp *client.Checkpoint, index uint64, hashes [][32]byte, leafBytes []byte) []byte {
	return (&proof.TLogProof{Index: index, Hashes: hashes, Checkpoint: cp.Raw, ExtraData: leafBytes}).Marshal()
}

// Checkpoint is a checkpoint's text (with its cosignatures) as every
// receipt under it ends with, encoded as a JSON string once: the
// documents of a batch share it instead of each escaping it again.
type Checkpoint struct {
	raw     []byte
	escaped []byte // raw as a JSON string, without its quotes
}

// NewCheckpoint prepares the receipts of entries in cp.
func NewCheckpoint(cp *client.Checkpoint) *Checkpoint {
	q := jsonappend.String(nil, cp.Raw, false)
	return &Checkpoint{raw: cp.Raw, escaped: q[1 : len(q)-1]}
}

// Receipt builds the C2SP tlog-proof of an entry: the bytes Receipt
// gives, written without fmt.
func (c *Checkpoint) Receipt(index uint64, hashes [][32]byte, leafBytes []byte) []byte {
	b64 := base64.StdEncoding
	n := len(tlogProofHeader) + 1 + 6 + b64.EncodedLen(len(leafBytes)) + 1 + 26 + len(hashes)*(b64.EncodedLen(32)+1) + 1 + len(c.raw)
	b := make([]byte, 0, n)
	b = append(b, tlogProofHeader...)
	b = append(b, '\n')
	if leafBytes != nil {
		b = append(b, "extra "...)
		b = b64.AppendEncode(b, leafBytes)
		b = append(b, '\n')
	}
	b = append(b, "index "...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, '\n')
	for _, h := range hashes {
		b = b64.AppendEncode(b, h[:])
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, c.raw...)
}

// tlogProofHeader is the first line of a C2SP tlog-proof.
const tlogProofHeader = "c2sp.org/tlog-proof@v1"

// receiptJSON encodes a receipt ending with the checkpoint as a JSON
// string, escaping only the entry's own lines; nil when it does not end
// with the checkpoint.
func (c *Checkpoint) receiptJSON(receipt []byte) []byte {
	head, ok := bytes.CutSuffix(receipt, c.raw)
	if !ok || !utf8.Valid(head) {
		return nil
	}
	q := jsonappend.String(make([]byte, 0, len(head)+len(head)/8+len(c.escaped)+2), head, false)
	q = append(q[:len(q)-1], c.escaped...)
	return append(q, '"')
}
