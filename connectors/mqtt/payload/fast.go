package payload

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"strings"
)

// The fast path: a hand-written decoder for the flat objects devices send.
// It fills the same body that encoding/json would, or gives up (ok=false)
// on anything it does not handle exactly like encoding/json (escapes,
// non-ASCII, case-folded keys, schedule fields, type mismatches, invalid
// JSON); the caller then decodes with encoding/json, which stays the
// reference. FuzzFastBody checks that whenever the fast path succeeds,
// encoding/json produces the same body.

type scanner struct {
	d []byte
	i int
}

// The loops below work on locals (d, i) and store s.i once: the compiler
// keeps them in registers, where s.i through the pointer was a load and a
// store per byte (a fifth of the batch encoder's time in str and ws).

// strStop marks the bytes that end str's plain run: the closing quote, a
// backslash, control characters and non-ASCII bytes.
var strStop = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80
	}
	return t
}()

// skipWS returns the position of the first byte at or after i that is not
// JSON whitespace. The helpers on positions (skipWS, scanStr) let the
// batch encoder's key loop keep its position in a register across several
// steps, where each method call stored s.i and the next loaded it again.
func skipWS(d []byte, i int) int {
	for i < len(d) {
		if c := d[i]; c > ' ' || c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			break // the usual case: one comparison
		}
		i++
	}
	return i
}

func (s *scanner) ws() {
	s.i = skipWS(s.d, s.i)
}

func (s *scanner) peek() byte {
	if s.i < len(s.d) {
		return s.d[s.i]
	}
	return 0
}

// Bytes repeated across a uint64, for stopMask.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stopMask looks at 8 bytes at once (x, little endian: the first byte is
// the lowest) for the bytes strStop marks. It returns 0 when there is none,
// else a mask whose lowest set bit is the high bit of the first one.
//
// Each term is the classic "has a zero byte" test, (v - ones) &^ v & highs,
// for v = x^'"' (a quote), v = x^'\\' (a backslash); (x - 0x20*ones) &^ x
// flags the bytes below 0x20; x & highs the non-ASCII ones. A term can also
// flag a byte that is not a stop byte, but only above a byte that is (the
// false flag needs a borrow, and only a byte that is a stop byte for that
// term borrows: bytes >= 0x80 are not even touched), so the lowest flag is
// always right; and every stop byte is flagged, borrow or not.
func stopMask(x uint64) uint64 {
	q := x ^ ('"' * ones)
	b := x ^ ('\\' * ones)
	return ((q-ones)&^q | (b-ones)&^b | (x-0x20*ones)&^x | x) & highs
}

// scanStr finds the string that starts with the quote at d[i] and has no
// escapes or non-ASCII bytes: its contents are d[i+1:end] and d[end] is
// the closing quote. It looks at 8 bytes at a time while 8 are left, then
// one at a time: keys and ids are mostly 8 to 16 bytes, where the byte loop
// was the largest single cost of the batch encoder.
func scanStr(d []byte, i int) (end int, ok bool) {
	if i >= len(d) || d[i] != '"' {
		return 0, false
	}
	i++
	for {
		if len(d)-i < 8 {
			for i < len(d) && !strStop[d[i]] {
				i++
			}
			break
		}
		if m := stopMask(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			i += bits.TrailingZeros64(m) / 8
			break
		}
		i += 8
	}
	return i, i < len(d) && d[i] == '"'
}

// str reads a string without escapes or non-ASCII bytes and returns its
// contents (a subslice).
func (s *scanner) str() ([]byte, bool) {
	start := s.i + 1
	end, ok := scanStr(s.d, s.i)
	if !ok {
		return nil, false
	}
	s.i = end + 1
	return s.d[start:end], true
}

// num reads a number in JSON's grammar and returns its text.
func (s *scanner) num() ([]byte, bool) {
	d, i := s.d, s.i
	start := i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.i = i
	return d[start:i], true
}

func (s *scanner) lit(w string) bool {
	if len(s.d)-s.i >= len(w) && string(s.d[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// skip skips any value (validating it) up to depth levels deep.
func (s *scanner) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := s.num()
		return ok
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	}
	return false
}

// array reads an array, calling elem with the scanner at each element.
func (s *scanner) array(elem func() bool) bool {
	if s.peek() != '[' {
		return false
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		s.ws()
		if !elem() {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// object reads an object, calling field for each key with the scanner at
// the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		k, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.peek() != ':' {
			return false
		}
		s.i++
		s.ws()
		if !field(k) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.d)
}

// null consumes a null if one is next: isNull says one was there, ok
// whether it was spelled right.
func (s *scanner) null() (isNull, ok bool) {
	if s.peek() != 'n' {
		return false, true
	}
	return true, s.lit("null")
}

// nullInto sets *p to nil if a null is next (see null).
func nullInto[T any](s *scanner, p **T) (isNull, ok bool) {
	isNull, ok = s.null()
	if isNull && ok {
		*p = nil
	}
	return isNull, ok
}

// float reads a number or null into *p (null sets nil, as encoding/json).
func (s *scanner) float(p **float64) bool {
	if isNull, ok := nullInto(s, p); isNull {
		return ok
	}
	t, ok := s.num()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(t), 64)
	if err != nil {
		return false
	}
	*p = &f
	return true
}

