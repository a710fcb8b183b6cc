package leaf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stele-dev/stele/payload"
)

// Test vector; the same values and hex appear in docs/leaf-v1.md.
const (
	vectorSource  = "entra/00000000-0000-0000-0000-000000000001/audit"
	vectorSeq     = 7
	vectorEventID = "a1b2c3d4-0000-4000-8000-000000000001"
	vectorKind    = "directory.role.member.add"
	vectorFormat  = "entra.directoryAudit"
	vectorRecord  = `{"id":"a1b2c3d4-0000-4000-8000-000000000001","activityDisplayName":"Add member to role"}`

	// Unix nanoseconds of 2026-01-02T03:04:05.123456789Z and 2026-01-02T03:04:06Z.
	vectorEventTimeNanos    = 1767323045123456789
	vectorAdmittedTimeNanos = 1767323046000000000

	vectorPayloadHex = "0114656e7472612e6469726563746f72794175646974000000587b226964223a2261316232633364342d303030302d343030302d383030302d303030303030303030303031222c226163746976697479446973706c61794e616d65223a22416464206d656d62657220746f20726f6c65227d00000000"
	vectorDigestHex  = "453c25e40e992a67f1303095180ba85e088c6a302634865d736c557f1ea88ebb"
	vectorLeafHex    = "0130656e7472612f30303030303030302d303030302d303030302d303030302d3030303030303030303030312f61756469740000000000000007002461316232633364342d303030302d343030302d383030302d303030303030303030303031196469726563746f72792e726f6c652e6d656d6265722e6164641886caf223f1ff151886caf25830fc00453c25e40e992a67f1303095180ba85e088c6a302634865d736c557f1ea88ebb0000007600"
	// vectorLeafHashHex is the RFC 6962 leaf hash SHA-256(0x00 || leaf).
	vectorLeafHashHex = "bcb427c24fd50ec5990f9a34ceeb5892bbb85d3dbb9e6688fca66d101fc47629"

	// Signed variant: Ed25519 private key seed 0x20..0x3f.
	vectorProducerMessageHex = "7374656c652f70726f64756365722d7369676e61747572652f76310a30656e7472612f30303030303030302d303030302d303030302d303030302d3030303030303030303030312f61756469740000000000000007002461316232633364342d303030302d343030302d383030302d303030303030303030303031196469726563746f72792e726f6c652e6d656d6265722e6164641886caf223f1ff1514656e7472612e6469726563746f727941756469747b205fb95db95ba8ef6fc66f59350093b1c8cd1929a459130c465762053ca465"
	vectorPublicKeyHex       = "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
	vectorSignatureHex       = "63c4305eef3dbc469d85c66760e2d756e124b2860e21d6bb0b4665acd128cfc382fae946caaa101b8a475e22b42e52e658293f9d7d95e95db896a1f49452ae0c"
	vectorSignedLeafHex      = "0130656e7472612f30303030303030302d303030302d303030302d303030302d3030303030303030303030312f61756469740000000000000007002461316232633364342d303030302d343030302d383030302d303030303030303030303031196469726563746f72792e726f6c652e6d656d6265722e6164641886caf223f1ff151886caf25830fc00453c25e40e992a67f1303095180ba85e088c6a302634865d736c557f1ea88ebb000000760129acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd763c4305eef3dbc469d85c66760e2d756e124b2860e21d6bb0b4665acd128cfc382fae946caaa101b8a475e22b42e52e658293f9d7d95e95db896a1f49452ae0c"
	vectorSignedLeafHashHex  = "cd3a08cd953bb79e0164c1d9c1799270ea7c35b983b302e311d61215b75dea2a"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(from, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(from + i)
	}
	return b
}

func vectorSalt() []byte { return seq(0x00, 32) }
func vectorSeed() []byte { return seq(0x20, 32) }

func vectorEventTime() time.Time {
	return time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
}

func vectorAdmittedTime() time.Time {
	return time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)
}

// part is one field of a hand-built leaf encoding.
type part struct {
	name string
	b    []byte
}

// rawLeaf is a leaf encoding built field by field with encoding/binary,
// independently of Marshal, so that fields can be corrupted one at a time.
type rawLeaf []part

func u8str(s string) []byte  { return append([]byte{byte(len(s))}, s...) }
func u16str(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }
func u64(n uint64) []byte    { return binary.BigEndian.AppendUint64(nil, n) }
func i64(n int64) []byte     { return binary.BigEndian.AppendUint64(nil, uint64(n)) }
func u32(n uint32) []byte    { return binary.BigEndian.AppendUint32(nil, n) }

