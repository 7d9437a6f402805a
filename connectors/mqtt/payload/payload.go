// Package payload decodes the JSON that medical devices publish over MQTT
// (pillcases, infusion pumps, vitals monitors) into the protobuf records of
// the topic catalog, and turns everything it cannot accept into dead letters
// with a machine-readable [Reason].
//
// It is pure: no I/O, no clocks (the caller passes the time), no logging.
// It knows the seed documents' field names (deviceId, patientId,
// medicationId, intakeTime as ISO-8601 or epoch ms/s, dosage, status,
// timestamp, batteryLevel, heartRate, bloodPressure {systolic,diastolic} or
// systolic/diastolic, oxygenSaturation/spo2, temperature, severity,
// alertType, medicationDose, administrationRate, ...), a reading's values
// also nested in a data or vitalSigns object (the seed's
// {type, deviceId, data, timestamp}). Unknown fields are ignored. It does not know MQTT topics: the caller resolves the topic into
// a [Type] and a [Source] (tenant, device type, device id, kind).
//
// Decoding tries a hand-written fast path first (fast.go) and falls back to
// encoding/json, which stays the reference and owns every error message.
// Why hand-written rather than a faster JSON library: measured on this
// package's benchmark in one run, github.com/goccy/go-json v0.10.5 gave
// 1.37x over encoding/json, the fast path 1.9x (single reading) to 2.5x
// (batch of 100), and goccy's error types would change the dead-letter
// reasons. FuzzFastBody holds the fast path to the reference: whenever it
// accepts an input, encoding/json must produce the identical body.
package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Stage is the DeadLetter.Stage this package writes.
const Stage = "connectors/mqtt"

// Type is the kind of message a device topic carries.
type Type string

// Message types (the route types of the topic mapping).
const (
	// Intake is a pillcase's medication intake report.
	Intake Type = "intake"
	// Schedule is a dose schedule a device reports.
	Schedule Type = "schedule"
	// Status is a device status (JSON) or a plain "online"/"offline" word
	// (last will).
	Status Type = "status"
	// Telemetry is vitals, pump readings and device alerts; the kind comes
	// from the last topic level (vitals, readings, alerts). A telemetry
	// topic whose kind is status carries a [Status].
	Telemetry Type = "telemetry"
	// Batch is the seed's batched form {batchId, deviceId, messages, count};
	// each message becomes its own record.
	Batch Type = "batch"
)

// Reason is the machine-readable code of a dead letter; it is also the value
// of the reason label of the connector's rejection metric, so the set is
// closed.
type Reason string

// Rejection reasons.
const (
	ReasonMalformedJSON  Reason = "malformed_json"
	ReasonMissingField   Reason = "missing_field"
	ReasonSpoofedDevice  Reason = "spoofed_device"
	ReasonOversize       Reason = "oversize"
	ReasonTimestamp      Reason = "timestamp_out_of_window"
	ReasonInvalidValue   Reason = "invalid_value"
	ReasonUnknownTopic   Reason = "unknown_topic"
	ReasonBatchMalformed Reason = "batch_malformed"
	ReasonProduceFailed  Reason = "produce_failed"
	// ReasonNoValues is a telemetry reading that carries no value at all
	// (see build): it would land as an empty row.
	ReasonNoValues Reason = "no_values"
	// ReasonUnknownTenant is a payload naming a tenant that is neither the
	// default nor one of Options.Tenants.
	ReasonUnknownTenant Reason = "unknown_tenant"
)

// Reasons lists every Reason (for metric pre-registration).
func Reasons() []Reason {
	return []Reason{ReasonMalformedJSON, ReasonMissingField, ReasonSpoofedDevice, ReasonOversize, ReasonTimestamp,
		ReasonInvalidValue, ReasonUnknownTopic, ReasonBatchMalformed, ReasonProduceFailed, ReasonNoValues, ReasonUnknownTenant}
}

// Error is a rejection: why a payload (or one message of a batch) was not
// accepted. Match it with errors.As.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func reject(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}

// Source is what the MQTT topic says about a message.
type Source struct {
	// Topic is the MQTT topic (recorded as Meta.Source and in dead letters).
	Topic string
	// Tenant from the topic; "" uses [Options.Tenant].
	Tenant string
	// DeviceType from the topic, e.g. med-pump.
	DeviceType string
	// DeviceID from the topic; "" for the batch topic. A payload deviceId
	// that differs is rejected as spoofed.
	DeviceID string
	// Kind is the last topic level of telemetry: vitals, readings, alerts
	// or status.
	Kind string
}

