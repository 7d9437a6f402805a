package payload

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/bits"
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
// not decode, envelope fields after the messages (a reading's values nested
// in data or vitalSigns it decodes, nestedVals). The caller then takes the
// general path (decodeBatch), which stays the reference:
// FuzzVitalsBatchEncoder requires byte-identical records whenever the
// encoder accepts an input. In the connector this doubles the decode rate of
// batched telemetry (BenchmarkDecode/batch100 against batch100_general).
//
// Speed (2026-12-02; connectors/mqtt/README.md has the numbers): about
// 2x its first version, ~0.5 us per reading in BenchmarkDecode/batch100,
// where allocating and copying the record and the GC it drives are a fifth.
// What made it cheap, in the order of the profile: each key is first
// matched against the previous reading's key at that position (guesses,
// keyPattern.at: three masked word compares instead of a scan and a
// lookup); the reading loop keeps its position in a local and reads the
// usual values in place, no closure or method per step (keyAt, numberAt);
// numbers are converted while scanned, with an exact fast path before
// strconv.ParseFloat (floatAt); strings are scanned 8 bytes at a time
// (stopMask); what a batch repeats in every reading (Meta's tail, device,
// kind, batch id, the present names) is encoded once per batch and
// appended in one piece; each reading is written straight into the batch
// buffer, its length prefixes reserved and filled in afterwards; and the
// record leaves in one make and copy (no zeroing first).

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
// the slots they are read from, first present wins (build's firstNum). Each
// field's slots are listed in increasing slot order, so the first present
// one is the lowest bit of set&vitalMasks[j].
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

// vitalMasks[j] has the bits of vitalNames[j]'s slots; presentFields[j] is
// the encoded present entry (field 22) of vitalNames[j], and
// presentFields[len(vitalNames)] that of severity.
var vitalMasks, presentFields = func() (m [len(vitalNames)]uint32, p [len(vitalNames) + 1][]byte) {
	for j, vn := range vitalNames {
		prev := -1
		for _, x := range vn.slots {
			if x <= prev {
				panic("vitalNames: slots must be in increasing order")
			}
			prev = x
			m[j] |= 1 << x
		}
		p[j] = appendStringField(nil, fVPresent, vn.name)
	}
	p[len(vitalNames)] = appendStringField(nil, fVPresent, "severity")
	return m, p
}()

// Keys of a reading: the number keys are their slots, the others follow.
const (
	kMessageID = nSlots + iota
	kEventID
	kID
	kDeviceID
	kPatientID
	kDeviceType
	kTenant
	kType
	kWard
	kAlertType
	kMessage
	kQuality
	kTimestamp
	kBloodPressure
	kData
	kVitalSigns
	kOther = -1
)

// readingKey returns the key's slot or k* constant, or kOther.
func readingKey(k []byte) int {
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
	case "messageId":
		return kMessageID
	case "eventId":
		return kEventID
	case "id":
		return kID
	case "deviceId":
		return kDeviceID
	case "patientId":
		return kPatientID
	case "deviceType":
		return kDeviceType
	case "tenant":
		return kTenant
	case "type":
		return kType
	case "ward":
		return kWard
	case "alertType":
		return kAlertType
	case "message":
		return kMessage
	case "quality":
		return kQuality
	case "timestamp":
		return kTimestamp
	case "bloodPressure":
		return kBloodPressure
	case "data":
		return kData
	case "vitalSigns":
		return kVitalSigns
	}
	return kOther
}

// keyNames are the keys by id, for the guesses (see guesses): readingKey's
// keys, and systolic and diastolic inside bloodPressure.
var keyNames = func() (n [kVitalSigns + 1]string) {
	for _, k := range []string{"heartRate", "systolicBp", "diastolicBp", "systolic", "diastolic", "spo2", "oxygenSaturation",
		"temperature", "respiratoryRate", "glucose", "medicationDose", "administrationRate", "batteryLevel", "deviceBattery",
		"severity", "messageId", "eventId", "id", "deviceId", "patientId", "deviceType", "tenant", "type", "ward", "alertType",
		"message", "quality", "timestamp", "bloodPressure", "data", "vitalSigns"} {
		id := readingKey([]byte(k))
		if id == kOther || n[id] != "" {
			panic("keyNames: " + k)
		}
		n[id] = k
	}
	n[xBPSystolic], n[xBPDiastolic] = "systolic", "diastolic"
	return n
}()

