package clickhouse

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wardstream/wardstream/schemas/codec"
)

// The fast path: vitals readings and anomaly scores are most of the rows
// (every reading gives one of each), so their records are read straight
// from the protobuf wire format into the columns, without building
// messages. String values are copied as bytes into the columns' buffers
// (strCol: no string is allocated); a string list equal to the previous
// row's (the present list: the same within a batch) is shared.
//
// It is an optimisation only: any input it does not handle exactly as
// proto.Unmarshal would (a map entry, a known field with another wire type,
// invalid UTF-8, malformed bytes, a missing event id) makes it step aside,
// and the record takes the general path (decode the message, map it), which
// also produces the error and the dead letter. FuzzFastPathMatchesProto
// holds the two paths to the same rows.

// fastMapper appends the rows of one record value to the table f is bound
// to. ok is false when the value needs the general path; then nothing was
// appended.
type fastMapper func(f *fastDec, raw []byte, rc *recCtx) (ok bool)

// fastDec holds the parse buffers, the table's columns by type and the
// previous row's string lists of a topic's fast path (one per route, so not
// shared between goroutines).
type fastDec struct {
	tb  *tableBuf
	vit []vitalsView
	sco []scoreView
	// the table's columns by index, each in the slice of its type (nil
	// elsewhere): rows are appended without the rowWriter's type checks
	cs  []*strCol
	cf  []*typed[float64]
	ct  []*msCol
	ci  []*typed[int32]
	css []*strsCol
}

func newFastDec(tb *tableBuf) *fastDec {
	n := len(tb.cols)
	f := &fastDec{tb: tb,
		cs: make([]*strCol, n), cf: make([]*typed[float64], n), ct: make([]*msCol, n),
		ci: make([]*typed[int32], n), css: make([]*strsCol, n)}
	for i, c := range tb.cols {
		switch c := c.(type) {
		case *strCol:
			f.cs[i] = c
		case *typed[float64]:
			f.cf[i] = c
		case *msCol:
			f.ct[i] = c
		case *typed[int32]:
			f.ci[i] = c
		case *strsCol:
			f.css[i] = c
		}
	}
	return f
}

// Appends to column i; a column of another type panics (checkFast runs
// every fast mapper once in New and turns that into an error).
func (f *fastDec) s(i int, v string)     { f.cs[i].add(v) }
func (f *fastDec) sb(i int, v []byte)    { f.cs[i].addBytes(v) }
func (f *fastDec) f64(i int, v float64)  { f.cf[i].v = append(f.cf[i].v, v) }
func (f *fastDec) t(i int, ms int64)     { f.ct[i].ms = append(f.ct[i].ms, ms) }
func (f *fastDec) i32(i int, v int32)    { f.ci[i].v = append(f.ci[i].v, v) }
func (f *fastDec) ssb(i int, v [][]byte) { f.css[i].addBytes(v) }

// metaView is a Meta as slices of the record value.
type metaView struct {
	tenant, eventID, source []byte
	eventMs, ingestMs       int64
}

// parseMeta merges the Meta in b into m (a repeated embedded message field
// merges, so fields apply in order).
func parseMeta(b []byte, m *metaView) bool {
	r := codec.NewFields(b)
	for {
		num, typ, more := r.Next()
		if !more {
			break
		}
		switch num {
		case 1:
			m.tenant = r.Str(typ)
		case 2:
			m.eventID = r.Str(typ)
		case 3:
			m.eventMs = int64(r.Varint(typ))
		case 4:
			m.ingestMs = int64(r.Varint(typ))
		case 5:
			m.source = r.Str(typ)
		default:
			r.Skip(num, typ)
		}
		if !r.OK() {
			return false
		}
	}
	return r.OK()
}