// Options are the validation rules.
type Options struct {
	// Tenant is the default tenant.
	Tenant string
	// Tenants are the other tenants a payload's tenant field may name (on
	// topics without a tenant level); a payload naming one that is neither
	// Tenant nor in Tenants is rejected (ReasonUnknownTenant). nil: only
	// Tenant.
	Tenants []string
	// MaxBytes rejects larger payloads (0: no limit).
	MaxBytes int
	// MaxAge rejects event times older than Now-MaxAge (0: no limit). Old
	// event times are normal (devices flush offline buffers), so keep it
	// generous.
	MaxAge time.Duration
	// MaxSkew rejects event times later than Now+MaxSkew (0: no limit).
	MaxSkew time.Duration
	// Now is the ingest time.
	Now time.Time
	// BatchRecords keeps a batch's valid vitals readings together: one
	// VitalsBatch record on topics.VitalsBatches instead of one record per
	// reading on topics.Vitals (see Decode). Other parts and rejects are
	// unaffected.
	BatchRecords bool

	// noBatchEncoder takes the general path for every batch (tests).
	noBatchEncoder bool
}

// Out is one record to produce: a catalog topic (unprefixed), its key and
// value. Dead letters have Topic == topics.DeadLetters and a Reason.
type Out struct {
	Topic string
	Key   string
	// Msg is the value; nil when Value holds it already encoded.
	Msg proto.Message
	// Value is the encoded value, set instead of Msg by the batch encoder
	// (a VitalsBatch; see vitalsbatch.go).
	Value  []byte
	Reason Reason
}

// Encoded returns the record's value in the wire format.
func (o Out) Encoded() ([]byte, error) {
	if o.Value != nil {
		return o.Value, nil
	}
	return codec.Marshal(o.Msg)
}

// Message returns the record's value as a message, decoding Value when the
// batch encoder set it.
func (o Out) Message() (proto.Message, error) {
	if o.Msg != nil || o.Value == nil {
		return o.Msg, nil
	}
	m := new(pb.VitalsBatch)
	if err := proto.Unmarshal(o.Value, m); err != nil {
		return nil, fmt.Errorf("decoding the encoded %s record: %w", o.Topic, err)
	}
	return m, nil
}

// body is the union of every field the seeds use. Pointers tell absent
// from zero.
type body struct {
	MessageID    idValue  `json:"messageId"`
	ID           idValue  `json:"id"`
	EventID      idValue  `json:"eventId"`
	DeviceID     *string  `json:"deviceId"`
	DeviceType   string   `json:"deviceType"`
	PatientID    *string  `json:"patientId"`
	MedicationID *string  `json:"medicationId"`
	Tenant       string   `json:"tenant"`
	Type         string   `json:"type"`
	Ward         string   `json:"ward"`
	Location     string   `json:"location"`
	Timestamp    *tsValue `json:"timestamp"`
	IntakeTime   *tsValue `json:"intakeTime"`
	Status       *string  `json:"status"`
	Online       *bool    `json:"online"`
	Dosage       *float64 `json:"dosage"`
	Unit         string   `json:"unit"`
	Method       string   `json:"verificationMethod"`
	Method2      string   `json:"method"`
	Signal       *float64 `json:"signalStrength"`
	Firmware     string   `json:"firmwareVersion"`
	// values are a reading's measured values at the top level.
	values
	// Data and VitalSigns hold the same values nested, as the seed's
	// devices send them ({type, deviceId, data: {...}, timestamp}; its IoT
	// rules read vitalSigns.heartRate). Kept raw: only a reading decodes
	// them (nestedValues), and only an object counts.
	Data         json.RawMessage `json:"data"`
	VitalSigns   json.RawMessage `json:"vitalSigns"`
	Severity     *float64        `json:"severity"`
	AlertType    string          `json:"alertType"`
	Message      string          `json:"message"`
	Quality      string          `json:"quality"`
	MedName      string          `json:"medicationName"`
	Timezone     string          `json:"timezone"`
	Times        []string        `json:"times"`
	DaysOfWeek   []int32         `json:"daysOfWeek"`
	StartDate    string          `json:"startDate"`
	EndDate      string          `json:"endDate"`
	DosesPerTime int32           `json:"dosesPerTime"`
	Grace        int32           `json:"graceMinutes"`
	Late         int32           `json:"lateWindowMinutes"`
	Early        int32           `json:"earlyWindowMinutes"`
	Version      int64           `json:"version"`
	Deleted      bool            `json:"deleted"`
}