func vectorRaw(t testing.TB) rawLeaf {
	return rawLeaf{
		{"version", []byte{0x01}},
		{"source", u8str(vectorSource)},
		{"source_seq", u64(vectorSeq)},
		{"event_id", u16str(vectorEventID)},
		{"kind", u8str(vectorKind)},
		{"event_time", i64(vectorEventTimeNanos)},
		{"admitted_time", i64(vectorAdmittedTimeNanos)},
		{"payload_digest", mustHex(t, vectorDigestHex)},
		{"payload_size", u32(uint32(len(mustHex(t, vectorPayloadHex))))},
		{"signature_type", []byte{0x00}},
	}
}

func (r rawLeaf) bytes() []byte {
	var b []byte
	for _, p := range r {
		b = append(b, p.b...)
	}
	return b
}

// offset returns the byte offset of the named field.
func (r rawLeaf) offset(name string) int {
	off := 0
	for _, p := range r {
		if p.name == name {
			return off
		}
		off += len(p.b)
	}
	return off // "trailing data": the end
}

// with returns a copy of r with the named field replaced.
func (r rawLeaf) with(name string, b []byte) rawLeaf {
	out := append(rawLeaf(nil), r...)
	for i := range out {
		if out[i].name == name {
			out[i].b = b
			return out
		}
	}
	panic("no field " + name)
}

// truncated returns the encoding of r cut n bytes into the named field.
func (r rawLeaf) truncated(name string, n int) []byte {
	return r.bytes()[:r.offset(name)+n]
}

func vectorLeaf(t testing.TB) *Leaf {
	var d [32]byte
	copy(d[:], mustHex(t, vectorDigestHex))
	return &Leaf{
		Source:        vectorSource,
		SourceSeq:     vectorSeq,
		EventID:       vectorEventID,
		Kind:          vectorKind,
		EventTime:     vectorEventTime(),
		AdmittedTime:  vectorAdmittedTime(),
		PayloadDigest: d,
		PayloadSize:   uint32(len(mustHex(t, vectorPayloadHex))),
	}
}

func TestVector(t *testing.T) {
	// Times.
	if got := vectorEventTime().UnixNano(); got != vectorEventTimeNanos {
		t.Fatalf("event time nanos = %d, want %d", got, vectorEventTimeNanos)
	}
	if got := vectorAdmittedTime().UnixNano(); got != vectorAdmittedTimeNanos {
		t.Fatalf("admitted time nanos = %d, want %d", got, vectorAdmittedTimeNanos)
	}

	// Payload, two ways.
	wantPayload := mustHex(t, vectorPayloadHex)
	pb, err := (&payload.Payload{Format: vectorFormat, Record: []byte(vectorRecord)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pb, wantPayload) {
		t.Errorf("payload Marshal = %x\nwant %x", pb, wantPayload)
	}
	var ind []byte
	ind = append(ind, 0x01)
	ind = append(ind, u8str(vectorFormat)...)
	ind = append(ind, u32(uint32(len(vectorRecord)))...)
	ind = append(ind, vectorRecord...)
	ind = append(ind, u32(0)...)
	if !bytes.Equal(ind, wantPayload) {
		t.Errorf("independent payload = %x\nwant %x", ind, wantPayload)
	}

	// Digest, two ways.
	wantDigest := mustHex(t, vectorDigestHex)
	d, err := Digest(vectorSalt(), wantPayload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d[:], wantDigest) {
		t.Errorf("Digest = %x, want %x", d, wantDigest)
	}
	h := sha256.Sum256(bytes.Join([][]byte{[]byte("stele/payload/v1\x00"), seq(0, 32), wantPayload}, nil))
	if !bytes.Equal(h[:], wantDigest) {
		t.Errorf("independent digest = %x, want %x", h, wantDigest)
	}

	// Leaf, two ways.
	wantLeaf := mustHex(t, vectorLeafHex)
	l := vectorLeaf(t)
	lb, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lb, wantLeaf) {
		t.Errorf("leaf Marshal = %x\nwant %x", lb, wantLeaf)
	}
	if raw := vectorRaw(t).bytes(); !bytes.Equal(raw, wantLeaf) {
		t.Errorf("independent leaf = %x\nwant %x", raw, wantLeaf)
	}

	// Leaf hash.
	lh := sha256.Sum256(append([]byte{0x00}, wantLeaf...))
	if got := hex.EncodeToString(lh[:]); got != vectorLeafHashHex {
		t.Errorf("leaf hash = %s, want %s", got, vectorLeafHashHex)
	}

	// Decoding.
	dec, err := Unmarshal(wantLeaf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, l) {
		t.Errorf("Unmarshal = %+v\nwant %+v", dec, l)
	}
	if err := dec.VerifyPayload(vectorSalt(), wantPayload); err != nil {
		t.Errorf("VerifyPayload: %v", err)
	}
	if err := dec.VerifySignature(vectorFormat, []byte(vectorRecord)); err == nil {
		t.Error("VerifySignature succeeded on an unsigned leaf")
	}
}