// guesses are, by position, the keys of the previous reading and of its
// bloodPressure. The readings of a batch nearly always have the same keys
// in the same order and no whitespace, so the loops first check whether
// the bytes up to the next value are the guess's (keyPattern.at: a comma
// but before the first key, the quoted key, a colon, in three masked word
// compares) and do the general work (keyAt: whitespace, separators,
// scanStr; then readingKey: half the time of the scan) only when they are
// not. A guess only saves work: what is read is the same either way.
type guesses struct {
	reading [24]keyPattern
	bp      [4]keyPattern
}

// keyPattern is the compact JSON between a value (or the object's '{') and
// the next value: [,]"key": as little-endian words with masks.
type keyPattern struct {
	w, m   [3]uint64
	n      int // the pattern's length; 0: no guess
	id     int // the key's id
	keyLen int
}

// at reports whether the pattern is at d[i]. The key is then
// d[end-keyLen:end] and the value at skipWS(d, i+n), where end = i+n-2 is
// its closing quote: what keyAt reads for these bytes (the key is letters
// only, so scanStr stops at that quote). Small enough to be inlined into
// the loops, where a call to keyAt for each key was a tenth of the time.
func (kp *keyPattern) at(d []byte, i int) bool {
	if kp.n == 0 || len(d)-i < 24 {
		return false // no guess (whose zero masks would match anything)
	}
	w, le := d[i:i+24], binary.LittleEndian
	return le.Uint64(w)&kp.m[0] == kp.w[0] && le.Uint64(w[8:])&kp.m[1] == kp.w[1] && le.Uint64(w[16:])&kp.m[2] == kp.w[2]
}

// guess returns the pattern guessed at position p (n == 0: none).
func guess(g []keyPattern, p int) *keyPattern {
	if p < len(g) {
		return &g[p]
	}
	return &noGuess
}

var noGuess keyPattern

// remember records key id at position p (kOther: no guess).
func remember(g []keyPattern, p, id int) {
	if p >= len(g) {
		return
	}
	g[p] = keyPattern{}
	if id == kOther {
		return
	}
	// The pattern's bytes, built in place (a miss allocates nothing).
	name := keyNames[id]
	var w, m [24]byte
	n := 0
	if p > 0 {
		w[0], n = ',', 1
	}
	if n+len(name)+3 > len(w) {
		return // longer than any key here
	}
	w[n] = '"'
	n += 1 + copy(w[n+1:], name)
	w[n], w[n+1] = '"', ':'
	n += 2
	for i := range n {
		m[i] = 0xff
	}
	le := binary.LittleEndian
	for j := range 3 {
		g[p].w[j], g[p].m[j] = le.Uint64(w[8*j:]), le.Uint64(m[8*j:])
	}
	g[p].n, g[p].id, g[p].keyLen = n, id, len(name)
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
	hasTS                             bool
	// nested has bit n set when the reading's values nested in data (n=0)
	// or vitalSigns (n=1) are in the encoder's nested[n].
	nested uint8
	vals
}

// vals are a reading's values (body's values) by slot: a number and a
// presence bit each; hasBP: a bloodPressure object was there.
type vals struct {
	f     [nSlots]float64
	set   uint32
	hasBP bool
}

// value returns vitalNames[j]'s value in v: the first present of its slots.
func (v *vals) value(j int) (float64, bool) {
	if m := v.set & vitalMasks[j]; m != 0 {
		return v.f[bits.TrailingZeros32(m)], true
	}
	return 0, false
}

// encoder holds the reusable buffers of one batch and what its readings
// share.
type encoder struct {
	readings, meta, idb, hdr []byte
	firstTenant, firstID     []byte
	guesses                  guesses
	// nested are the values of the current reading's data and vitalSigns
	// objects (reading.nested says which it has).
	nested [2]vals

	// The batch's values, set when its messages start.
	device, batchID []byte
	// tenant is the readings' Meta tenant unless perReadingTenant and the
	// reading names one.
	tenant           []byte
	perReadingTenant bool
	// Encoded once per batch: the Meta fields after the event time
	// (ingest time, source), device_id, the default device_type,
	// batch_id, and kind by batchKind's answer.
	metaTail, deviceField, devTypeField, batchIDField []byte
	kindFields                                        [3][]byte

	// mid is, by kind, what follows Meta's event time up to the values
	// for a reading without device type or patient: metaTail, deviceField,
	// devTypeField and the kind's field.
	mid [3][]byte
	// tail is batchIDField and the present entries of the fields in
	// tailMask (bits as in reading's present), the last set encoded
	// (tailValid: in this batch).
	tail      []byte
	tailMask  uint32
	tailValid bool

	n       int   // readings so far
	firstTS int64 // the first reading's event time
	ingest  int64
}