// values are the measured values of a reading, under the names devices
// use: at a payload's top level and nested in its data or vitalSigns
// object.
type values struct {
	HeartRate     *float64       `json:"heartRate"`
	BloodPressure *bloodPressure `json:"bloodPressure"`
	Systolic      *float64       `json:"systolic"`
	Diastolic     *float64       `json:"diastolic"`
	SystolicBp    *float64       `json:"systolicBp"`
	DiastolicBp   *float64       `json:"diastolicBp"`
	SpO2          *float64       `json:"spo2"`
	OxygenSat     *float64       `json:"oxygenSaturation"`
	Temperature   *float64       `json:"temperature"`
	Respiratory   *float64       `json:"respiratoryRate"`
	Glucose       *float64       `json:"glucose"`
	Dose          *float64       `json:"medicationDose"`
	Rate          *float64       `json:"administrationRate"`
	Battery       *float64       `json:"batteryLevel"`
	Battery2      *float64       `json:"deviceBattery"`
}

type bloodPressure struct {
	Systolic  *float64 `json:"systolic"`
	Diastolic *float64 `json:"diastolic"`
}

// value returns the reading field vitalNames[j] (vitalsbatch.go: same
// order, same aliases, first present wins) as v holds it, or nil.
func (v *values) value(j int) *float64 {
	switch j {
	case 0:
		return v.HeartRate
	case 1:
		var bp *float64
		if v.BloodPressure != nil {
			bp = v.BloodPressure.Systolic
		}
		return firstNum(bp, v.SystolicBp, v.Systolic)
	case 2:
		var bp *float64
		if v.BloodPressure != nil {
			bp = v.BloodPressure.Diastolic
		}
		return firstNum(bp, v.DiastolicBp, v.Diastolic)
	case 3:
		return firstNum(v.SpO2, v.OxygenSat)
	case 4:
		return v.Temperature
	case 5:
		return v.Respiratory
	case 6:
		return v.Glucose
	case 7:
		return v.Dose
	case 8:
		return v.Rate
	case 9:
		return firstNum(v.Battery, v.Battery2)
	}
	return nil
}

// nestedValues decodes a data or vitalSigns object (field names the key,
// for errors); anything but an object is no values (nil), as before these
// were read.
func nestedValues(field string, raw json.RawMessage) (*values, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil
	}
	v := new(values)
	if fastValues(raw, v) {
		return v, nil
	}
	*v = values{}
	if err := json.Unmarshal(raw, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, reject(ReasonInvalidValue, "field %s.%s: %w", field, ute.Field, err)
		}
		return nil, reject(ReasonInvalidValue, "field %s: %w", field, err)
	}
	return v, nil
}

// idValue accepts a string or a number (the seed's batchId is Date.now()).
type idValue string

func (v *idValue) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = idValue(s)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if _, err := strconv.ParseFloat(string(b), 64); err != nil {
		return fmt.Errorf("id %s is neither a string nor a number", b)
	}
	*v = idValue(b)
	return nil
}

// tsValue is the payloads' name for a device timestamp ([Timestamp]).
type tsValue = Timestamp

// Timestamp is a device timestamp in any form the payloads take: epoch
// milliseconds (or seconds, when below 1e11), a numeric string, or an
// ISO-8601/RFC 3339 string; it decodes to epoch milliseconds.
type Timestamp int64

// UnmarshalJSON implements json.Unmarshaler.
func (v *Timestamp) UnmarshalJSON(b []byte) error {
	ms, err := parseTime(b)
	if err != nil {
		return err
	}
	*v = Timestamp(ms)
	return nil
}

var isoLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"}

func parseTime(b []byte) (int64, error) {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, err
		}
		s = strings.TrimSpace(s)
		if s != "" && (s[0] >= '0' && s[0] <= '9') && !strings.ContainsAny(s, "-:T") {
			return epochMs(s)
		}
		for _, l := range isoLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t.UnixMilli(), nil
			}
		}
		return 0, fmt.Errorf("time %q is not ISO-8601 or epoch milliseconds", s)
	}
	return epochMs(s)
}

func epochMs(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e15 {
		return 0, fmt.Errorf("time %q is not epoch milliseconds", s)
	}
	if f < 1e11 { // seconds (the seed's shadow metadata uses them)
		f *= 1000
	}
	return int64(f), nil
}