func TestSignedVector(t *testing.T) {
	// Producer message, two ways.
	wantMsg := mustHex(t, vectorProducerMessageHex)
	msg := ProducerMessage(vectorSource, vectorSeq, vectorEventID, vectorKind, vectorEventTime(), vectorFormat, []byte(vectorRecord))
	if !bytes.Equal(msg, wantMsg) {
		t.Errorf("ProducerMessage = %x\nwant %x", msg, wantMsg)
	}
	rh := sha256.Sum256([]byte(vectorRecord))
	ind := bytes.Join([][]byte{
		[]byte("stele/producer-signature/v1\n"),
		u8str(vectorSource), u64(vectorSeq), u16str(vectorEventID), u8str(vectorKind),
		i64(vectorEventTimeNanos), u8str(vectorFormat), rh[:],
	}, nil)
	if !bytes.Equal(ind, wantMsg) {
		t.Errorf("independent producer message = %x\nwant %x", ind, wantMsg)
	}

	// Key and signature (Ed25519 is deterministic).
	priv := ed25519.NewKeyFromSeed(vectorSeed())
	pub := priv.Public().(ed25519.PublicKey)
	if got := hex.EncodeToString(pub); got != vectorPublicKeyHex {
		t.Errorf("public key = %s, want %s", got, vectorPublicKeyHex)
	}
	sig := ed25519.Sign(priv, wantMsg)
	if got := hex.EncodeToString(sig); got != vectorSignatureHex {
		t.Errorf("signature = %s, want %s", got, vectorSignatureHex)
	}

	// Signed leaf, two ways.
	wantLeaf := mustHex(t, vectorSignedLeafHex)
	l := vectorLeaf(t)
	l.Signature = &Signature{PublicKey: pub, Sig: sig}
	lb, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lb, wantLeaf) {
		t.Errorf("signed leaf Marshal = %x\nwant %x", lb, wantLeaf)
	}
	raw := vectorRaw(t).with("signature_type", bytes.Join([][]byte{{0x01}, pub, sig}, nil)).bytes()
	if !bytes.Equal(raw, wantLeaf) {
		t.Errorf("independent signed leaf = %x\nwant %x", raw, wantLeaf)
	}
	lh := sha256.Sum256(append([]byte{0x00}, wantLeaf...))
	if got := hex.EncodeToString(lh[:]); got != vectorSignedLeafHashHex {
		t.Errorf("signed leaf hash = %s, want %s", got, vectorSignedLeafHashHex)
	}

	dec, err := Unmarshal(wantLeaf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dec, l) {
		t.Errorf("Unmarshal = %+v\nwant %+v", dec, l)
	}
	if err := dec.VerifySignature(vectorFormat, []byte(vectorRecord)); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
}