// headerRoom is the room left before the readings for the batch's header
// (Meta, device_id, batch_id), usually about 100 bytes; a larger header
// takes a second copy.
const headerRoom = 256

var encoders = sync.Pool{New: func() any { return new(encoder) }}

// batchKind returns the index into kindNames of a message type that is a
// vitals reading (batchTypes' telemetry rows), or -1.
func batchKind(typ []byte) int {
	switch string(typ) {
	case "", "vitals", "telemetry":
		return 0
	case "readings":
		return 1
	case "alerts":
		return 2
	}
	return -1
}

var kindNames = [3]string{"vitals", "readings", "alerts"}

// encodeVitalsBatch is the batch encoder (see above): the VitalsBatch record
// decodeBatch with Options.BatchRecords would produce for raw, encoded, or
// ok=false.
func encodeVitalsBatch(src Source, raw []byte, o Options) (Out, bool) {
	if !utf8.ValidString(src.Topic) || !utf8.ValidString(src.Tenant) || !utf8.ValidString(src.DeviceType) || !utf8.ValidString(o.Tenant) {
		return Out{}, false
	}
	e := encoders.Get().(*encoder)
	defer func() {
		e.device, e.batchID = nil, nil // subslices of raw: not kept in the pool
		encoders.Put(e)
	}()
	// The readings are written after room for the envelope's header, which
	// is known only at the end (it names the first reading and the count):
	// header and readings then leave in one copy (see the end).
	e.readings = append(e.readings[:0], make([]byte, headerRoom)...)
	e.n = 0
	var (
		batchID, device, tenant []byte
		hasDevice, seenMsgs     bool
		hasCount                bool // a count of -1 is a count, and wrong
		count                   int
	)
	s := scanner{d: raw}
	s.ws()
	if s.peek() != '{' {
		return Out{}, false
	}
	s.i++
	for first := true; ; first = false {
		k, done, ok := s.nextKey(first)
		if !ok {
			return Out{}, false
		}
		if done {
			break
		}
		switch string(k) {
		case "batchId", "deviceId", "tenant":
			if seenMsgs {
				return Out{}, false // the readings were encoded with the earlier value
			}
			switch string(k) {
			case "batchId":
				ok = s.idBytes(&batchID)
			case "deviceId":
				var isNull bool
				device, isNull, ok = s.strOrNull()
				hasDevice = !isNull
			default:
				ok = s.strKeep(&tenant)
			}
		case "count":
			var c int
			if c, ok = s.count(); ok {
				count, hasCount = c, true
			}
		case "messages":
			if seenMsgs || !hasDevice || len(device) == 0 {
				return Out{}, false
			}
			seenMsgs = true
			if src.DeviceID != "" && string(device) != src.DeviceID {
				return Out{}, false
			}
			if src.Tenant == "" && len(tenant) > 0 && !o.knownTenant(tenant) {
				return Out{}, false // unknown_tenant
			}
			e.start(src, o, device, batchID, tenant)
			ok = e.messages(&s, &src, &o) // pointers: not two structs copied per reading
		default:
			ok = !foldsToKnown(k) && s.skip(0)
		}
		if !ok {
			return Out{}, false
		}
	}
	if !s.end() || !seenMsgs || e.n == 0 || hasCount && count != e.n {
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
		e.idb = strconv.AppendInt(e.idb, int64(e.n), 10)
	}
	e.meta = appendBytesField(e.meta, fMetaEventID, e.idb)
	e.meta = appendIntField(e.meta, fMetaEventMs, e.firstTS)
	e.meta = append(e.meta, e.metaTail...)
	h := e.hdr[:0]
	h = appendTag(h, fMeta, protowire.BytesType)
	h = appendVarint(h, uint64(len(e.meta)))
	h = append(h, e.meta...)
	h = appendBytesField(h, fBDeviceID, device)
	h = appendBytesField(h, fBBatchID, batchID)
	e.hdr = h
	var v []byte
	if len(h) <= headerRoom {
		// One source, so make and copy: the new slice is not zeroed first.
		rec := e.readings[headerRoom-len(h):]
		copy(rec, h)
		v = make([]byte, len(rec))
		copy(v, rec)
	} else {
		v = make([]byte, 0, len(h)+len(e.readings)-headerRoom)
		v = append(append(v, h...), e.readings[headerRoom:]...)
	}
	return Out{Topic: topics.VitalsBatches, Key: string(device), Value: v}, true
}