// writeMeta writes the meta columns (0-4) as rowWriter.meta does.
func (f *fastDec) writeMeta(m *metaView, rc *recCtx) {
	et, it := m.eventMs, m.ingestMs
	if et <= 0 {
		et = rc.recordMs
	}
	if it <= 0 {
		it = rc.recordMs
	}
	if len(m.tenant) > 0 {
		f.sb(0, m.tenant)
	} else {
		f.s(0, rc.defaultTenant)
	}
	f.sb(1, m.eventID)
	f.t(2, et)
	f.t(3, it)
	f.sb(4, m.source)
}

// vitalsView is a VitalsTelemetry as slices of the record value.
type vitalsView struct {
	meta    metaView
	strs    [9][]byte // device_id, device_type, patient_id, kind, alert_type, message, quality, batch_id, ward
	nums    [10]float64
	sev     int32
	present [][]byte
}

func parseVitals(b []byte, v *vitalsView) bool {
	present := v.present[:0]
	*v = vitalsView{present: present}
	r := codec.NewFields(b)
	for {
		num, typ, more := r.Next()
		if !more {
			break
		}
		switch {
		case num == 1:
			if mb := r.Bytes(typ); r.OK() && !parseMeta(mb, &v.meta) {
				return false
			}
		case num >= 6 && num <= 15:
			v.nums[num-6] = r.Double(typ)
		case num == 16:
			v.sev = int32(r.Varint(typ))
		case num == 22:
			v.present = append(v.present, r.Str(typ))
		case num == 23:
			return false // map entries: the general path
		case num >= 2 && num <= 5: // device_id, device_type, patient_id, kind
			v.strs[num-2] = r.Str(typ)
		case num >= 17 && num <= 21: // alert_type, message, quality, batch_id, ward
			v.strs[num-13] = r.Str(typ)
		default:
			r.Skip(num, typ)
		}
		if !r.OK() {
			return false
		}
	}
	return r.OK() && len(v.meta.eventID) > 0
}

func fastVitals(f *fastDec, raw []byte, rc *recCtx) bool {
	if len(f.vit) < 1 {
		f.vit = make([]vitalsView, 1)
	}
	v := &f.vit[0]
	if !parseVitals(raw, v) {
		return false
	}
	f.writeVitals(v, rc)
	return true
}

// writeVitals writes one reading's row as writeVitals does.
func (f *fastDec) writeVitals(v *vitalsView, rc *recCtx) {
	f.tb.rows++
	f.writeMeta(&v.meta, rc)
	f.sb(5, v.strs[0])         // device_id
	f.sb(6, v.strs[1])         // device_type
	f.sb(7, v.strs[2])         // patient_id
	f.sb(8, v.strs[8])         // ward
	f.sb(9, v.strs[3])         // kind
	for i, x := range v.nums { // heart_rate .. battery_level
		f.f64(10+i, x)
	}
	f.i32(20, v.sev)
	f.sb(21, v.strs[4]) // alert_type
	f.sb(22, v.strs[5]) // message
	f.sb(23, v.strs[6]) // quality
	f.sb(24, v.strs[7]) // batch_id
	f.ssb(25, v.present)
	f.ssb(26, nil) // extra keys and values: a record with extra values takes the general path
	f.ssb(27, nil)
}

// fastVitalsBatch: every reading of a VitalsBatch, validated first.
func fastVitalsBatch(f *fastDec, raw []byte, rc *recCtx) bool {
	n, ok := walkBatch(raw, 4, func(part []byte, i int) bool {
		if i == len(f.vit) {
			f.vit = append(f.vit, vitalsView{})
		}
		return parseVitals(part, &f.vit[i])
	})
	if !ok {
		return false
	}
	for i := range f.vit[:n] {
		f.writeVitals(&f.vit[i], rc)
	}
	return true
}