func TestVerifySignature(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(vectorSeed())
	pub := priv.Public().(ed25519.PublicKey)
	signed := func() *Leaf {
		l := vectorLeaf(t)
		msg := ProducerMessage(l.Source, l.SourceSeq, l.EventID, l.Kind, l.EventTime, vectorFormat, []byte(vectorRecord))
		l.Signature = &Signature{PublicKey: pub, Sig: ed25519.Sign(priv, msg)}
		return l
	}
	if err := signed().VerifySignature(vectorFormat, []byte(vectorRecord)); err != nil {
		t.Fatalf("valid signature: %v", err)
	}
	otherPub := ed25519.NewKeyFromSeed(seq(0x40, 32)).Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name   string
		mod    func(*Leaf)
		format string
		record string
		want   string
	}{
		{"no signature", func(l *Leaf) { l.Signature = nil }, vectorFormat, vectorRecord, "no producer signature"},
		{"short key", func(l *Leaf) { l.Signature.PublicKey = l.Signature.PublicKey[:31] }, vectorFormat, vectorRecord, "signature_public_key"},
		{"short sig", func(l *Leaf) { l.Signature.Sig = l.Signature.Sig[:63] }, vectorFormat, vectorRecord, "signature: length"},
		{"other key", func(l *Leaf) { l.Signature.PublicKey = otherPub }, vectorFormat, vectorRecord, "does not verify"},
		{"flipped sig", func(l *Leaf) { l.Signature.Sig[0] ^= 1 }, vectorFormat, vectorRecord, "does not verify"},
		{"source", func(l *Leaf) { l.Source += "x" }, vectorFormat, vectorRecord, "does not verify"},
		{"source_seq", func(l *Leaf) { l.SourceSeq++ }, vectorFormat, vectorRecord, "does not verify"},
		{"event_id", func(l *Leaf) { l.EventID += "x" }, vectorFormat, vectorRecord, "does not verify"},
		{"kind", func(l *Leaf) { l.Kind += "x" }, vectorFormat, vectorRecord, "does not verify"},
		{"event_time", func(l *Leaf) { l.EventTime = l.EventTime.Add(1) }, vectorFormat, vectorRecord, "does not verify"},
		{"format", func(*Leaf) {}, vectorFormat + "x", vectorRecord, "does not verify"},
		{"record", func(*Leaf) {}, vectorFormat, vectorRecord + " ", "does not verify"},
		{"invalid format", func(*Leaf) {}, "bad format", vectorRecord, "no producer message"},
		{"empty record", func(*Leaf) {}, vectorFormat, "", "no producer message"},
		{"invalid source", func(l *Leaf) { l.Source = "/x" }, vectorFormat, vectorRecord, "no producer message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := signed()
			tc.mod(l)
			err := l.VerifySignature(tc.format, []byte(tc.record))
			if err == nil {
				t.Fatal("VerifySignature succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// admitted_time, payload digest and size are not covered by the
	// producer signature: the server sets them.
	l := signed()
	l.AdmittedTime = l.AdmittedTime.Add(time.Hour)
	l.PayloadDigest[0] ^= 1
	l.PayloadSize++
	if err := l.VerifySignature(vectorFormat, []byte(vectorRecord)); err != nil {
		t.Errorf("server-set fields changed: %v", err)
	}
}

func TestProducerMessageInvalid(t *testing.T) {
	et := vectorEventTime()
	rec := []byte("r")
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"source", ProducerMessage("a//b", 0, "id", "k", et, "f", rec)},
		{"long source", ProducerMessage(strings.Repeat("a", 256), 0, "id", "k", et, "f", rec)},
		{"event_id", ProducerMessage("s", 0, "", "k", et, "f", rec)},
		{"long event_id", ProducerMessage("s", 0, strings.Repeat("a", 1025), "k", et, "f", rec)},
		{"kind", ProducerMessage("s", 0, "id", "K", et, "f", rec)},
		{"event_time", ProducerMessage("s", 0, "id", "k", time.Unix(0, -1), "f", rec)},
		{"zero event_time", ProducerMessage("s", 0, "id", "k", time.Time{}, "f", rec)},
		{"format", ProducerMessage("s", 0, "id", "k", et, "", rec)},
		{"record", ProducerMessage("s", 0, "id", "k", et, "f", nil)},
	} {
		if tc.msg != nil {
			t.Errorf("%s: ProducerMessage = %x, want nil", tc.name, tc.msg)
		}
	}
	if ProducerMessage("s", 0, "id", "k", time.Unix(0, 0), "f", rec) == nil {
		t.Error("ProducerMessage of minimal valid arguments is nil")
	}
}

func TestDigestAndSalt(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := Digest(make([]byte, n), []byte("p")); err == nil || !strings.Contains(err.Error(), "salt") {
			t.Errorf("Digest with %d-byte salt: err = %v", n, err)
		}
	}
	d1, _ := Digest(make([]byte, SaltSize), nil)
	d2, _ := Digest(make([]byte, SaltSize), []byte{})
	if d1 != d2 {
		t.Error("nil and empty payload digests differ")
	}
	s1, err := NewSalt()
	if err != nil || len(s1) != SaltSize {
		t.Fatalf("NewSalt = %x, %v", s1, err)
	}
	s2, _ := NewSalt()
	if bytes.Equal(s1, s2) {
		t.Error("two NewSalt calls returned the same salt")
	}
}

func TestVerifyPayload(t *testing.T) {
	p := mustHex(t, vectorPayloadHex)
	l := vectorLeaf(t)
	if err := l.VerifyPayload(vectorSalt(), p); err != nil {
		t.Fatal(err)
	}
	otherSalt := vectorSalt()
	otherSalt[31] ^= 1
	flipped := append([]byte(nil), p...)
	flipped[len(flipped)-5] ^= 1
	for _, tc := range []struct {
		name    string
		salt, p []byte
		want    string
	}{
		{"short salt", vectorSalt()[:31], p, "salt"},
		{"other salt", otherSalt, p, "payload_digest mismatch"},
		{"flipped byte", vectorSalt(), flipped, "payload_digest mismatch"},
		{"truncated", vectorSalt(), p[:len(p)-1], "payload_size mismatch"},
		{"extended", vectorSalt(), append(append([]byte(nil), p...), 0), "payload_size mismatch"},
		{"empty", vectorSalt(), nil, "payload_size mismatch"},
	} {
		err := l.VerifyPayload(tc.salt, tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: VerifyPayload = %v, want error mentioning %q", tc.name, err, tc.want)
		}
	}
}