// start records the batch's values when its messages begin and encodes
// what every reading repeats.
func (e *encoder) start(src Source, o Options, device, batchID, tenant []byte) {
	e.device, e.batchID = device, batchID
	e.ingest = o.Now.UnixMilli()
	// Meta's tenant: the topic's, else the envelope's, else the reading's,
	// else the default.
	e.perReadingTenant = false
	switch {
	case src.Tenant != "":
		e.tenant = append(e.tenant[:0], src.Tenant...)
	case len(tenant) > 0:
		e.tenant = append(e.tenant[:0], tenant...)
	default:
		e.tenant = append(e.tenant[:0], o.Tenant...)
		e.perReadingTenant = true
	}
	e.metaTail = appendIntField(e.metaTail[:0], fMetaIngestMs, e.ingest)
	e.metaTail = appendStringField(e.metaTail, fMetaSource, src.Topic)
	e.deviceField = appendBytesField(e.deviceField[:0], fVDeviceID, device)
	e.devTypeField = appendStringField(e.devTypeField[:0], fVDeviceType, src.DeviceType)
	e.batchIDField = appendBytesField(e.batchIDField[:0], fVBatchID, batchID)
	for i, k := range kindNames {
		e.kindFields[i] = appendStringField(e.kindFields[i][:0], fVKind, k)
		e.mid[i] = append(append(append(append(e.mid[i][:0], e.metaTail...), e.deviceField...), e.devTypeField...), e.kindFields[i]...)
	}
	e.tailValid = false
}

// messages reads the batch's messages array, encoding each reading (one
// closure per batch; the per-reading work is in reading).
func (e *encoder) messages(s *scanner, src *Source, o *Options) bool {
	return s.array(func() bool { return e.reading(s, src, o) })
}