// walkBatch validates a batch message (VitalsBatch, AnomalyScoreBatch):
// field 1 is its Meta, field parts repeats its elements, which parse gets
// in order (with their index), and the other low-numbered fields are
// strings. It returns the number of elements, or false when the batch (or
// an element) needs the general path. Nothing is appended meanwhile.
func walkBatch(raw []byte, parts protowire.Number, parse func(part []byte, i int) bool) (int, bool) {
	r := codec.NewFields(raw)
	n := 0
	var meta metaView
	for {
		num, typ, more := r.Next()
		if !more {
			break
		}
		switch {
		case num == 1:
			if mb := r.Bytes(typ); r.OK() && !parseMeta(mb, &meta) {
				return 0, false
			}
		case num == parts:
			b := r.Bytes(typ)
			if !r.OK() || !parse(b, n) {
				return 0, false
			}
			n++
		case num < parts: // device_id, batch_id: strings
			r.Str(typ)
		default:
			r.Skip(num, typ)
		}
		if !r.OK() {
			return 0, false
		}
	}
	return n, r.OK()
}

// scoreView is an AnomalyScore as slices of the record value.
type scoreView struct {
	meta    metaView
	strs    [5][]byte  // device_id, patient_id, reading_event_id, level, ward
	nums    [6]float64 // score, rule_score, z_score, heart_rate, systolic_bp, spo2
	reasons [][]byte
}

func parseScore(b []byte, v *scoreView) bool {
	reasons := v.reasons[:0]
	*v = scoreView{reasons: reasons}
	r := codec.NewFields(b)
	for {
		num, typ, more := r.Next()
		if !more {
			break
		}
		switch num {
		case 1:
			if mb := r.Bytes(typ); r.OK() && !parseMeta(mb, &v.meta) {
				return false
			}
		case 2, 3, 4:
			v.strs[num-2] = r.Str(typ)
		case 5, 6, 7:
			v.nums[num-5] = r.Double(typ)
		case 8:
			v.reasons = append(v.reasons, r.Str(typ))
		case 9:
			v.strs[3] = r.Str(typ)
		case 10, 11, 12:
			v.nums[num-7] = r.Double(typ)
		case 13:
			v.strs[4] = r.Str(typ)
		default:
			r.Skip(num, typ)
		}
		if !r.OK() {
			return false
		}
	}
	return r.OK() && len(v.meta.eventID) > 0
}

// writeScore writes the row writeAnomaly writes for the same score.
func (f *fastDec) writeScore(v *scoreView, rc *recCtx) {
	f.tb.rows++
	f.writeMeta(&v.meta, rc)
	f.sb(5, v.strs[0])   // device_id
	f.sb(6, v.strs[1])   // patient_id
	f.sb(7, v.strs[4])   // ward
	f.sb(8, v.strs[2])   // reading_event_id (unique)
	f.f64(9, v.nums[0])  // score
	f.f64(10, v.nums[1]) // rule_score
	f.f64(11, v.nums[2]) // z_score
	f.ssb(12, v.reasons) // reasons
	f.sb(13, v.strs[3])  // level
	f.f64(14, v.nums[3]) // heart_rate
	f.f64(15, v.nums[4]) // systolic_bp
	f.f64(16, v.nums[5]) // spo2
}

func fastScore(f *fastDec, raw []byte, rc *recCtx) bool {
	if len(f.sco) < 1 {
		f.sco = make([]scoreView, 1)
	}
	v := &f.sco[0]
	if !parseScore(raw, v) {
		return false
	}
	f.writeScore(v, rc)
	return true
}

// fastScoreBatch: every score of an AnomalyScoreBatch, validated first.
func fastScoreBatch(f *fastDec, raw []byte, rc *recCtx) bool {
	n, ok := walkBatch(raw, 3, func(part []byte, i int) bool {
		if i == len(f.sco) {
			f.sco = append(f.sco, scoreView{})
		}
		return parseScore(part, &f.sco[i])
	})
	if !ok {
		return false
	}
	for i := range f.sco[:n] {
		f.writeScore(&f.sco[i], rc)
	}
	return true
}