var validLeaves = []struct {
	name string
	l    Leaf
}{
	{"minimal", Leaf{Source: "s", EventID: "i", Kind: "k", EventTime: time.Unix(0, 0), AdmittedTime: time.Unix(0, 0)}},
	{"max lengths", Leaf{
		Source:       strings.Repeat("a", 255),
		EventID:      strings.Repeat("é", 512),
		Kind:         "k" + strings.Repeat(".k", 63) + "z",
		EventTime:    time.Unix(0, math.MaxInt64),
		AdmittedTime: time.Unix(0, math.MaxInt64),
		SourceSeq:    math.MaxUint64,
		PayloadSize:  math.MaxUint32,
	}},
	{"signed", Leaf{
		Source: "okta/example.com/system-log", EventID: "evt 1 ✓", Kind: "user.session.start",
		EventTime: time.Unix(1, 1), AdmittedTime: time.Unix(2, 2),
		PayloadDigest: [32]byte{1, 2, 3}, PayloadSize: 1,
		Signature: &Signature{PublicKey: make(ed25519.PublicKey, 32), Sig: make([]byte, 64)},
	}},
	{"source charset", Leaf{Source: "A-Z_a.z:0@9/x", EventID: "\u00a0\ufffd", Kind: "a0-_.b", EventTime: time.Unix(5, 0), AdmittedTime: time.Unix(5, 0)}},
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range validLeaves {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.l.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.l
			want.EventTime = want.EventTime.UTC()
			want.AdmittedTime = want.AdmittedTime.UTC()
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip = %+v\nwant %+v", *got, want)
			}
			if got.EventTime.Location() != time.UTC || got.AdmittedTime.Location() != time.UTC {
				t.Error("Unmarshal returned non-UTC times")
			}
			b2, err := got.Marshal()
			if err != nil || !bytes.Equal(b, b2) {
				t.Errorf("re-Marshal = %x, %v; want %x", b2, err, b)
			}
		})
	}
}

func TestMarshalTimes(t *testing.T) {
	// Nanosecond precision is kept, and the zone does not matter.
	tz := time.FixedZone("x", 5*3600+30*60)
	et := time.Date(2026, 1, 2, 8, 34, 5, 123456789, tz)
	l := vectorLeaf(t)
	l.EventTime = et
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, mustHex(t, vectorLeafHex)) {
		t.Errorf("zoned event time encoded differently: %x", b)
	}
	// Monotonic clock readings are ignored.
	now := time.Now()
	l.AdmittedTime = now
	b, err = l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := Unmarshal(b)
	if !got.AdmittedTime.Equal(now) || got.AdmittedTime.Nanosecond() != now.Nanosecond() {
		t.Errorf("admitted time %v, want %v", got.AdmittedTime, now)
	}
}

func TestMarshalReject(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Leaf)
		field string
	}{
		{"empty source", func(l *Leaf) { l.Source = "" }, "source"},
		{"bad source", func(l *Leaf) { l.Source = "a/../b" }, "source"},
		{"long source", func(l *Leaf) { l.Source = strings.Repeat("a", 256) }, "source"},
		{"empty event_id", func(l *Leaf) { l.EventID = "" }, "event_id"},
		{"long event_id", func(l *Leaf) { l.EventID = strings.Repeat("a", 1025) }, "event_id"},
		{"control event_id", func(l *Leaf) { l.EventID = "a\tb" }, "event_id"},
		{"empty kind", func(l *Leaf) { l.Kind = "" }, "kind"},
		{"bad kind", func(l *Leaf) { l.Kind = "Directory" }, "kind"},
		{"zero event_time", func(l *Leaf) { l.EventTime = time.Time{} }, "event_time"},
		{"pre-1970 event_time", func(l *Leaf) { l.EventTime = time.Unix(0, -1) }, "event_time"},
		{"post-2262 event_time", func(l *Leaf) { l.EventTime = time.Unix(0, math.MaxInt64).Add(1) }, "event_time"},
		{"zero admitted_time", func(l *Leaf) { l.AdmittedTime = time.Time{} }, "admitted_time"},
		{"pre-1970 admitted_time", func(l *Leaf) { l.AdmittedTime = time.Unix(-1, 0) }, "admitted_time"},
		{"post-2262 admitted_time", func(l *Leaf) { l.AdmittedTime = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }, "admitted_time"},
		{"nil public key", func(l *Leaf) { l.Signature = &Signature{Sig: make([]byte, 64)} }, "signature_public_key"},
		{"short public key", func(l *Leaf) { l.Signature = &Signature{PublicKey: make([]byte, 31), Sig: make([]byte, 64)} }, "signature_public_key"},
		{"nil sig", func(l *Leaf) { l.Signature = &Signature{PublicKey: make([]byte, 32)} }, "signature"},
		{"long sig", func(l *Leaf) { l.Signature = &Signature{PublicKey: make([]byte, 32), Sig: make([]byte, 65)} }, "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := vectorLeaf(t)
			tc.mod(l)
			b, err := l.Marshal()
			if err == nil {
				t.Fatalf("Marshal = %x, want error", b)
			}
			if !strings.HasPrefix(err.Error(), "leaf: "+tc.field+":") {
				t.Errorf("error %q does not name field %q", err, tc.field)
			}
		})
	}
}