// reading decodes one message at the scanner and appends it to e.readings
// as a VitalsBatch readings entry (ok=false: not a reading we encode).
func (e *encoder) reading(s *scanner, src *Source, o *Options) bool {
	start := s.i
	// On the stack: clearing it and storing the payload's subslices into it
	// need no write barriers, which they did in the pooled encoder.
	var rd reading
	r := &rd
	if !s.reading(r, &e.guesses, &e.nested) {
		return false
	}
	kind := batchKind(r.typ)
	if kind < 0 || r.set&(1<<xSeverity) != 0 && (r.f[xSeverity] < 0 || r.f[xSeverity] > 10) || !r.hasTS {
		return false
	}
	if r.hasDevice && string(r.deviceID) != string(e.device) {
		return false // missing or spoofed device
	}
	if o.checkTime("timestamp", r.ts) != nil {
		return false
	}
	tenant := e.tenant
	if e.perReadingTenant && len(r.tenant) > 0 {
		if !o.knownTenant(r.tenant) {
			return false // unknown_tenant
		}
		tenant = r.tenant
	}
	var evID []byte
	switch {
	case len(r.msgID) > 0:
		evID = r.msgID
	case len(r.eventID) > 0:
		evID = r.eventID
	case len(r.id) > 0:
		evID = r.id
	case len(e.batchID) > 0:
		e.idb = append(e.idb[:0], e.device...)
		e.idb = append(e.idb, '/')
		e.idb = append(e.idb, e.batchID...)
		e.idb = append(e.idb, '/')
		e.idb = strconv.AppendInt(e.idb, int64(e.n), 10)
		evID = e.idb
	default:
		e.idb = appendHashID(e.idb[:0], e.device, src.Topic, s.d[start:s.i])
		evID = e.idb
	}
	if e.n == 0 {
		e.firstTenant = append(e.firstTenant[:0], tenant...)
		e.firstID = append(e.firstID[:0], evID...)
		e.firstTS = r.ts
	}

	// The entry, written in place: the lengths of the reading and of its
	// Meta are reserved (2 bytes and 1, the usual sizes) and filled in
	// once the contents are written.
	b := append(e.readings, entryHead[:]...)
	at, metaAt := len(b)-4, len(b)-1
	b = appendBytesField(b, fMetaTenant, tenant)
	b = appendBytesField(b, fMetaEventID, evID)
	b = appendIntField(b, fMetaEventMs, r.ts)
	if metaLen := len(b) - metaAt - 1 + len(e.metaTail); metaLen < 0x80 && len(r.devType) == 0 && len(r.patientID) == 0 {
		// The usual reading: Meta's length fits its byte, and all that
		// follows up to the values is the batch's, in one piece.
		b[metaAt] = byte(metaLen)
		b = append(b, e.mid[kind]...)
	} else {
		b = append(b, e.metaTail...)
		b = endLen(b, metaAt, 1)
		b = append(b, e.deviceField...)
		if len(r.devType) > 0 {
			b = appendBytesField(b, fVDeviceType, r.devType)
		} else {
			b = append(b, e.devTypeField...)
		}
		b = appendBytesField(b, fVPatientID, r.patientID)
		b = append(b, e.kindFields[kind]...)
	}
	var present uint32 // bit j: vitalNames[j] present; bit len(vitalNames): severity
	for j := range vitalNames {
		// The top level first, then data, then vitalSigns (build's order).
		f, ok := r.value(j)
		for n := 0; !ok && r.nested>>n != 0; n++ {
			if r.nested&(1<<n) != 0 {
				f, ok = e.nested[n].value(j)
			}
		}
		if ok {
			b = appendDoubleField(b, fVFirstValue+protowire.Number(j), f)
			present |= 1 << j
		}
	}
	if r.set&(1<<xSeverity) != 0 {
		present |= 1 << len(vitalNames)
	}
	if !hasContent(kindNames[kind], present != 0, len(r.alertType)|len(r.message) != 0) {
		return false // no_values
	}
	if r.set&(1<<xSeverity) != 0 {
		if sev := int32(r.f[xSeverity]); sev != 0 {
			b = appendTag(b, fVSeverity, protowire.VarintType)
			b = appendVarint(b, uint64(sev))
		}
		present |= 1 << len(vitalNames)
	}
	if !e.tailValid || present != e.tailMask {
		// A batch's readings mostly have the same fields: batch_id and
		// their present entries are built once and appended in one piece.
		e.tail = append(e.tail[:0], e.batchIDField...)
		for m := present; m != 0; m &= m - 1 {
			e.tail = append(e.tail, presentFields[bits.TrailingZeros32(m)]...)
		}
		e.tailMask, e.tailValid = present, true
	}
	if len(r.alertType)|len(r.message)|len(r.quality)|len(r.ward) == 0 {
		b = append(b, e.tail...)
	} else {
		b = appendBytesField(b, fVAlertType, r.alertType)
		b = appendBytesField(b, fVMessage, r.message)
		b = appendBytesField(b, fVQuality, r.quality)
		b = append(b, e.batchIDField...)
		b = appendBytesField(b, fVWard, r.ward)
		b = append(b, e.tail[len(e.batchIDField):]...)
	}
	e.readings = endLen(b, at, 2)
	e.n++
	return true
}

// entryHead starts a readings entry: its tag, two bytes for its length,
// Meta's tag and a byte for Meta's length (field numbers below 16: one-byte
// tags).
var entryHead = [5]byte{byte(protowire.EncodeTag(fBReadings, protowire.BytesType)), 0, 0, byte(protowire.EncodeTag(fMeta, protowire.BytesType)), 0}

// endLen fills in the length prefix reserved at b[at:at+reserved] for the
// bytes after it, as the minimal varint protobuf writes, moving those bytes
// when the length takes more or fewer than reserved bytes.
func endLen(b []byte, at, reserved int) []byte {
	if n := len(b) - at - reserved; reserved == 2 && n >= 1<<7 && n < 1<<14 {
		// The usual reading: two bytes, as AppendVarint writes them,
		// inlined.
		b[at], b[at+1] = byte(n)|0x80, byte(n>>7)
		return b
	}
	return endLenMove(b, at, reserved)
}

