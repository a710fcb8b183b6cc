package record

import (
	"strconv"

	"github.com/stele-dev/stele/internal/jsonappend"
)

// The document is encoded in one pass, appending to a buffer, instead of
// through encoding/json's reflection: rendering runs for every record
// forwarded and the encoding was a large part of its cost. The bytes are
// exactly those encoding/json gives for the Document struct (compact, no
// HTML escaping, RawMessage members compacted): TestAppendJSONDifferential
// and FuzzAppendJSON compare the two.

// AppendJSON appends the document's compact JSON to dst: exactly the bytes
// json.Encoder (SetEscapeHTML(false)) writes for d, less its newline.
func (d *Document) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"stele_record":`...)
	dst = jsonappend.String(dst, d.Schema, false)
	dst = append(dst, `,"type":`...)
	dst = jsonappend.String(dst, d.Type, false)
	dst = append(dst, `,"origin":`...)
	dst = jsonappend.String(dst, d.Origin, false)
	dst = append(dst, `,"index":`...)
	dst = strconv.AppendUint(dst, d.Index, 10)
	dst = append(dst, `,"leaf_hash":`...)
	dst = jsonappend.String(dst, d.LeafHash, false)
	dst = append(dst, `,"source":`...)
	dst = jsonappend.String(dst, d.Source, false)
	if d.SourceSeq != 0 {
		dst = append(dst, `,"source_seq":`...)
		dst = strconv.AppendUint(dst, d.SourceSeq, 10)
	}
	dst = append(dst, `,"event_id":`...)
	dst = jsonappend.String(dst, d.EventID, false)
	dst = append(dst, `,"kind":`...)
	dst = jsonappend.String(dst, d.Kind, false)
	dst = append(dst, `,"event_time":`...)
	dst = jsonappend.String(dst, d.EventTime, false)
	dst = append(dst, `,"admitted_time":`...)
	dst = jsonappend.String(dst, d.AdmittedTime, false)
	if d.Format != "" {
		dst = append(dst, `,"format":`...)
		dst = jsonappend.String(dst, d.Format, false)
	}
	if d.Record != nil {
		dst = append(dst, `,"record":`...)
		dst = jsonappend.String(dst, *d.Record, false)
	}
	if d.RecordBase64 != "" {
		dst = append(dst, `,"record_base64":`...)
		dst = jsonappend.String(dst, d.RecordBase64, false)
	}
	if d.Salt != "" {
		dst = append(dst, `,"salt":`...)
		dst = jsonappend.String(dst, d.Salt, false)
	}
	if d.NormalizedPB != "" {
		dst = append(dst, `,"normalized_pb":`...)
		dst = jsonappend.String(dst, d.NormalizedPB, false)
	}
	for _, v := range [...]struct {
		k   string
		raw []byte
	}{{`,"normalized":`, d.Normalized}, {`,"ocsf":`, d.OCSF}} {
		if len(v.raw) == 0 {
			continue
		}
		dst = append(dst, v.k...)
		if d.compactViews {
			dst = append(dst, v.raw...)
		} else {
			dst = jsonappend.Compact(dst, v.raw, false)
		}
	}
	if e := d.Erasure; e != nil {
		dst = append(dst, `,"erasure":{"erased_index":`...)
		dst = strconv.AppendUint(dst, e.ErasedIndex, 10)
		if e.ErasureIndex != 0 {
			dst = append(dst, `,"erasure_index":`...)
			dst = strconv.AppendUint(dst, e.ErasureIndex, 10)
		}
		for _, kv := range [...]struct{ k, v string }{{`,"reason":`, e.Reason}, {`,"request_reference":`, e.RequestReference},
			{`,"erased_by":`, e.ErasedBy}, {`,"time":`, e.Time}} {
			if kv.v != "" {
				dst = append(dst, kv.k...)
				dst = jsonappend.String(dst, kv.v, false)
			}
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"receipt":`...)
	if d.receiptJSON != nil {
		dst = append(dst, d.receiptJSON...)
	} else {
		dst = jsonappend.String(dst, d.Receipt, false)
	}
	return append(dst, '}')
}

// AppendOCSF appends the OCSF object (identity.OCSFObject) as
// identity.OCSF encodes it (json.Marshal: keys sorted, HTML characters
// escaped, compact).
func AppendOCSF(dst []byte, m map[string]any) ([]byte, error) {
	return jsonappend.Value(dst, m)
}