type leafRejectCase struct {
	name  string
	in    []byte
	field string
	off   int
	msg   string // optional further text expected in the error
}

func leafRejectCases(t testing.TB) []leafRejectCase {
	r := vectorRaw(t)
	off := r.offset
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sigSection := cat([]byte{0x01}, make([]byte, 32), make([]byte, 64))
	signed := r.with("signature_type", sigSection)
	end := len(r.bytes())
	cases := []leafRejectCase{
		{"empty", nil, "version", 0, "truncated"},
		{"version 0", r.with("version", []byte{0}).bytes(), "version", 0, "0x00"},
		{"version 2", r.with("version", []byte{2}).bytes(), "version", 0, "0x02"},
		{"version ff", r.with("version", []byte{0xff}).bytes(), "version", 0, "0xff"},

		{"source missing", r.truncated("source", 0), "source", 1, "truncated"},
		{"source length 0", r.with("source", []byte{0}).bytes(), "source", 1, "length 0"},
		{"source truncated", r.truncated("source", 10), "source", 1, "truncated"},
		{"source leading slash", r.with("source", u8str("/a")).bytes(), "source", 1, "empty segment"},
		{"source trailing slash", r.with("source", u8str("a/")).bytes(), "source", 1, "empty segment"},
		{"source double slash", r.with("source", u8str("a//b")).bytes(), "source", 1, "empty segment"},
		{"source dot", r.with("source", u8str("a/./b")).bytes(), "source", 1, `"."`},
		{"source dotdot", r.with("source", u8str("..")).bytes(), "source", 1, `".."`},
		{"source space", r.with("source", u8str("a b")).bytes(), "source", 1, "invalid character"},
		{"source nul", r.with("source", u8str("a\x00")).bytes(), "source", 1, "invalid character"},
		{"source utf8", r.with("source", u8str("é")).bytes(), "source", 1, "invalid character"},
		{"source backslash", r.with("source", u8str(`a\b`)).bytes(), "source", 1, "invalid character"},

		{"source_seq truncated", r.truncated("source_seq", 7), "source_seq", off("source_seq"), "truncated"},

		{"event_id missing", r.truncated("event_id", 0), "event_id", off("event_id"), "truncated"},
		{"event_id length truncated", r.truncated("event_id", 1), "event_id", off("event_id"), "truncated"},
		{"event_id length 0", r.with("event_id", []byte{0, 0}).bytes(), "event_id", off("event_id"), "length 0"},
		{"event_id length 1025", r.with("event_id", u16str(strings.Repeat("a", 1025))).bytes(), "event_id", off("event_id"), "length 1025"},
		{"event_id length 65535", r.with("event_id", []byte{0xff, 0xff}).bytes(), "event_id", off("event_id"), "length 65535"},
		{"event_id truncated", r.truncated("event_id", 5), "event_id", off("event_id"), "truncated"},
		{"event_id bad utf8", r.with("event_id", u16str("a\xffb")).bytes(), "event_id", off("event_id"), "UTF-8"},
		{"event_id surrogate", r.with("event_id", u16str("\xed\xa0\x80")).bytes(), "event_id", off("event_id"), "UTF-8"},
		{"event_id overlong", r.with("event_id", u16str("\xc0\xaf")).bytes(), "event_id", off("event_id"), "UTF-8"},
		{"event_id NUL", r.with("event_id", u16str("a\x00")).bytes(), "event_id", off("event_id"), "control"},
		{"event_id newline", r.with("event_id", u16str("a\n")).bytes(), "event_id", off("event_id"), "control"},
		{"event_id DEL", r.with("event_id", u16str("a\x7f")).bytes(), "event_id", off("event_id"), "control"},
		{"event_id C1", r.with("event_id", u16str("a\u0085")).bytes(), "event_id", off("event_id"), "control"},
		{"event_id U+009F", r.with("event_id", u16str("\u009f")).bytes(), "event_id", off("event_id"), "control"},

		{"kind missing", r.truncated("kind", 0), "kind", off("kind"), "truncated"},
		{"kind length 0", r.with("kind", []byte{0}).bytes(), "kind", off("kind"), "length 0"},
		{"kind length 129", r.with("kind", u8str(strings.Repeat("a", 129))).bytes(), "kind", off("kind"), "length 129"},
		{"kind truncated", r.truncated("kind", 3), "kind", off("kind"), "truncated"},
		{"kind upper", r.with("kind", u8str("Directory")).bytes(), "kind", off("kind"), ""},
		{"kind digit first", r.with("kind", u8str("1a")).bytes(), "kind", off("kind"), "letter"},
		{"kind dot first", r.with("kind", u8str(".a")).bytes(), "kind", off("kind"), "letter"},
		{"kind trailing dot", r.with("kind", u8str("a.")).bytes(), "kind", off("kind"), "empty segment"},
		{"kind double dot", r.with("kind", u8str("a..b")).bytes(), "kind", off("kind"), "empty segment"},
		{"kind slash", r.with("kind", u8str("a/b")).bytes(), "kind", off("kind"), "invalid character"},
		{"kind space", r.with("kind", u8str("a b")).bytes(), "kind", off("kind"), "invalid character"},

		{"event_time truncated", r.truncated("event_time", 4), "event_time", off("event_time"), "truncated"},
		{"event_time negative", r.with("event_time", i64(-1)).bytes(), "event_time", off("event_time"), "negative"},
		{"event_time min", r.with("event_time", i64(math.MinInt64)).bytes(), "event_time", off("event_time"), "negative"},
		{"admitted_time truncated", r.truncated("admitted_time", 0), "admitted_time", off("admitted_time"), "truncated"},
		{"admitted_time negative", r.with("admitted_time", i64(-1_000_000_000)).bytes(), "admitted_time", off("admitted_time"), "negative"},

		{"payload_digest truncated", r.truncated("payload_digest", 31), "payload_digest", off("payload_digest"), "truncated"},
		{"payload_size truncated", r.truncated("payload_size", 3), "payload_size", off("payload_size"), "truncated"},

		{"signature_type missing", r.truncated("signature_type", 0), "signature_type", off("signature_type"), "truncated"},
		{"signature_type 2", r.with("signature_type", []byte{0x02}).bytes(), "signature_type", off("signature_type"), "unknown producer signature type 0x02"},
		{"signature_type ff", r.with("signature_type", []byte{0xff}).bytes(), "signature_type", off("signature_type"), "unknown producer signature type 0xff"},
		{"signature public key missing", r.with("signature_type", []byte{0x01}).bytes(), "signature_public_key", off("signature_type") + 1, "truncated"},
		{"signature public key truncated", signed.bytes()[:off("signature_type")+1+31], "signature_public_key", off("signature_type") + 1, "truncated"},
		{"signature missing", signed.bytes()[:off("signature_type")+1+32], "signature", off("signature_type") + 33, "truncated"},
		{"signature truncated", signed.bytes()[:off("signature_type")+1+32+63], "signature", off("signature_type") + 33, "truncated"},

		{"trailing byte", cat(r.bytes(), []byte{0}), "trailing data", end, "1 unexpected"},
		{"trailing signature", cat(r.bytes(), sigSection[1:]), "trailing data", end, "96 unexpected"},
		{"trailing after signature", cat(signed.bytes(), []byte{0}), "trailing data", end + 96, "1 unexpected"},
		{"two leaves", cat(r.bytes(), r.bytes()), "trailing data", end, ""},
	}
	return cases
}