// EventID returns the payload's id, else a hash of device, topic and
// payload: stable across redeliveries, so downstream stages can drop
// duplicates.
func EventID(payloadID, deviceID, topic string, raw []byte) string {
	if payloadID != "" {
		return payloadID
	}
	h := sha256.New()
	h.Write([]byte(deviceID))
	h.Write([]byte{0})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(raw)
	var sum [sha256.Size]byte
	return "h-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

func (b *body) id() string {
	switch {
	case b.MessageID != "":
		return string(b.MessageID)
	case b.EventID != "":
		return string(b.EventID)
	}
	return string(b.ID)
}

// Decode turns one MQTT payload of type t from src into records, and into
// dead letters for what it rejects (a batch may yield both). It never
// returns an empty slice: every input is accounted for.
func Decode(t Type, src Source, raw []byte, o Options) []Out {
	if o.MaxBytes > 0 && len(raw) > o.MaxBytes {
		return []Out{Oversize(src, raw, o)}
	}
	if t == Batch {
		return decodeBatch(src, raw, o)
	}
	if t == Telemetry && src.Kind == "status" {
		// medical/{tenant}/{deviceType}/{deviceId}/status is a device
		// status (a last will, online/offline, reported state) like
		// medical/devices/{deviceId}/status and a batch part of type
		// status, not a reading.
		t = Status
	}
	out, err := decodeOne(t, src, raw, o)
	if err != nil {
		return []Out{DeadLetter(src, raw, o, err)}
	}
	return []Out{out}
}

// DeadLetter builds the dead-letter record for raw from src.
func DeadLetter(src Source, raw []byte, o Options, err error) Out {
	var pe *Error
	reason := ReasonInvalidValue
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	// Errors may quote the offending bytes (a spoofed device id, as long as
	// the payload): at most MaxDeadLetterError bytes of it, so that the
	// dead letter fits a Kafka record; protobuf strings must be UTF-8.
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(msg) > MaxDeadLetterError {
		msg = strings.ToValidUTF8(msg[:MaxDeadLetterError], "") + "... (truncated)"
	}
	dl := &pb.DeadLetter{
		Meta: &pb.Meta{Tenant: tenantOf(src.Tenant, o), EventId: EventID("", src.DeviceID, src.Topic, raw),
			EventTimeMs: o.Now.UnixMilli(), IngestTimeMs: o.Now.UnixMilli(), Source: src.Topic},
		Stage: Stage, SourceTopic: src.Topic, Key: []byte(src.DeviceID), Raw: append([]byte(nil), raw...),
		Reason: string(reason), Error: msg, SourcePartition: -1, SourceOffset: -1,
	}
	return Out{Topic: topics.DeadLetters, Key: src.Topic, Msg: dl, Reason: reason}
}

// MaxDeadLetterRaw is the most of an oversize payload a dead letter keeps:
// half of the 1 MB a Kafka record holds by default (franz-go's
// ProducerBatchMaxBytes, the broker's message.max.bytes), leaving room for
// the rest of the record. MQTT carries payloads up to 256 MB, and a dead
// letter Kafka refuses leaves its message unacknowledged.
const MaxDeadLetterRaw = 512 << 10

// MaxDeadLetterError is the most of an error message a dead letter keeps.
const MaxDeadLetterError = 4 << 10

// Oversize dead-letters a payload larger than o.MaxBytes (ReasonOversize),
// with at most its first MaxDeadLetterRaw bytes, so that the dead letter
// fits a Kafka record; the event id hashes the whole payload. Decode uses
// it; so must any other route that checks o.MaxBytes (command acks).
func Oversize(src Source, raw []byte, o Options) Out {
	err := reject(ReasonOversize, "payload of %d bytes exceeds the limit of %d", len(raw), o.MaxBytes)
	kept := raw
	if len(kept) > MaxDeadLetterRaw {
		kept = kept[:MaxDeadLetterRaw]
		err = reject(ReasonOversize, "payload of %d bytes exceeds the limit of %d (raw holds its first %d bytes)", len(raw), o.MaxBytes, len(kept))
	}
	out := DeadLetter(src, kept, o, err)
	out.Msg.(*pb.DeadLetter).Meta.EventId = EventID("", src.DeviceID, src.Topic, raw)
	return out
}

// knownTenant reports whether a payload may name tenant t: the default or
// one of o.Tenants. It takes bytes (the batch encoder's subslices) without
// converting them.
func (o *Options) knownTenant(t []byte) bool {
	if string(t) == o.Tenant {
		return true
	}
	for _, k := range o.Tenants {
		if string(t) == k {
			return true
		}
	}
	return false
}

func tenantOf(t string, o Options) string {
	if t != "" {
		return t
	}
	return o.Tenant
}

func decodeOne(t Type, src Source, raw []byte, o Options) (Out, error) {
	if t == Status {
		if w, ok := statusWord(raw); ok {
			return statusFromWord(src, raw, w, o), nil
		}
	}
	var b body
	if fastBody(raw, &b) {
		return build(t, src, &b, raw, o)
	}
	b = body{}
	if err := json.Unmarshal(raw, &b); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return Out{}, reject(ReasonInvalidValue, "field %s: %w", ute.Field, err)
		}
		if json.Valid(raw) {
			return Out{}, reject(ReasonInvalidValue, "%w", err)
		}
		return Out{}, reject(ReasonMalformedJSON, "%w", err)
	}
	return build(t, src, &b, raw, o)
}