// strp reads a string or null into *p.
func (s *scanner) strp(p **string) bool {
	if isNull, ok := nullInto(s, p); isNull {
		return ok
	}
	v, ok := s.str()
	if !ok {
		return false
	}
	x := string(v)
	*p = &x
	return true
}

// strv reads a string (null leaves *p unchanged, as encoding/json).
func (s *scanner) strv(p *string) bool {
	if s.peek() == 'n' {
		return s.lit("null")
	}
	v, ok := s.str()
	if ok {
		*p = string(v)
	}
	return ok
}

func (s *scanner) id(p *idValue) bool {
	var v []byte // stays nil for null: *p unchanged, as encoding/json
	if !s.idBytes(&v) {
		return false
	}
	if v != nil {
		*p = idValue(v)
	}
	return true
}

func (s *scanner) ts(p **tsValue) bool {
	if isNull, ok := nullInto(s, p); isNull {
		return ok
	}
	start := s.i
	var ok bool
	if s.peek() == '"' {
		_, ok = s.str()
	} else {
		_, ok = s.num()
	}
	if !ok {
		return false
	}
	ms, err := parseTime(s.d[start:s.i])
	if err != nil {
		return false
	}
	v := tsValue(ms)
	*p = &v
	return true
}

// bodyKeys are the keys the fast path decodes; other keys that fold to one
// of body's keys send us to encoding/json (it matches keys case-insensitively).
var bodyKeys = func() []string {
	var ks []string
	for _, f := range []string{"messageId", "id", "eventId", "deviceId", "deviceType", "patientId", "medicationId", "tenant", "type", "ward",
		"location", "timestamp", "intakeTime", "status", "online", "dosage", "unit", "verificationMethod", "method", "batteryLevel",
		"deviceBattery", "signalStrength", "firmwareVersion", "heartRate", "bloodPressure", "systolic", "diastolic", "systolicBp",
		"diastolicBp", "spo2", "oxygenSaturation", "temperature", "respiratoryRate", "glucose", "medicationDose", "administrationRate",
		"severity", "alertType", "message", "quality", "medicationName", "timezone", "times", "daysOfWeek", "startDate", "endDate",
		"dosesPerTime", "graceMinutes", "lateWindowMinutes", "earlyWindowMinutes", "version", "deleted",
		"data", "vitalSigns", "batchId", "messages", "count"} {
		ks = append(ks, f)
	}
	return ks
}()

func foldsToKnown(k []byte) bool {
	for _, f := range bodyKeys {
		if len(f) == len(k) && strings.EqualFold(f, string(k)) {
			return true
		}
	}
	return false
}

// fastBody decodes data into b; false means "use encoding/json".
func fastBody(data []byte, b *body) bool {
	s := scanner{d: data}
	s.ws()
	return s.body(b) && s.end()
}

// body decodes the object at the scanner's position into b and leaves the
// scanner after it; false means "use encoding/json" (b is then partial).
func (s *scanner) body(b *body) bool {
	return s.object(func(k []byte) bool {
		switch string(k) {
		case "messageId":
			return s.id(&b.MessageID)
		case "id":
			return s.id(&b.ID)
		case "eventId":
			return s.id(&b.EventID)
		case "deviceId":
			return s.strp(&b.DeviceID)
		case "patientId":
			return s.strp(&b.PatientID)
		case "medicationId":
			return s.strp(&b.MedicationID)
		case "status":
			return s.strp(&b.Status)
		case "deviceType":
			return s.strv(&b.DeviceType)
		case "tenant":
			return s.strv(&b.Tenant)
		case "type":
			return s.strv(&b.Type)
		case "ward":
			return s.strv(&b.Ward)
		case "location":
			return s.strv(&b.Location)
		case "unit":
			return s.strv(&b.Unit)
		case "verificationMethod":
			return s.strv(&b.Method)
		case "method":
			return s.strv(&b.Method2)
		case "firmwareVersion":
			return s.strv(&b.Firmware)
		case "alertType":
			return s.strv(&b.AlertType)
		case "message":
			return s.strv(&b.Message)
		case "quality":
			return s.strv(&b.Quality)
		case "timestamp":
			return s.ts(&b.Timestamp)
		case "intakeTime":
			return s.ts(&b.IntakeTime)
		case "online":
			switch {
			case s.lit("true"):
				t := true
				b.Online = &t
			case s.lit("false"):
				f := false
				b.Online = &f
			case s.lit("null"):
				b.Online = nil
			default:
				return false
			}
			return true
		case "dosage":
			return s.float(&b.Dosage)
		case "signalStrength":
			return s.float(&b.Signal)
		case "severity":
			return s.float(&b.Severity)
		case "data":
			return s.raw(&b.Data)
		case "vitalSigns":
			return s.raw(&b.VitalSigns)
		}
		if ok, known := s.value(&b.values, k); known {
			return ok
		}
		if foldsToKnown(k) {
			// Schedule fields, batch fields, or a case variant: the
			// reference decoder handles them.
			return false
		}
		return s.skip(0)
	})
}

