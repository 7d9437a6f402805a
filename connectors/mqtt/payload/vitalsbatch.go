package payload

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/wardstream/wardstream/schemas/topics"
)

// The batch encoder: seed batches of vitals readings, the bulk of device
// traffic, go from JSON straight to the VitalsBatch wire format in one pass
// over the payload. No body, message or string is built per reading; the
// only allocation is the record value. It handles the case where every
// message of the batch is a valid vitals reading with the usual keys and
// gives up (ok=false) on anything else: a message another type, a reading
// that would be dead-lettered, an escape or non-ASCII byte, a key it does
// not decode, envelope fields after the messages. The caller then takes the
// general path (decodeBatch), which stays the reference:
// FuzzVitalsBatchEncoder requires byte-identical records whenever the
// encoder accepts an input. In the connector this doubles the decode rate of
// batched telemetry (BenchmarkDecode/batch100 against batch100_general).

// Field numbers of VitalsTelemetry, VitalsBatch and Meta
// (schemas/proto/wardstream/v1).
const (
	fMeta = 1

	fMetaTenant   = 1
	fMetaEventID  = 2
	fMetaEventMs  = 3
	fMetaIngestMs = 4
	fMetaSource   = 5

	fVDeviceID   = 2
	fVDeviceType = 3
	fVPatientID  = 4
	fVKind       = 5
	fVFirstValue = 6 // heart_rate; the doubles are 6..15 in vitalNames order
	fVSeverity   = 16
	fVAlertType  = 17
	fVMessage    = 18
	fVQuality    = 19
	fVBatchID    = 20
	fVWard       = 21
	fVPresent    = 22

	fBDeviceID = 2
	fBBatchID  = 3
	fBReadings = 4
)

// Slots of reading.f: each JSON key that carries a number.
const (
	xHeartRate = iota
	xBPSystolic
	xBPDiastolic
	xSystolicBp
	xDiastolicBp
	xSystolic
	xDiastolic
	xSpO2
	xOxygenSat
	xTemperature
	xRespiratory
	xGlucose
	xDose
	xRate
	xBattery
	xBattery2
	xSeverity
	nSlots
)

// vitalNames are the present names of fields 6..15, in build's order, with
// the slots they are read from, first present wins (build's firstNum).
var vitalNames = [...]struct {
	name  string
	slots []int
}{
	{"heartRate", []int{xHeartRate}},
	{"systolicBp", []int{xBPSystolic, xSystolicBp, xSystolic}},
	{"diastolicBp", []int{xBPDiastolic, xDiastolicBp, xDiastolic}},
	{"spo2", []int{xSpO2, xOxygenSat}},
	{"temperature", []int{xTemperature}},
	{"respiratoryRate", []int{xRespiratory}},
	{"glucose", []int{xGlucose}},
	{"medicationDose", []int{xDose}},
	{"administrationRate", []int{xRate}},
	{"batteryLevel", []int{xBattery, xBattery2}},
}

// numberKey returns the slot of a top-level number key of a reading, or -1.
func numberKey(k []byte) int {
	switch string(k) {
	case "heartRate":
		return xHeartRate
	case "systolicBp":
		return xSystolicBp
	case "diastolicBp":
		return xDiastolicBp
	case "systolic":
		return xSystolic
	case "diastolic":
		return xDiastolic
	case "spo2":
		return xSpO2
	case "oxygenSaturation":
		return xOxygenSat
	case "temperature":
		return xTemperature
	case "respiratoryRate":
		return xRespiratory
	case "glucose":
		return xGlucose
	case "medicationDose":
		return xDose
	case "administrationRate":
		return xRate
	case "batteryLevel":
		return xBattery
	case "deviceBattery":
		return xBattery2
	case "severity":
		return xSeverity
	}
	return -1
}

// reading is one batched message as body would hold it, flat: strings are
// subslices of the payload, numbers have a presence bit.
type reading struct {
	msgID, eventID, id                []byte
	deviceID                          []byte
	hasDevice                         bool
	devType, patientID, tenant, typ   []byte
	ward, alertType, message, quality []byte
	ts                                int64
	hasTS, hasBP                      bool
	f                                 [nSlots]float64
	set                               uint32
}

// encoder holds the reusable buffers of one batch.
type encoder struct {
	readings, rb, meta, idb, hdr []byte
	firstTenant, firstID         []byte
	r                            reading
}

var encoders = sync.Pool{New: func() any { return new(encoder) }}