// statusWord recognises the seeds' plain last-will payloads.
func statusWord(raw []byte) (string, bool) {
	s := strings.ToLower(strings.Trim(strings.TrimSpace(string(raw)), `"`))
	switch s {
	case "online", "offline", "connected", "disconnected":
		return s, true
	}
	return "", false
}

func statusFromWord(src Source, raw []byte, w string, o Options) Out {
	online := w == "online" || w == "connected"
	now := o.Now.UnixMilli()
	st := &pb.DeviceStatus{
		// A bare word carries no device time; the arrival time is all we have.
		Meta:     &pb.Meta{Tenant: tenantOf(src.Tenant, o), EventId: EventID("", src.DeviceID, src.Topic, []byte(string(raw)+"@"+strconv.FormatInt(now, 10))), EventTimeMs: now, IngestTimeMs: now, Source: src.Topic},
		DeviceId: src.DeviceID, DeviceType: src.DeviceType, Online: online, Status: w,
	}
	return Out{Topic: topics.DeviceStatus, Key: src.DeviceID, Msg: st}
}

func (o Options) checkTime(field string, ms int64) error {
	t := time.UnixMilli(ms)
	if o.MaxAge > 0 && t.Before(o.Now.Add(-o.MaxAge)) {
		return reject(ReasonTimestamp, "%s %s is more than %s in the past", field, t.UTC().Format(time.RFC3339), o.MaxAge)
	}
	if o.MaxSkew > 0 && t.After(o.Now.Add(o.MaxSkew)) {
		return reject(ReasonTimestamp, "%s %s is more than %s in the future", field, t.UTC().Format(time.RFC3339), o.MaxSkew)
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func build(t Type, src Source, b *body, raw []byte, o Options) (Out, error) {
	if b.DeviceID == nil || *b.DeviceID == "" {
		if src.DeviceID == "" || t != Status {
			return Out{}, reject(ReasonMissingField, "deviceId is missing")
		}
	} else if src.DeviceID != "" && *b.DeviceID != src.DeviceID {
		return Out{}, reject(ReasonSpoofedDevice, "payload deviceId %q differs from the topic's %q", *b.DeviceID, src.DeviceID)
	}
	dev := src.DeviceID
	if dev == "" {
		dev = str(b.DeviceID)
	}
	tenant := tenantOf(src.Tenant, o)
	if src.Tenant == "" && b.Tenant != "" {
		// The topic names no tenant: the payload may, but only a
		// configured one (a device must not write into another hospital's
		// tenant).
		if !o.knownTenant([]byte(b.Tenant)) {
			return Out{}, reject(ReasonUnknownTenant, "payload tenant %q is not a configured tenant", b.Tenant)
		}
		tenant = b.Tenant
	}
	devType := src.DeviceType
	if devType == "" {
		devType = b.DeviceType
	}
	meta := &pb.Meta{Tenant: tenant, EventId: EventID(b.id(), dev, src.Topic, raw), IngestTimeMs: o.Now.UnixMilli(), Source: src.Topic}
	if b.Timestamp != nil {
		meta.EventTimeMs = int64(*b.Timestamp)
	}
	ward := b.Ward
	switch t {
	case Intake:
		var missing []string
		for _, f := range []struct {
			name string
			ok   bool
		}{{"patientId", str(b.PatientID) != ""}, {"medicationId", str(b.MedicationID) != ""}, {"intakeTime", b.IntakeTime != nil}, {"status", str(b.Status) != ""}} {
			if !f.ok {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			return Out{}, reject(ReasonMissingField, "intake lacks %s", strings.Join(missing, ", "))
		}
		meta.EventTimeMs = int64(*b.IntakeTime)
		if err := o.checkTime("intakeTime", meta.EventTimeMs); err != nil {
			return Out{}, err
		}
		m := &pb.MedicationIntake{Meta: meta, DeviceId: dev, PatientId: *b.PatientID, MedicationId: *b.MedicationID,
			IntakeTimeMs: meta.EventTimeMs, Status: strings.ToLower(*b.Status), Unit: b.Unit, Location: b.Location,
			Method: firstNonEmpty(b.Method, b.Method2), Ward: ward}
		if b.Dosage != nil {
			m.Dosage = *b.Dosage
		}
		return Out{Topic: topics.Intake, Key: m.PatientId, Msg: m}, nil
	case Schedule:
		if str(b.PatientID) == "" || str(b.MedicationID) == "" || len(b.Times) == 0 {
			return Out{}, reject(ReasonMissingField, "schedule needs patientId, medicationId and times")
		}
		for _, tm := range b.Times {
			if _, err := time.Parse("15:04", tm); err != nil {
				return Out{}, reject(ReasonInvalidValue, "schedule time %q is not HH:MM", tm)
			}
		}
		if meta.EventTimeMs == 0 {
			meta.EventTimeMs = o.Now.UnixMilli()
		} else if err := o.checkTime("timestamp", meta.EventTimeMs); err != nil {
			return Out{}, err
		}
		m := &pb.DoseSchedule{Meta: meta, PatientId: *b.PatientID, MedicationId: *b.MedicationID, DeviceId: dev,
			MedicationName: b.MedName, Timezone: b.Timezone, Times: b.Times, DaysOfWeek: b.DaysOfWeek, StartDate: b.StartDate,
			EndDate: b.EndDate, DosesPerTime: b.DosesPerTime, GraceMinutes: b.Grace, LateWindowMinutes: b.Late,
			EarlyWindowMinutes: b.Early, Version: b.Version, Deleted: b.Deleted, Ward: ward}
		return Out{Topic: topics.Schedules, Key: topics.ScheduleKey(m.PatientId, m.MedicationId), Msg: m}, nil
	case Status:
		if meta.EventTimeMs == 0 {
			meta.EventTimeMs = o.Now.UnixMilli()
		} else if err := o.checkTime("timestamp", meta.EventTimeMs); err != nil {
			return Out{}, err
		}
		m := &pb.DeviceStatus{Meta: meta, DeviceId: dev, DeviceType: devType, Online: true, FirmwareVersion: b.Firmware,
			PatientId: str(b.PatientID), Location: b.Location, Ward: ward, Status: str(b.Status)}
		if b.Online != nil {
			m.Online = *b.Online
		} else if w, ok := statusWord([]byte(m.Status)); ok {
			m.Online = w == "online" || w == "connected"
		}
		if v := firstNum(b.Battery, b.Battery2); v != nil {
			m.BatteryLevel = *v
		}
		if b.Signal != nil {
			m.SignalStrength = *b.Signal
		}
		rep, err := reported(raw)
		if err != nil {
			return Out{}, err
		}
		m.Reported = rep
		return Out{Topic: topics.DeviceStatus, Key: dev, Msg: m}, nil
	case Telemetry:
		if b.Timestamp == nil {
			return Out{}, reject(ReasonMissingField, "timestamp is missing")
		}
		if err := o.checkTime("timestamp", meta.EventTimeMs); err != nil {
			return Out{}, err
		}
		kind := src.Kind
		if kind == "" {
			kind = "vitals"
		}
		v := &pb.VitalsTelemetry{Meta: meta, DeviceId: dev, DeviceType: devType, PatientId: str(b.PatientID), Kind: kind,
			AlertType: b.AlertType, Message: b.Message, Quality: b.Quality, Ward: ward}
		// The top level first, then data, then vitalSigns: per field, the
		// first that has it wins.
		vs := [3]*values{&b.values}
		for i, n := range [2]struct {
			name string
			raw  json.RawMessage
		}{{"data", b.Data}, {"vitalSigns", b.VitalSigns}} {
			nv, err := nestedValues(n.name, n.raw)
			if err != nil {
				return Out{}, err
			}
			vs[i+1] = nv
		}
		dsts := [len(vitalNames)]*float64{&v.HeartRate, &v.SystolicBp, &v.DiastolicBp, &v.Spo2, &v.Temperature, &v.RespiratoryRate,
			&v.Glucose, &v.MedicationDose, &v.AdministrationRate, &v.BatteryLevel}
		present := make([]string, 0, 8)
		for j, dst := range dsts {
			for _, x := range vs {
				if x == nil {
					continue
				}
				if p := x.value(j); p != nil {
					*dst = *p
					present = append(present, vitalNames[j].name)
					break
				}
			}
		}
		if b.Severity != nil {
			if *b.Severity < 0 || *b.Severity > 10 {
				return Out{}, reject(ReasonInvalidValue, "severity %v is outside 0..10", *b.Severity)
			}
			v.Severity = int32(*b.Severity)
			present = append(present, "severity")
		}
		if !hasContent(kind, len(present) > 0, b.AlertType != "" || b.Message != "") {
			return Out{}, reject(ReasonNoValues, "%s reading of %s carries no values", kind, src.Topic)
		}
		v.Present = present
		return Out{Topic: topics.Vitals, Key: dev, Msg: v}, nil
	}
	return Out{}, reject(ReasonUnknownTopic, "message type %q is not intake, schedule, status, telemetry or batch", t)
}

// hasContent reports whether a reading of kind is more than an empty row:
// any value (a vital sign, a pump's dose or rate, a battery level, a
// severity) counts; an alert may also be only its type or message.
func hasContent(kind string, values, alertText bool) bool {
	return values || kind == "alerts" && alertText
}

func firstNum(vals ...*float64) *float64 {
	for _, v := range vals {
		if v != nil {
			return v
		}
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// metaKeys are status fields that describe the message rather than the
// device's state; they stay out of the reported state.
var metaKeys = map[string]bool{"messageId": true, "id": true, "eventId": true, "deviceId": true, "timestamp": true, "tenant": true, "type": true}

// reported returns the device's reported state from a status payload: the
// "reported" or "state.reported" object when present, else every
// non-identifying top-level field.
func reported(raw []byte) (*structpb.Struct, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, reject(ReasonMalformedJSON, "%w", err)
	}
	src := m
	if r, ok := m["reported"].(map[string]any); ok {
		src = r
	} else if st, ok := m["state"].(map[string]any); ok {
		if r, ok := st["reported"].(map[string]any); ok {
			src = r
		}
	}
	out := make(map[string]any, len(src))
	for k, v := range src {
		if !metaKeys[k] {
			out[k] = v
		}
	}
	s, err := structpb.NewStruct(out)
	if err != nil {
		return nil, reject(ReasonInvalidValue, "reported state: %w", err)
	}
	return s, nil
}

// batchBody is the seed's batch envelope.
type batchBody struct {
	BatchID  idValue           `json:"batchId"`
	DeviceID *string           `json:"deviceId"`
	Messages []json.RawMessage `json:"messages"`
	Count    *int              `json:"count"`
	Tenant   string            `json:"tenant"`
	// bodies are the messages the fast path decoded while scanning the
	// envelope, by index (nil: not decoded).
	bodies []*body
}

// batchTypes maps a batched message's "type" (the last topic level it would
// have had) to its message type and telemetry kind.
var batchTypes = map[string]struct {
	t    Type
	kind string
}{
	"": {Telemetry, "vitals"}, "vitals": {Telemetry, "vitals"}, "readings": {Telemetry, "readings"},
	"alerts": {Telemetry, "alerts"}, "telemetry": {Telemetry, "vitals"}, "status": {Status, ""},
	"medication_intake": {Intake, ""}, "intake": {Intake, ""}, "medication_schedule": {Schedule, ""}, "schedule": {Schedule, ""},
}

func decodeBatch(src Source, raw []byte, o Options) []Out {
	if o.BatchRecords && !o.noBatchEncoder {
		if out, ok := encodeVitalsBatch(src, raw, o); ok {
			return []Out{out}
		}
	}
	var bb batchBody
	if !fastBatch(raw, &bb) {
		bb = batchBody{}
		if err := json.Unmarshal(raw, &bb); err != nil {
			r := ReasonMalformedJSON
			if json.Valid(raw) {
				r = ReasonBatchMalformed
			}
			return []Out{DeadLetter(src, raw, o, reject(r, "batch: %w", err))}
		}
	}
	if bb.DeviceID == nil || *bb.DeviceID == "" {
		return []Out{DeadLetter(src, raw, o, reject(ReasonMissingField, "batch deviceId is missing"))}
	}
	if src.DeviceID != "" && *bb.DeviceID != src.DeviceID {
		return []Out{DeadLetter(src, raw, o, reject(ReasonSpoofedDevice, "batch deviceId %q differs from the topic's %q", *bb.DeviceID, src.DeviceID))}
	}
	if len(bb.Messages) == 0 {
		return []Out{DeadLetter(src, raw, o, reject(ReasonBatchMalformed, "batch %s holds no messages", bb.BatchID))}
	}
	if bb.Count != nil && *bb.Count != len(bb.Messages) {
		return []Out{DeadLetter(src, raw, o, reject(ReasonBatchMalformed, "batch %s says count %d but holds %d messages", bb.BatchID, *bb.Count, len(bb.Messages)))}
	}
	bsrc := src
	bsrc.DeviceID = *bb.DeviceID
	if bsrc.Tenant == "" && bb.Tenant != "" {
		if !o.knownTenant([]byte(bb.Tenant)) {
			return []Out{DeadLetter(src, raw, o, reject(ReasonUnknownTenant, "batch %s: tenant %q is not a configured tenant", bb.BatchID, bb.Tenant))}
		}
		bsrc.Tenant = bb.Tenant
	}
	out := make([]Out, 0, len(bb.Messages))
	for i, m := range bb.Messages {
		var b *body
		if i < len(bb.bodies) {
			b = bb.bodies[i]
		}
		if b == nil {
			b = new(body)
			if err := json.Unmarshal(m, b); err != nil {
				r := ReasonInvalidValue
				if !json.Valid(m) {
					r = ReasonMalformedJSON
				}
				out = append(out, DeadLetter(bsrc, m, o, reject(r, "batch %s message %d: %w", bb.BatchID, i, err)))
				continue
			}
		}
		bt, ok := batchTypes[b.Type]
		if !ok {
			out = append(out, DeadLetter(bsrc, m, o, reject(ReasonInvalidValue, "batch %s message %d: type %q is unknown", bb.BatchID, i, b.Type)))
			continue
		}
		psrc := bsrc
		psrc.Kind = bt.kind
		if b.DeviceType != "" {
			psrc.DeviceType = b.DeviceType
		}
		if b.DeviceID == nil {
			// Batched messages may leave the device to the envelope.
			d := bsrc.DeviceID
			b.DeviceID = &d
		}
		// Without a message id, index it within the batch so that two equal
		// readings in one batch stay distinct.
		if b.id() == "" && bb.BatchID != "" {
			b.MessageID = idValue(fmt.Sprintf("%s/%s/%d", bsrc.DeviceID, bb.BatchID, i))
		}
		rec, err := build(bt.t, psrc, b, m, o)
		if err != nil {
			out = append(out, DeadLetter(bsrc, m, o, fmt.Errorf("batch %s message %d: %w", bb.BatchID, i, err)))
			continue
		}
		if rec.Msg != nil {
			if v, ok := rec.Msg.(*pb.VitalsTelemetry); ok {
				v.BatchId = string(bb.BatchID)
			}
		}
		out = append(out, rec)
	}
	if o.BatchRecords {
		out = joinVitals(out, bsrc.DeviceID, string(bb.BatchID), o)
	}
	return out
}

// joinVitals replaces the vitals records among outs by one VitalsBatch
// record, where the first of them was; the readings keep their order and
// their own event ids, so consumers see the same readings either way. Every
// part of a batch is its device's (the device check ran on each), so the
// batch is keyed like its readings.
func joinVitals(outs []Out, device, batchID string, o Options) []Out {
	var readings []*pb.VitalsTelemetry
	at := -1
	kept := outs[:0]
	for _, out := range outs {
		if v, ok := out.Msg.(*pb.VitalsTelemetry); ok && out.Topic == topics.Vitals && out.Key == device {
			if at < 0 {
				at = len(kept)
				kept = append(kept, Out{})
			}
			readings = append(readings, v)
			continue
		}
		kept = append(kept, out)
	}
	if at < 0 {
		return kept
	}
	first := readings[0].GetMeta()
	id := batchID
	if id == "" {
		id = first.GetEventId() + "+" + strconv.Itoa(len(readings))
	}
	kept[at] = Out{Topic: topics.VitalsBatches, Key: device, Msg: &pb.VitalsBatch{
		Meta: &pb.Meta{Tenant: first.GetTenant(), EventId: "batch|" + device + "/" + id, EventTimeMs: first.GetEventTimeMs(),
			IngestTimeMs: o.Now.UnixMilli(), Source: first.GetSource()},
		DeviceId: device, BatchId: batchID, Readings: readings,
	}}
	return kept
}