// raw reads any value as encoding/json fills a json.RawMessage: its bytes,
// null included.
func (s *scanner) raw(p *json.RawMessage) bool {
	start := s.i
	if !s.skip(1) {
		return false
	}
	*p = json.RawMessage(s.d[start:s.i])
	return true
}

// value reads the value of key k if k is one of values' keys (known);
// ok=false means "use encoding/json".
func (s *scanner) value(v *values, k []byte) (ok, known bool) {
	switch string(k) {
	case "heartRate":
		return s.float(&v.HeartRate), true
	case "systolic":
		return s.float(&v.Systolic), true
	case "diastolic":
		return s.float(&v.Diastolic), true
	case "systolicBp":
		return s.float(&v.SystolicBp), true
	case "diastolicBp":
		return s.float(&v.DiastolicBp), true
	case "spo2":
		return s.float(&v.SpO2), true
	case "oxygenSaturation":
		return s.float(&v.OxygenSat), true
	case "temperature":
		return s.float(&v.Temperature), true
	case "respiratoryRate":
		return s.float(&v.Respiratory), true
	case "glucose":
		return s.float(&v.Glucose), true
	case "medicationDose":
		return s.float(&v.Dose), true
	case "administrationRate":
		return s.float(&v.Rate), true
	case "batteryLevel":
		return s.float(&v.Battery), true
	case "deviceBattery":
		return s.float(&v.Battery2), true
	case "bloodPressure":
		if s.lit("null") {
			v.BloodPressure = nil
			return true, true
		}
		if v.BloodPressure == nil {
			v.BloodPressure = new(bloodPressure)
		}
		bp := v.BloodPressure
		return s.object(func(k []byte) bool {
			switch string(k) {
			case "systolic":
				return s.float(&bp.Systolic)
			case "diastolic":
				return s.float(&bp.Diastolic)
			}
			if strings.EqualFold(string(k), "systolic") || strings.EqualFold(string(k), "diastolic") {
				return false
			}
			return s.skip(1)
		}), true
	}
	return false, false
}

// valueKeys are values' keys, for the case variants in a nested object.
var valueKeys = []string{"heartRate", "bloodPressure", "systolic", "diastolic", "systolicBp", "diastolicBp", "spo2", "oxygenSaturation",
	"temperature", "respiratoryRate", "glucose", "medicationDose", "administrationRate", "batteryLevel", "deviceBattery"}

func foldsToValue(k []byte) bool {
	for _, f := range valueKeys {
		if len(f) == len(k) && strings.EqualFold(f, string(k)) {
			return true
		}
	}
	return false
}

// fastValues decodes a nested data or vitalSigns object into v; false
// means "use encoding/json" (FuzzFastValues holds it to encoding/json).
func fastValues(data []byte, v *values) bool {
	s := scanner{d: data}
	s.ws()
	ok := s.object(func(k []byte) bool {
		if ok, known := s.value(v, k); known {
			return ok
		}
		if foldsToValue(k) {
			return false
		}
		return s.skip(1)
	})
	return ok && s.end()
}

// count reads a batch's count: an integer (null, a fraction or an exponent
// sends us to encoding/json).
func (s *scanner) count() (int, bool) {
	if s.peek() == 'n' {
		return 0, false
	}
	t, ok := s.num()
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(t))
	return n, err == nil
}

// fastBatch decodes a batch envelope; Messages are subslices of data.
func fastBatch(data []byte, bb *batchBody) bool {
	s := scanner{d: data}
	s.ws()
	ok := s.object(func(k []byte) bool {
		switch string(k) {
		case "batchId":
			return s.id(&bb.BatchID)
		case "deviceId":
			return s.strp(&bb.DeviceID)
		case "tenant":
			return s.strv(&bb.Tenant)
		case "count":
			n, ok := s.count()
			if ok {
				bb.Count = &n
			}
			return ok
		case "messages":
			bb.Messages, bb.bodies = bb.Messages[:0], bb.bodies[:0]
			return s.array(func() bool {
				start := s.i
				// One pass for the common case: decode the message while
				// finding its end; else only find its end (the caller
				// decodes it with encoding/json).
				b := new(body)
				ok := s.peek() == '{' && s.body(b)
				if !ok {
					s.i = start
					if !s.skip(1) {
						return false
					}
				}
				bb.Messages = append(bb.Messages, json.RawMessage(s.d[start:s.i]))
				if !ok {
					b = nil // encoding/json decodes it
				}
				bb.bodies = append(bb.bodies, b)
				return true
			})
		}
		if foldsToKnown(k) {
			return false
		}
		return s.skip(0)
	})
	return ok && s.end()
}