// batchKinds are the message types that are vitals readings, with their
// kind (batchTypes' telemetry rows).
func batchKind(typ []byte) (string, bool) {
	switch string(typ) {
	case "", "vitals", "telemetry":
		return "vitals", true
	case "readings":
		return "readings", true
	case "alerts":
		return "alerts", true
	}
	return "", false
}

// encodeVitalsBatch is the batch encoder (see above): the VitalsBatch record
// decodeBatch with Options.BatchRecords would produce for raw, encoded, or
// ok=false.
func encodeVitalsBatch(src Source, raw []byte, o Options) (Out, bool) {
	if !utf8.ValidString(src.Topic) || !utf8.ValidString(src.Tenant) || !utf8.ValidString(src.DeviceType) || !utf8.ValidString(o.Tenant) {
		return Out{}, false
	}
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.readings = e.readings[:0]
	var (
		batchID, device, tenant []byte
		hasDevice, seenMsgs     bool
		count                   = -1
		n                       int
		firstTS                 int64
	)
	ingest := o.Now.UnixMilli()
	s := scanner{d: raw}
	s.ws()
	ok := s.object(func(k []byte) bool {
		switch string(k) {
		case "batchId", "deviceId", "tenant":
			if seenMsgs {
				return false // the readings were encoded with the earlier value
			}
			switch string(k) {
			case "batchId":
				return s.idBytes(&batchID)
			case "deviceId":
				v, isNull, ok := s.strOrNull()
				device, hasDevice = v, !isNull
				return ok
			default:
				return s.strKeep(&tenant)
			}
		case "count":
			c, ok := s.count()
			if ok {
				count = c
			}
			return ok
		case "messages":
			if seenMsgs || !hasDevice || len(device) == 0 {
				return false
			}
			seenMsgs = true
			if src.DeviceID != "" && string(device) != src.DeviceID {
				return false
			}
			btenant := src.Tenant
			if btenant == "" {
				btenant = string(tenant) // one string per batch
			}
			return s.array(func() bool {
				start := s.i
				r := &e.r
				*r = reading{}
				if !s.reading(r) {
					return false
				}
				kind, ok := batchKind(r.typ)
				if !ok || r.set&(1<<xSeverity) != 0 && (r.f[xSeverity] < 0 || r.f[xSeverity] > 10) || !r.hasTS {
					return false
				}
				if r.hasDevice && string(r.deviceID) != string(device) {
					return false // missing or spoofed device
				}
				if o.checkTime("timestamp", r.ts) != nil {
					return false
				}
				// Meta: tenant (batch, then message, then default), event
				// id, times, source.
				var rtenant []byte
				tenantStr := btenant
				if tenantStr == "" {
					if len(r.tenant) > 0 {
						rtenant = r.tenant
					} else {
						tenantStr = o.Tenant
					}
				}
				e.idb = e.idb[:0]
				var evID []byte
				switch {
				case len(r.msgID) > 0:
					evID = r.msgID
				case len(r.eventID) > 0:
					evID = r.eventID
				case len(r.id) > 0:
					evID = r.id
				case len(batchID) > 0:
					e.idb = append(e.idb, device...)
					e.idb = append(e.idb, '/')
					e.idb = append(e.idb, batchID...)
					e.idb = append(e.idb, '/')
					e.idb = strconv.AppendInt(e.idb, int64(n), 10)
					evID = e.idb
				default:
					e.idb = appendHashID(e.idb, device, src.Topic, s.d[start:s.i])
					evID = e.idb
				}
				e.meta = e.meta[:0]
				if rtenant != nil {
					e.meta = appendBytesField(e.meta, fMetaTenant, rtenant)
				} else {
					e.meta = appendStringField(e.meta, fMetaTenant, tenantStr)
				}
				e.meta = appendBytesField(e.meta, fMetaEventID, evID)
				e.meta = appendIntField(e.meta, fMetaEventMs, r.ts)
				e.meta = appendIntField(e.meta, fMetaIngestMs, ingest)
				e.meta = appendStringField(e.meta, fMetaSource, src.Topic)
				if n == 0 {
					if rtenant != nil {
						e.firstTenant = append(e.firstTenant[:0], rtenant...)
					} else {
						e.firstTenant = append(e.firstTenant[:0], tenantStr...)
					}
					e.firstID = append(e.firstID[:0], evID...)
					firstTS = r.ts
				}
				// The reading.
				rb := e.rb[:0]
				rb = protowire.AppendTag(rb, fMeta, protowire.BytesType)
				rb = protowire.AppendBytes(rb, e.meta)
				rb = appendBytesField(rb, fVDeviceID, device)
				if len(r.devType) > 0 {
					rb = appendBytesField(rb, fVDeviceType, r.devType)
				} else {
					rb = appendStringField(rb, fVDeviceType, src.DeviceType)
				}
				rb = appendBytesField(rb, fVPatientID, r.patientID)
				rb = appendStringField(rb, fVKind, kind)
				var present [len(vitalNames) + 1]string
				np := 0
				for j, vn := range vitalNames {
					for _, x := range vn.slots {
						if r.set&(1<<x) != 0 {
							rb = appendDoubleField(rb, fVFirstValue+protowire.Number(j), r.f[x])
							present[np] = vn.name
							np++
							break
						}
					}
				}
				if r.set&(1<<xSeverity) != 0 {
					if sev := int32(r.f[xSeverity]); sev != 0 {
						rb = protowire.AppendTag(rb, fVSeverity, protowire.VarintType)
						rb = protowire.AppendVarint(rb, uint64(sev))
					}
					present[np] = "severity"
					np++
				}
				rb = appendBytesField(rb, fVAlertType, r.alertType)
				rb = appendBytesField(rb, fVMessage, r.message)
				rb = appendBytesField(rb, fVQuality, r.quality)
				rb = appendBytesField(rb, fVBatchID, batchID)
				rb = appendBytesField(rb, fVWard, r.ward)
				for _, p := range present[:np] {
					rb = protowire.AppendTag(rb, fVPresent, protowire.BytesType)
					rb = protowire.AppendString(rb, p)
				}
				e.rb = rb
				e.readings = protowire.AppendTag(e.readings, fBReadings, protowire.BytesType)
				e.readings = protowire.AppendBytes(e.readings, rb)
				n++
				return true
			})
		}
		if foldsToKnown(k) {
			return false
		}
		return s.skip(0)
	})
	if !ok || !s.end() || !seenMsgs || n == 0 || count >= 0 && count != n {
		return Out{}, false
	}
	// The envelope: joinVitals' Meta from the first reading.
	e.meta = e.meta[:0]
	e.meta = appendBytesField(e.meta, fMetaTenant, e.firstTenant)
	e.idb = append(e.idb[:0], "batch|"...)
	e.idb = append(e.idb, device...)
	e.idb = append(e.idb, '/')
	if len(batchID) > 0 {
		e.idb = append(e.idb, batchID...)
	} else {
		e.idb = append(e.idb, e.firstID...)
		e.idb = append(e.idb, '+')
		e.idb = strconv.AppendInt(e.idb, int64(n), 10)
	}
	e.meta = appendBytesField(e.meta, fMetaEventID, e.idb)
	e.meta = appendIntField(e.meta, fMetaEventMs, firstTS)
	e.meta = appendIntField(e.meta, fMetaIngestMs, ingest)
	e.meta = appendStringField(e.meta, fMetaSource, src.Topic)
	h := e.hdr[:0]
	h = protowire.AppendTag(h, fMeta, protowire.BytesType)
	h = protowire.AppendBytes(h, e.meta)
	h = appendBytesField(h, fBDeviceID, device)
	h = appendBytesField(h, fBBatchID, batchID)
	e.hdr = h
	v := make([]byte, 0, len(h)+len(e.readings))
	v = append(append(v, h...), e.readings...)
	return Out{Topic: topics.VitalsBatches, Key: string(device), Value: v}, true
}