// endLenMove is endLen's general case.
func endLenMove(b []byte, at, reserved int) []byte {
	n := len(b) - at - reserved
	size := protowire.SizeVarint(uint64(n))
	switch {
	case size > reserved:
		b = append(b, make([]byte, size-reserved)...)
		copy(b[at+size:], b[at+reserved:at+reserved+n])
	case size < reserved:
		copy(b[at+size:], b[at+reserved:])
		b = b[:at+size+n]
	}
	protowire.AppendVarint(b[:at], uint64(n)) // in place: b[at:at+size]
	return b
}

// nextKey moves to the next key of the object whose '{' the scanner has
// passed (first: nothing read since) and returns it with the scanner at its
// value; done: the object ended, ok=false: not JSON.
func (s *scanner) nextKey(first bool) (k []byte, done, ok bool) {
	k, s.i, done, ok = keyAt(s.d, s.i, first)
	return k, done, ok
}

// keyAt is nextKey on a position: it returns the position of the value (or
// after the '}'). It is object's loop without the callback, for the
// per-reading path where a closure call per field showed in profiles; the
// reading loop keeps its position in a local and calls this and numberAt,
// where the scanner's methods each stored s.i for the next to load again.
func keyAt(d []byte, i int, first bool) (k []byte, next int, done, ok bool) {
	i = skipWS(d, i)
	if i >= len(d) {
		return nil, 0, false, false
	}
	switch c := d[i]; {
	case c == '}':
		return nil, i + 1, true, true
	case first:
	case c == ',':
		i = skipWS(d, i+1)
	default:
		return nil, 0, false, false
	}
	end, ok := scanStr(d, i)
	if !ok {
		return nil, 0, false, false
	}
	k = d[i+1 : end]
	i = skipWS(d, end+1)
	if i >= len(d) || d[i] != ':' {
		return nil, 0, false, false
	}
	return k, skipWS(d, i+1), false, true
}

// reading decodes one batched message into r, accepting only the keys a
// vitals reading uses; anything else that body would decode sends us to
// the general path, as do values of the wrong type (body's rules: null
// clears pointers and leaves strings and ids alone).
func (s *scanner) reading(r *reading, g *guesses, nested *[2]vals) bool {
	d, i := s.d, s.i
	if i >= len(d) || d[i] != '{' {
		return false
	}
	i++
	for p := 0; ; p++ {
		var (
			x    int
			k    []byte
			next int
		)
		if kp := guess(g.reading[:], p); kp.at(d, i) {
			end := i + kp.n - 2
			k, next, x = d[end-kp.keyLen:end], skipWS(d, i+kp.n), kp.id
		} else {
			var done, ok bool
			if k, next, done, ok = keyAt(d, i, p == 0); !ok {
				return false
			}
			if done {
				s.i = next
				return true
			}
			x = readingKey(k)
			remember(g.reading[:], p, x)
		}
		i = next
		// The usual values are read here, in place: numbers (slot's work),
		// a timestamp in epoch digits (timestamp's first case), message
		// and device ids as strings (idBytes' and strOrNull's). The rest,
		// and anything these do not take, go through readingField.
		if i < len(d) {
			switch c := d[i]; {
			case x >= 0 && x < nSlots && c != 'n':
				f, next, ok := floatAt(d, i)
				if !ok {
					return false
				}
				r.f[x] = f
				r.set |= 1 << x
				i = next
				continue
			case x == kTimestamp && c >= '0' && c <= '9':
				if next, ms, ok := epochAt(d, i); ok {
					r.ts, r.hasTS = ms, true
					i = next
					continue
				}
			case c == '"' && (x == kMessageID || x == kDeviceID):
				end, ok := scanStr(d, i)
				if !ok {
					return false
				}
				if x == kMessageID {
					r.msgID = d[i+1 : end]
				} else {
					r.deviceID, r.hasDevice = d[i+1:end], true
				}
				i = end + 1
				continue
			}
		}
		s.i = i
		var ok bool
		if x == kBloodPressure {
			ok = s.bloodPressure(&r.vals, g.bp[:]) // every reading has one: a call saved
		} else {
			ok = s.readingField(r, k, x, g, nested)
		}
		if !ok {
			return false
		}
		i = s.i
	}
}

// epochAt reads an epoch time at d[i] given as an integer of at most 15
// digits, without sign, fraction or exponent, as epochMs does, exactly and
// without a string (parseTime allocates one); ok=false: any other form.
func epochAt(d []byte, i int) (next int, ms int64, ok bool) {
	next, mant, frac, neg, short, ok := numberAt(d, i)
	if !ok || !short || neg || frac != 0 {
		return 0, 0, false
	}
	// An integer below 10^15 is exact in float64 and in int64.
	ms = int64(mant)
	if ms < 1e11 { // seconds, as epochMs
		ms *= 1000
	}
	return next, ms, true
}

