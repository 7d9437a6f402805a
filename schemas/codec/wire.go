package codec

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Fields walks the fields of one protobuf message in wire format, for the
// hand-written decoders of the hot paths ([UnmarshalVitalsBatch], and the
// ClickHouse sink's fast path, which maps records to columns without
// building messages). Malformed input, or a field read with an unexpected
// wire type, turns OK false and ends Next: the caller then leaves the
// record to proto.Unmarshal, which decides and reports.
type Fields struct {
	b  []byte
	ok bool
}

// NewFields returns a walker over the message b.
func NewFields(b []byte) Fields { return Fields{b: b, ok: true} }

// OK reports whether everything read so far was well-formed.
func (f *Fields) OK() bool { return f.ok }

// Fail marks the message as one for proto.Unmarshal.
func (f *Fields) Fail() { f.ok = false }

// Next returns the next field's number and wire type; false at the end or
// on malformed input (see OK).
func (f *Fields) Next() (protowire.Number, protowire.Type, bool) {
	if len(f.b) == 0 || !f.ok {
		return 0, 0, false
	}
	if c := f.b[0]; c < 0x80 && c >= 8 { // one-byte tag, field number >= 1
		f.b = f.b[1:]
		return protowire.Number(c >> 3), protowire.Type(c & 7), true
	}
	num, typ, n := protowire.ConsumeTag(f.b)
	if n < 0 || num > protowire.MaxValidNumber {
		f.ok = false
		return 0, 0, false
	}
	f.b = f.b[n:]
	return num, typ, true
}

// Bytes reads a length-delimited field (a sub-slice of the message).
func (f *Fields) Bytes(typ protowire.Type) []byte {
	if typ != protowire.BytesType {
		f.ok = false
		return nil
	}
	if len(f.b) > 0 && f.b[0] < 0x80 && int(f.b[0]) < len(f.b) { // one-byte length
		l := int(f.b[0])
		v := f.b[1 : 1+l : 1+l]
		f.b = f.b[1+l:]
		return v
	}
	v, n := protowire.ConsumeBytes(f.b)
	if n < 0 {
		f.ok = false
		return nil
	}
	f.b = f.b[n:]
	return v
}

// Str reads a string field's bytes (proto3 strings must be UTF-8).
func (f *Fields) Str(typ protowire.Type) []byte {
	v := f.Bytes(typ)
	if f.ok && !utf8.Valid(v) {
		f.ok = false
	}
	return v
}

// Varint reads a varint field.
func (f *Fields) Varint(typ protowire.Type) uint64 {
	if typ != protowire.VarintType {
		f.ok = false
		return 0
	}
	v, n := protowire.ConsumeVarint(f.b)
	if n < 0 {
		f.ok = false
		return 0
	}
	f.b = f.b[n:]
	return v
}

// Double reads a double field.
func (f *Fields) Double(typ protowire.Type) float64 {
	if typ != protowire.Fixed64Type {
		f.ok = false
		return 0
	}
	v, n := protowire.ConsumeFixed64(f.b)
	if n < 0 {
		f.ok = false
		return 0
	}
	f.b = f.b[n:]
	return math.Float64frombits(v)
}

// Skip steps over a field the decoder does not use. Groups (deprecated,
// never written by wardstream) are left to proto.
func (f *Fields) Skip(num protowire.Number, typ protowire.Type) {
	if typ == protowire.StartGroupType || typ == protowire.EndGroupType {
		f.ok = false
		return
	}
	n := protowire.ConsumeFieldValue(num, typ, f.b)
	if n < 0 {
		f.ok = false
		return
	}
	f.b = f.b[n:]
}