// reading decodes one batched message into r, accepting only the keys a
// vitals reading uses; anything else that body would decode sends us to
// the general path, as do values of the wrong type (body's rules: null
// clears pointers and leaves strings and ids alone).
func (s *scanner) reading(r *reading) bool {
	if s.peek() != '{' {
		return false
	}
	return s.object(func(k []byte) bool {
		if x := numberKey(k); x >= 0 {
			return s.slot(r, x)
		}
		switch string(k) {
		case "messageId":
			return s.idBytes(&r.msgID)
		case "eventId":
			return s.idBytes(&r.eventID)
		case "id":
			return s.idBytes(&r.id)
		case "deviceId":
			v, isNull, ok := s.strOrNull()
			r.deviceID, r.hasDevice = v, !isNull
			return ok
		case "patientId":
			v, _, ok := s.strOrNull()
			r.patientID = v
			return ok
		case "deviceType":
			return s.strKeep(&r.devType)
		case "tenant":
			return s.strKeep(&r.tenant)
		case "type":
			return s.strKeep(&r.typ)
		case "ward":
			return s.strKeep(&r.ward)
		case "alertType":
			return s.strKeep(&r.alertType)
		case "message":
			return s.strKeep(&r.message)
		case "quality":
			return s.strKeep(&r.quality)
		case "timestamp":
			if isNull, ok := s.null(); isNull {
				r.hasTS = false
				return ok
			}
			start := s.i
			var ok bool
			if s.peek() == '"' {
				_, ok = s.str()
			} else {
				var t []byte
				t, ok = s.num()
				if ms, isInt := epochDigits(t); ok && isInt {
					r.ts, r.hasTS = ms, true
					return true
				}
			}
			if !ok {
				return false
			}
			ms, err := parseTime(s.d[start:s.i])
			if err != nil {
				return false
			}
			r.ts, r.hasTS = ms, true
			return true
		case "bloodPressure":
			if s.lit("null") {
				r.hasBP = false
				r.set &^= 1<<xBPSystolic | 1<<xBPDiastolic
				return true
			}
			if s.peek() != '{' {
				return false
			}
			if !r.hasBP {
				r.hasBP = true
				r.set &^= 1<<xBPSystolic | 1<<xBPDiastolic
			}
			return s.object(func(k []byte) bool {
				switch string(k) {
				case "systolic":
					return s.slot(r, xBPSystolic)
				case "diastolic":
					return s.slot(r, xBPDiastolic)
				}
				if len(k) == len("systolic") || len(k) == len("diastolic") {
					if eqFold(k, "systolic") || eqFold(k, "diastolic") {
						return false
					}
				}
				return s.skip(1)
			})
		}
		if foldsToKnown(k) {
			return false // another message type's field, or a case variant
		}
		return s.skip(0)
	})
}