// readingField reads the value of key k of a reading, x its readingKey.
func (s *scanner) readingField(r *reading, k []byte, x int, g *guesses, nested *[2]vals) bool {
	switch x {
	case kMessageID:
		return s.idBytes(&r.msgID)
	case kEventID:
		return s.idBytes(&r.eventID)
	case kID:
		return s.idBytes(&r.id)
	case kDeviceID:
		v, isNull, ok := s.strOrNull()
		r.deviceID, r.hasDevice = v, !isNull
		return ok
	case kPatientID:
		v, _, ok := s.strOrNull()
		r.patientID = v
		return ok
	case kDeviceType:
		return s.strKeep(&r.devType)
	case kTenant:
		return s.strKeep(&r.tenant)
	case kType:
		return s.strKeep(&r.typ)
	case kWard:
		return s.strKeep(&r.ward)
	case kAlertType:
		return s.strKeep(&r.alertType)
	case kMessage:
		return s.strKeep(&r.message)
	case kQuality:
		return s.strKeep(&r.quality)
	case kTimestamp:
		return s.timestamp(r)
	case kBloodPressure:
		return s.bloodPressure(&r.vals, g.bp[:])
	case kData, kVitalSigns:
		// body keeps the raw value (the last one wins) and only an object
		// holds values.
		n := x - kData
		r.nested &^= 1 << n
		if s.peek() != '{' {
			return s.skip(1)
		}
		nested[n] = vals{}
		if !s.nestedVals(&nested[n]) {
			return false
		}
		r.nested |= 1 << n
		return true
	case kOther:
		if foldsToKnown(k) {
			return false // another message type's field, or a case variant
		}
		return s.skip(0)
	default:
		return s.slot(&r.vals, x)
	}
}

// nestedVals reads a data or vitalSigns object into v as nestedValues
// would: values' keys only (severity is not one), a case variant of one
// sends us to the general path.
func (s *scanner) nestedVals(v *vals) bool {
	return s.object(func(k []byte) bool {
		switch x := readingKey(k); {
		case x == kBloodPressure:
			return s.bloodPressure(v, nil)
		case x >= 0 && x < nSlots && x != xSeverity:
			return s.slot(v, x)
		}
		return !foldsToValue(k) && s.skip(1)
	})
}

// timestamp reads a reading's timestamp as body's tsValue: null clears it,
// a number or string is parseTime's (epoch seconds or milliseconds, or
// ISO-8601).
func (s *scanner) timestamp(r *reading) bool {
	if isNull, ok := s.null(); isNull {
		r.hasTS = false
		return ok
	}
	start := s.i
	if s.peek() == '"' {
		if _, ok := s.str(); !ok {
			return false
		}
	} else {
		if next, ms, ok := epochAt(s.d, s.i); ok {
			s.i = next
			r.ts, r.hasTS = ms, true
			return true
		}
		if _, ok := s.num(); !ok {
			return false
		}
	}
	ms, err := parseTime(s.d[start:s.i])
	if err != nil {
		return false
	}
	r.ts, r.hasTS = ms, true
	return true
}

// bloodPressure reads the bloodPressure object (null clears it, as body's
// pointer; a second object adds to the first, as encoding/json).
func (s *scanner) bloodPressure(r *vals, g []keyPattern) bool {
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
	d, i := s.d, s.i+1
	for p := 0; ; p++ {
		var (
			x    = kOther
			k    []byte
			next int
		)
		if kp := guess(g, p); kp.at(d, i) {
			end := i + kp.n - 2
			k, next, x = d[end-kp.keyLen:end], skipWS(d, i+kp.n), kp.id
		} else {
			var done, ok bool
			if k, next, done, ok = keyAt(d, i, p == 0); !ok {
				return false
			}
			if done {
				s.i = next
				return true
			}
			switch string(k) {
			case "systolic":
				x = xBPSystolic
			case "diastolic":
				x = xBPDiastolic
			}
			remember(g, p, x)
		}
		i = next
		var ok bool
		switch {
		case x != kOther && i < len(d) && d[i] != 'n':
			// A number: slot's work, in place (as in reading).
			f, next, ok := floatAt(d, i)
			if !ok {
				return false
			}
			r.f[x] = f
			r.set |= 1 << x
			i = next
			continue
		case x != kOther:
			s.i = i
			ok = s.slot(r, x)
		default:
			s.i = i
			ok = !eqFold(k, "systolic") && !eqFold(k, "diastolic") && s.skip(1)
		}
		if !ok {
			return false
		}
		i = s.i
	}
}

