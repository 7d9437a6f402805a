package codec

import (
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// UnmarshalVitalsBatch decodes a VitalsBatch exactly as proto.Unmarshal
// does, faster for the shape the MQTT connector writes.
//
// Vitals batches are most of the processors' input, and decoding them was
// a quarter of that role's CPU: a message, a Meta and seven or eight
// strings per reading. Here the readings and their Metas are allocated in
// one slab each, and a string that repeats the previous reading's value
// for that field (device, patient, ward, kind, tenant, source, the present
// list: the same within a batch) is shared instead of allocated again. A
// shared present list has its capacity capped at its length, so appending
// to one reading's list never writes into another's.
//
// Any input it does not decode exactly as proto.Unmarshal would (unknown
// fields, which proto keeps; a map entry; a field with an unexpected wire
// type; invalid UTF-8; malformed bytes) is decoded by proto.Unmarshal
// instead, and errors come from there. FuzzUnmarshalVitalsBatch holds the
// two to proto.Equal results.
func UnmarshalVitalsBatch(data []byte, b *pb.VitalsBatch) error {
	proto.Reset(b)
	if fastVitalsBatch(data, b) {
		return nil
	}
	proto.Reset(b)
	if err := proto.Unmarshal(data, b); err != nil {
		return fmt.Errorf("decoding %T (%d bytes): %w", b, len(data), err)
	}
	return nil
}

// UnmarshalVitals decodes one VitalsTelemetry exactly as proto.Unmarshal
// does, with the fast path of [UnmarshalVitalsBatch] (one allocation for
// the message's strings that are not shared, none for the Meta struct
// beyond v's own).
func UnmarshalVitals(data []byte, v *pb.VitalsTelemetry) error {
	proto.Reset(v)
	var d vitalsDec
	m := &pb.Meta{}
	if d.reading(data, v, m) {
		return nil
	}
	proto.Reset(v)
	if err := proto.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %T (%d bytes): %w", v, len(data), err)
	}
	return nil
}

// fields walks one message's fields; ok turns false on anything the fast
// path leaves to proto.
type fields struct {
	b  []byte
	ok bool
}