// epochDigits is epochMs for a number of at most 15 digits without sign,
// fraction or exponent, computed exactly without a string (parseTime
// allocates one); isInt=false: any other number.
func epochDigits(t []byte) (ms int64, isInt bool) {
	v, isInt := smallUint(t)
	if !isInt {
		return 0, false
	}
	if v < 1e11 { // seconds, as epochMs
		v *= 1000
	}
	return v, true
}

// smallUint is the value of a number of at most 15 digits without sign,
// fraction or exponent (isInt=false for any other).
func smallUint(t []byte) (v int64, isInt bool) {
	if len(t) == 0 || len(t) > 15 {
		return 0, false
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// slot reads a number or null into slot x (null clears it, as body's
// pointers).
func (s *scanner) slot(r *reading, x int) bool {
	if isNull, ok := s.null(); isNull {
		r.set &^= 1 << x
		return ok
	}
	t, ok := s.num()
	if !ok {
		return false
	}
	var f float64
	if v, isInt := smallUint(t); isInt {
		f = float64(v) // exact: below 2^53, as ParseFloat's result
	} else {
		var err error
		if f, err = strconv.ParseFloat(string(t), 64); err != nil {
			return false
		}
	}
	r.f[x] = f
	r.set |= 1 << x
	return true
}

// strOrNull reads a string or null (isNull: it was null).
func (s *scanner) strOrNull() (v []byte, isNull, ok bool) {
	if isNull, ok := s.null(); isNull {
		return nil, true, ok
	}
	v, ok = s.str()
	return v, false, ok
}

// strKeep reads a string into *p; null leaves *p unchanged (body's strv).
func (s *scanner) strKeep(p *[]byte) bool {
	if s.peek() == 'n' {
		return s.lit("null")
	}
	v, ok := s.str()
	if ok {
		*p = v
	}
	return ok
}

// idBytes reads an id as idValue does: a string, a number's text, or null
// (unchanged).
func (s *scanner) idBytes(p *[]byte) bool {
	switch c := s.peek(); {
	case c == 'n':
		return s.lit("null")
	case c == '"':
		v, ok := s.str()
		if ok {
			*p = v
		}
		return ok
	default:
		v, ok := s.num()
		if !ok {
			return false
		}
		if _, err := strconv.ParseFloat(string(v), 64); err != nil {
			return false
		}
		*p = v
		return true
	}
}

func eqFold(k []byte, w string) bool {
	if len(k) != len(w) {
		return false
	}
	for i := range k {
		a, b := k[i], w[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// appendHashID is EventID's hash form for a message without an id.
func appendHashID(dst, device []byte, topic string, raw []byte) []byte {
	h := sha256.New()
	h.Write(device)
	h.Write([]byte{0})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(raw)
	var sum [sha256.Size]byte
	dst = append(dst, "h-"...)
	return hex.AppendEncode(dst, h.Sum(sum[:0])[:16])
}

// The append helpers write a field as proto3 does: nothing for a zero value.

func appendBytesField(b []byte, n protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStringField(b []byte, n protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendIntField(b []byte, n protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendDoubleField(b []byte, n protowire.Number, v float64) []byte {
	if v == 0 && !math.Signbit(v) {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}
