package record

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stele-dev/stele/internal/jsonappend"
)

// appendProtoJSON appends m as protojson.MarshalOptions{UseProtoNames:
// true} encodes it, compacted (jsonappend.Compact): byte for byte the
// same (TestProtoJSONSame, FuzzProtoJSON), in one pass over the message's
// fields in declaration order, without protojson's sorting of the fields,
// its encoder state and its randomised whitespace, which made it a third
// of a record's rendering.
//
// It writes the JSON mapping of scalars, enums, repeated fields, nested
// messages and google.protobuf.Timestamp; a message holding anything else
// (maps, extensions, groups, the other well-known types) is handed to
// protojson whole.
func appendProtoJSON(b []byte, m proto.Message) ([]byte, error) {
	start := len(b)
	out, err := appendMessage(b, m.ProtoReflect())
	if errors.Is(err, errUnsupported) {
		j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return b[:start], err
		}
		return jsonappend.Compact(b[:start], j, false), nil
	}
	if err != nil {
		return b[:start], err
	}
	return out, nil
}

// errUnsupported: the message holds something appendMessage leaves to
// protojson.
var errUnsupported = errors.New("left to protojson")

func appendMessage(b []byte, m protoreflect.Message) ([]byte, error) {
	md := m.Descriptor()
	if md.FullName().Parent() == "google.protobuf" {
		if md.FullName() == "google.protobuf.Timestamp" {
			return appendTimestamp(b, m)
		}
		if md.FullName() != "google.protobuf.Empty" {
			return b, errUnsupported
		}
	}
	if md.ExtensionRanges().Len() > 0 {
		return b, errUnsupported
	}
	b = append(b, '{')
	first := true
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		if fd.IsMap() || fd.Kind() == protoreflect.GroupKind {
			return b, errUnsupported
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		var err error
		// Field names are identifiers: nothing to escape.
		b = append(b, '"')
		b = append(b, fd.Name()...)
		b = append(b, '"', ':')
		v := m.Get(fd)
		if fd.IsList() {
			l := v.List()
			b = append(b, '[')
			for j := range l.Len() {
				if j > 0 {
					b = append(b, ',')
				}
				if b, err = appendSingular(b, l.Get(j), fd); err != nil {
					return b, err
				}
			}
			b = append(b, ']')
			continue
		}
		if b, err = appendSingular(b, v, fd); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendSingular(b []byte, v protoreflect.Value, fd protoreflect.FieldDescriptor) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), nil
	case protoreflect.StringKind:
		return appendProtoString(b, v.String(), fd)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendInt(b, v.Int(), 10), '"'), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendUint(b, v.Uint(), 10), '"'), nil
	case protoreflect.FloatKind:
		return appendProtoFloat(b, v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return appendProtoFloat(b, v.Float(), 64), nil
	case protoreflect.BytesKind:
		b = append(b, '"')
		return append(base64.StdEncoding.AppendEncode(b, v.Bytes()), '"'), nil
	case protoreflect.EnumKind:
		if fd.Enum().FullName() == "google.protobuf.NullValue" {
			return append(b, "null"...), nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b = append(b, '"')
			return append(append(b, ev.Name()...), '"'), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	case protoreflect.MessageKind:
		return appendMessage(b, v.Message())
	}
	return b, errUnsupported
}

// appendProtoString writes s as protojson does: only '"', '\\' and control
// characters escaped (\b \f \n \r \t, else \u00xx in lower case); invalid
// UTF-8 is an error.
func appendProtoString(b []byte, s string, fd protoreflect.FieldDescriptor) ([]byte, error) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return b, fmt.Errorf("proto: field %s contains invalid UTF-8", fd.FullName())
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendProtoFloat is protojson's number formatting (encoding/json's, with
// NaN and the infinities as strings).
func appendProtoFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// Timestamp bounds protojson accepts: 0001-01-01 to 9999-12-31.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp writes a google.protobuf.Timestamp as protojson does:
// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
func appendTimestamp(b []byte, m protoreflect.Message) ([]byte, error) {
	fds := m.Descriptor().Fields()
	secs, nanos := m.Get(fds.ByNumber(1)).Int(), m.Get(fds.ByNumber(2)).Int()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return b, fmt.Errorf("proto: google.protobuf.Timestamp: seconds out of range %v", secs)
	}
	if nanos < 0 || nanos > 999999999 {
		return b, fmt.Errorf("proto: google.protobuf.Timestamp: nanos out of range %v", nanos)
	}
	b = append(b, '"')
	b = time.Unix(secs, nanos).UTC().AppendFormat(b, "2006-01-02T15:04:05")
	if nanos != 0 {
		var digits [10]byte
		frac := strconv.AppendInt(digits[:0], 1e9+nanos, 10)[1:] // nine digits
		switch {
		case nanos%1e6 == 0:
			frac = frac[:3]
		case nanos%1e3 == 0:
			frac = frac[:6]
		}
		b = append(append(b, '.'), frac...)
	}
	return append(b, 'Z', '"'), nil
}