func (f *fields) next() (protowire.Number, protowire.Type, bool) {
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

func (f *fields) bytes(typ protowire.Type) []byte {
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

// str reads a string field's bytes (proto3 strings must be UTF-8).
func (f *fields) str(typ protowire.Type) []byte {
	v := f.bytes(typ)
	if f.ok && !utf8.Valid(v) {
		f.ok = false
	}
	return v
}

func (f *fields) varint(typ protowire.Type) uint64 {
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

func (f *fields) double(typ protowire.Type) float64 {
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

// interner hands out a field's previous string when the bytes repeat it
// (then they were validated already).
type interner struct{ last [16]string }

func (in *interner) str(f *fields, slot int, typ protowire.Type) string {
	b := f.bytes(typ)
	if string(b) == in.last[slot] { // compared without allocating
		return in.last[slot]
	}
	if !utf8.Valid(b) {
		f.ok = false
		return ""
	}
	s := string(b)
	in.last[slot] = s
	return s
}

// vitalsDec decodes the readings of one batch.
type vitalsDec struct {
	in      interner
	present []string // the previous reading's present list
}

func (d *vitalsDec) meta(b []byte, m *pb.Meta) bool {
	f := fields{b: b, ok: true}
	for {
		num, typ, more := f.next()
		if !more {
			break
		}
		switch num {
		case 1:
			m.Tenant = d.in.str(&f, 0, typ)
		case 2:
			m.EventId = string(f.str(typ))
		case 3:
			m.EventTimeMs = int64(f.varint(typ))
		case 4:
			m.IngestTimeMs = int64(f.varint(typ))
		case 5:
			m.Source = d.in.str(&f, 1, typ)
		default:
			return false // unknown field: proto keeps it
		}
	}
	return f.ok
}

func (d *vitalsDec) reading(b []byte, v *pb.VitalsTelemetry, m *pb.Meta) bool {
	f := fields{b: b, ok: true}
	var present [][]byte
	var scratch [8][]byte
	present = scratch[:0]
	for {
		num, typ, more := f.next()
		if !more {
			break
		}
		switch num {
		case 1:
			mb := f.bytes(typ)
			if !f.ok || !d.meta(mb, m) { // a repeated Meta merges: fields apply in order
				return false
			}
			v.Meta = m
		case 2:
			v.DeviceId = d.in.str(&f, 2, typ)
		case 3:
			v.DeviceType = d.in.str(&f, 3, typ)
		case 4:
			v.PatientId = d.in.str(&f, 4, typ)
		case 5:
			v.Kind = d.in.str(&f, 5, typ)
		case 6:
			v.HeartRate = f.double(typ)
		case 7:
			v.SystolicBp = f.double(typ)
		case 8:
			v.DiastolicBp = f.double(typ)
		case 9:
			v.Spo2 = f.double(typ)
		case 10:
			v.Temperature = f.double(typ)
		case 11:
			v.RespiratoryRate = f.double(typ)
		case 12:
			v.Glucose = f.double(typ)
		case 13:
			v.MedicationDose = f.double(typ)
		case 14:
			v.AdministrationRate = f.double(typ)
		case 15:
			v.BatteryLevel = f.double(typ)
		case 16:
			v.Severity = int32(f.varint(typ))
		case 17:
			v.AlertType = d.in.str(&f, 6, typ)
		case 18:
			v.Message = d.in.str(&f, 7, typ)
		case 19:
			v.Quality = d.in.str(&f, 8, typ)
		case 20:
			v.BatchId = d.in.str(&f, 9, typ)
		case 21:
			v.Ward = d.in.str(&f, 10, typ)
		case 22:
			present = append(present, f.bytes(typ)) // validated in list when new
		default:
			return false // extra (a map) or an unknown field
		}
	}
	if !f.ok {
		return false
	}
	if len(present) > 0 {
		if v.Present = d.list(present); v.Present == nil {
			return false // invalid UTF-8
		}
	}
	return true
}

// list returns the present list, the previous reading's when equal.
func (d *vitalsDec) list(bs [][]byte) []string {
	if len(bs) == len(d.present) {
		same := true
		for i, b := range bs {
			if string(b) != d.present[i] {
				same = false
				break
			}
		}
		if same {
			return d.present
		}
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		if !utf8.Valid(b) {
			return nil
		}
		out[i] = string(b)
	}
	d.present = out[:len(out):len(out)]
	return d.present
}

func fastVitalsBatch(data []byte, b *pb.VitalsBatch) bool {
	// First pass: count the readings, so they and their Metas take one
	// allocation each.
	n := 0
	f := fields{b: data, ok: true}
	for {
		num, typ, more := f.next()
		if !more {
			break
		}
		if num == 4 && typ == protowire.BytesType {
			n++
		}
		k := protowire.ConsumeFieldValue(num, typ, f.b)
		if k < 0 || typ == protowire.StartGroupType || typ == protowire.EndGroupType {
			return false
		}
		f.b = f.b[k:]
	}
	if !f.ok {
		return false
	}
	var d vitalsDec
	readings := make([]pb.VitalsTelemetry, n)
	metas := make([]pb.Meta, n)
	if n > 0 {
		b.Readings = make([]*pb.VitalsTelemetry, 0, n)
	}
	f = fields{b: data, ok: true}
	for {
		num, typ, more := f.next()
		if !more {
			break
		}
		switch num {
		case 1:
			mb := f.bytes(typ)
			if b.Meta == nil {
				b.Meta = &pb.Meta{}
			}
			if !f.ok || !d.meta(mb, b.Meta) {
				return false
			}
		case 2:
			b.DeviceId = d.in.str(&f, 2, typ)
		case 3:
			b.BatchId = d.in.str(&f, 9, typ)
		case 4:
			rb := f.bytes(typ)
			i := len(b.Readings)
			if !f.ok || i >= n || !d.reading(rb, &readings[i], &metas[i]) {
				return false
			}
			b.Readings = append(b.Readings, &readings[i])
		default:
			return false
		}
	}
	return f.ok
}