// numberAt reads the number at d[i] in JSON's grammar and returns the
// position after it, converting its digits on the way (num and a second
// pass over the text were a fifth of the time). When short (at most 15
// digits, no exponent), mant is its digits as an integer, the point left
// out, and frac the count of those after the point. The results are plain
// values, not a struct, so that they stay in registers.
func numberAt(d []byte, i int) (next int, mant uint64, frac int, neg, short, ok bool) {
	if i < len(d) && d[i] == '-' {
		neg = true
		i++
	}
	start := i
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for ; i < len(d); i++ {
			c := d[i] - '0' // a digit: below 10, as an unsigned byte
			if c > 9 {
				break
			}
			mant = mant*10 + uint64(c) // wraps past 19 digits: then not short
		}
	default:
		return 0, 0, 0, false, false, false
	}
	digits := i - start
	if i < len(d) && d[i] == '.' {
		i++
		fracStart := i
		for ; i < len(d); i++ {
			c := d[i] - '0'
			if c > 9 {
				break
			}
			mant = mant*10 + uint64(c)
		}
		if frac = i - fracStart; frac == 0 {
			return 0, 0, 0, false, false, false // JSON wants a digit after the point
		}
		digits += frac
	}
	short = digits <= 15
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		short = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, 0, 0, false, false, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	return i, mant, frac, neg, short, true
}

// pow10 are the powers of ten a short number's fraction can need, all
// exact in float64.
var pow10 = [16]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// floatAt reads the number at d[i] and returns strconv.ParseFloat of its
// text and the position after it (ok=false: not a number, or ParseFloat's
// error).
//
// A short number is computed directly, bit-identical to ParseFloat: its
// digits are an integer below 10^15 < 2^53 and its fraction a power of
// ten of at most 15 < 22, so both are exact in float64 and the one
// division is correctly rounded, which makes the quotient the correctly
// rounded value of the decimal, what ParseFloat returns (its own first
// path, atof64exact, is this computation: Clinger's fast path). The sign
// is applied after, which rounding is symmetric to; -0 stays -0.
func floatAt(d []byte, i int) (f float64, next int, ok bool) {
	next, mant, frac, neg, short, ok := numberAt(d, i)
	if !ok {
		return 0, 0, false
	}
	if !short {
		f, err := strconv.ParseFloat(string(d[i:next]), 64)
		return f, next, err == nil
	}
	f = float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, next, true
}

// slot reads a number or null into slot x (null clears it, as body's
// pointers).
func (s *scanner) slot(r *vals, x int) bool {
	if isNull, ok := s.null(); isNull {
		r.set &^= 1 << x
		return ok
	}
	f, next, ok := floatAt(s.d, s.i)
	if !ok {
		return false
	}
	s.i = next
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

// appendVarint is protowire.AppendVarint with the one-byte case inline:
// tags and short lengths, most of the varints here (AppendVarint is not
// inlined and was a tenth of the time).
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendTag appends a field's tag. It takes the field numbers of this file,
// all below 2^11, whose tags are one or two varint bytes; written out (no
// call) so that it inlines and folds to the bytes for a constant field.
func appendTag(b []byte, n protowire.Number, t protowire.Type) []byte {
	k := protowire.EncodeTag(n, t)
	if k < 1<<7 {
		return append(b, byte(k))
	}
	return append(b, byte(k)|0x80, byte(k>>7))
}

// The append helpers write a field as proto3 does: nothing for a zero value.

func appendBytesField(b []byte, n protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = appendTag(b, n, protowire.BytesType)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendStringField(b []byte, n protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = appendTag(b, n, protowire.BytesType)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendIntField(b []byte, n protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendDoubleField(b []byte, n protowire.Number, v float64) []byte {
	if v == 0 && !math.Signbit(v) {
		return b
	}
	b = appendTag(b, n, protowire.Fixed64Type)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v)) // AppendFixed64's bytes, in one store
}