func TestUnmarshalReject(t *testing.T) {
	for _, tc := range leafRejectCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Unmarshal(tc.in)
			if err == nil {
				t.Fatalf("Unmarshal(%x) = %+v, want error", tc.in, l)
			}
			if l != nil {
				t.Errorf("Unmarshal returned a leaf with the error")
			}
			t.Log(err)
			want := fmt.Sprintf("leaf: %s at offset %d:", tc.field, tc.off)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// TestUnmarshalEveryTruncation checks that every proper prefix of the
// vectors is rejected.
func TestUnmarshalEveryTruncation(t *testing.T) {
	for _, h := range []string{vectorLeafHex, vectorSignedLeafHex} {
		b := mustHex(t, h)
		for n := 0; n < len(b); n++ {
			if _, err := Unmarshal(b[:n]); err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("Unmarshal of %d-byte prefix: %v", n, err)
			}
		}
	}
}

func TestValidateSource(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{vectorSource, true},
		{"entra/4f1c2d3e-aaaa-bbbb-cccc-1234567890ab/audit", true},
		{"a", true},
		{"A-Z_a.z:0@9", true},
		{"okta/example.com/system-log", true},
		{"a/.../b", true},
		{".a/a./..a", true},
		{"user@example.com:443/x", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a/", 127) + "a", true},
		{"", false},
		{strings.Repeat("a", 256), false},
		{"/", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"a/.", false},
		{"./a", false},
		{"a/../b", false},
		{"a b", false},
		{"a\x00", false},
		{"a\\b", false},
		{"a+b", false},
		{"a%2fb", false},
		{"a?b", false},
		{"a#b", false},
		{"é", false},
		{"a\nb", false},
	} {
		err := ValidateSource(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateSource(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "leaf: source:") {
			t.Errorf("ValidateSource(%q) error %q does not name the field", tc.in, err)
		}
	}
}

func TestValidateKind(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{vectorKind, true},
		{"a", true},
		{"a0-_.b9", true},
		{"a.0", true},
		{"a.-", true},
		{"a" + strings.Repeat("b", 127), true},
		{"", false},
		{"a" + strings.Repeat("b", 128), false},
		{"A", false},
		{"aB", false},
		{"0a", false},
		{"-a", false},
		{"_a", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{"a/b", false},
		{"a:b", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
	} {
		err := ValidateKind(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKind(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "leaf: kind:") {
			t.Errorf("ValidateKind(%q) error %q does not name the field", tc.in, err)
		}
	}
}

func TestValidateEventID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{vectorEventID, true},
		{"a", true},
		{" ", true},
		{"with space/and:punct!\"'{}", true},
		{"é✓😀", true},
		{"\u00a0", true},
		{"\ufffd", true},
		{"~", true},
		{strings.Repeat("a", 1024), true},
		{strings.Repeat("é", 512), true},
		{"", false},
		{strings.Repeat("a", 1025), false},
		{strings.Repeat("é", 512) + "a", false},
		{"\x00", false},
		{"a\tb", false},
		{"a\r\n", false},
		{"\x1f", false},
		{"\x7f", false},
		{"\u0080", false},
		{"\u009f", false},
		{"\xff", false},
		{"\xc3", false},
		{"\xed\xa0\x80", false},
		{"\xc0\x80", false},
		{"\xf4\x90\x80\x80", false},
	} {
		err := ValidateEventID(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateEventID(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "leaf: event_id:") {
			t.Errorf("ValidateEventID(%q) error %q does not name the field", tc.in, err)
		}
	}
}

func FuzzLeafUnmarshal(f *testing.F) {
	f.Add(mustHex(f, vectorLeafHex))
	f.Add(mustHex(f, vectorSignedLeafHex))
	for _, tc := range validLeaves {
		b, err := tc.l.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range leafRejectCases(f) {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := Unmarshal(in)
		// UnmarshalBinary into a used Leaf decodes the same, or leaves it zero.
		into := Leaf{Source: "stale", SourceSeq: 7, Signature: &Signature{}}
		switch err2 := into.UnmarshalBinary(in); {
		case (err2 == nil) != (err == nil):
			t.Fatalf("Unmarshal: %v, UnmarshalBinary: %v", err, err2)
		case err == nil && !reflect.DeepEqual(&into, l):
			t.Fatalf("UnmarshalBinary decoded %+v, Unmarshal %+v", into, l)
		case err != nil && !reflect.DeepEqual(into, Leaf{}):
			t.Fatalf("UnmarshalBinary left %+v after %v", into, err2)
		}
		if err != nil {
			if l != nil {
				t.Fatalf("Unmarshal returned both %+v and %v", l, err)
			}
			if !strings.HasPrefix(err.Error(), "leaf: ") || !strings.Contains(err.Error(), " at offset ") {
				t.Fatalf("error %q lacks field and offset", err)
			}
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("Unmarshal(%x) succeeded but Marshal failed: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", in, out)
		}
	})
}

// sourceRef is an independent statement of the source rules.
var sourceSegment = regexp.MustCompile(`^[A-Za-z0-9._:@-]+$`)

func sourceRef(s string) bool {
	if len(s) < 1 || len(s) > 255 {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "." || seg == ".." || !sourceSegment.MatchString(seg) {
			return false
		}
	}
	return true
}

func FuzzValidateSource(f *testing.F) {
	for _, s := range []string{vectorSource, "a", "a/b", "/a", "a/", "a//b", ".", "..", "a/./b", "a/.../b", "a b", "é", strings.Repeat("a", 255), strings.Repeat("a", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateSource(s)
		if ok := sourceRef(s); ok != (err == nil) {
			t.Fatalf("ValidateSource(%q) = %v, reference says ok=%v", s, err, ok)
		}
		if err != nil {
			return
		}
		l := Leaf{Source: s, EventID: "e", Kind: "k", EventTime: time.Unix(0, 0), AdmittedTime: time.Unix(0, 0)}
		b, err := l.Marshal()
		if err != nil {
			t.Fatalf("Marshal with source %q: %v", s, err)
		}
		got, err := Unmarshal(b)
		if err != nil || got.Source != s {
			t.Fatalf("round trip of source %q: %+v, %v", s, got, err)
		}
	})
}
