package codec

import (
	"fmt"
	"hash/maphash"
	"sync"
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
//
// Its decoders are pooled, so the strings a reading repeats from the
// previous ones a goroutine decoded (tenant, source, kind, device type,
// quality, the present list, and through the interner's table device,
// patient and ward ids) are shared instead of allocated for every record.
func UnmarshalVitals(data []byte, v *pb.VitalsTelemetry) error {
	return UnmarshalVitalsMeta(data, v, &pb.Meta{})
}

// UnmarshalVitalsMeta is [UnmarshalVitals] with m (reset first) as v's
// Meta, for a caller that reuses both from record to record. Input that
// only proto.Unmarshal decodes gets a Meta of its own.
func UnmarshalVitalsMeta(data []byte, v *pb.VitalsTelemetry, m *pb.Meta) error {
	proto.Reset(v)
	proto.Reset(m)
	d := vitalsDecs.Get().(*vitalsDec)
	ok := d.reading(data, v, m)
	vitalsDecs.Put(d)
	if ok {
		return nil
	}
	proto.Reset(v)
	if err := proto.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %T (%d bytes): %w", v, len(data), err)
	}
	return nil
}

// vitalsDecs are UnmarshalVitals' decoders (their interners outlive a
// record).
var vitalsDecs = sync.Pool{New: func() any { return new(vitalsDec) }}

// interner hands out a field's previous string when the bytes repeat it
// (then they were validated already). Ids (device, patient, ward) vary
// from record to record but repeat over a stream, so they are also looked
// up in a small table by hash.
type interner struct {
	last [16]string
	seed maphash.Seed
	tab  *[internSize]string
}

const internSize = 1024

// hashed marks the slots looked up in the table.
var hashed = [16]bool{2: true, 4: true, 10: true}

func (in *interner) str(f *Fields, slot int, typ protowire.Type) string {
	b := f.Bytes(typ)
	if string(b) == in.last[slot] { // compared without allocating
		return in.last[slot]
	}
	var e *string
	if hashed[slot] && len(b) > 0 {
		if in.tab == nil {
			in.seed, in.tab = maphash.MakeSeed(), new([internSize]string)
		}
		e = &in.tab[maphash.Bytes(in.seed, b)%internSize]
		if string(b) == *e {
			in.last[slot] = *e
			return *e
		}
	}
	if !utf8.Valid(b) {
		f.Fail()
		return ""
	}
	s := string(b)
	in.last[slot] = s
	if e != nil {
		*e = s
	}
	return s
}

// vitalsDec decodes the readings of one batch.
type vitalsDec struct {
	in      interner
	present []string // the previous reading's present list
}

func (d *vitalsDec) meta(b []byte, m *pb.Meta) bool {
	f := NewFields(b)
	for {
		num, typ, more := f.Next()
		if !more {
			break
		}
		switch num {
		case 1:
			m.Tenant = d.in.str(&f, 0, typ)
		case 2:
			m.EventId = string(f.Str(typ))
		case 3:
			m.EventTimeMs = int64(f.Varint(typ))
		case 4:
			m.IngestTimeMs = int64(f.Varint(typ))
		case 5:
			m.Source = d.in.str(&f, 1, typ)
		default:
			return false // unknown field: proto keeps it
		}
	}
	return f.OK()
}

func (d *vitalsDec) reading(b []byte, v *pb.VitalsTelemetry, m *pb.Meta) bool {
	f := NewFields(b)
	var present [][]byte
	var scratch [8][]byte
	present = scratch[:0]
	for {
		num, typ, more := f.Next()
		if !more {
			break
		}
		switch num {
		case 1:
			mb := f.Bytes(typ)
			if !f.OK() || !d.meta(mb, m) { // a repeated Meta merges: fields apply in order
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
			v.HeartRate = f.Double(typ)
		case 7:
			v.SystolicBp = f.Double(typ)
		case 8:
			v.DiastolicBp = f.Double(typ)
		case 9:
			v.Spo2 = f.Double(typ)
		case 10:
			v.Temperature = f.Double(typ)
		case 11:
			v.RespiratoryRate = f.Double(typ)
		case 12:
			v.Glucose = f.Double(typ)
		case 13:
			v.MedicationDose = f.Double(typ)
		case 14:
			v.AdministrationRate = f.Double(typ)
		case 15:
			v.BatteryLevel = f.Double(typ)
		case 16:
			v.Severity = int32(f.Varint(typ))
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
			present = append(present, f.Bytes(typ)) // validated in list when new
		default:
			return false // extra (a map) or an unknown field
		}
	}
	if !f.OK() {
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
	f := NewFields(data)
	for {
		num, typ, more := f.Next()
		if !more {
			break
		}
		if num == 4 && typ == protowire.BytesType {
			n++
		}
		f.Skip(num, typ)
	}
	if !f.OK() {
		return false
	}
	var d vitalsDec
	readings := make([]pb.VitalsTelemetry, n)
	metas := make([]pb.Meta, n)
	if n > 0 {
		b.Readings = make([]*pb.VitalsTelemetry, 0, n)
	}
	f = NewFields(data)
	for {
		num, typ, more := f.Next()
		if !more {
			break
		}
		switch num {
		case 1:
			mb := f.Bytes(typ)
			if b.Meta == nil {
				b.Meta = &pb.Meta{}
			}
			if !f.OK() || !d.meta(mb, b.Meta) {
				return false
			}
		case 2:
			b.DeviceId = d.in.str(&f, 2, typ)
		case 3:
			b.BatchId = d.in.str(&f, 9, typ)
		case 4:
			rb := f.Bytes(typ)
			i := len(b.Readings)
			if !f.OK() || i >= n || !d.reading(rb, &readings[i], &metas[i]) {
				return false
			}
			b.Readings = append(b.Readings, &readings[i])
		default:
			return false
		}
	}
	return f.OK()
}
