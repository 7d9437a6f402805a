package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// BatchTopic is the seed's batched telemetry topic.
const BatchTopic = "medical/devices/batch/telemetry"

// Publish is one MQTT publish: a topic and its payload, carrying Readings
// readings (1, or the batch size on the batch topic).
type Publish struct {
	Topic    string
	Payload  []byte
	Readings int
}

// mqttTopic returns the device topic of r (the seed's layout).
func mqttTopic(tenant string, r *Reading) string {
	switch r.Kind {
	case KindIntake:
		return "medical/devices/" + r.DeviceID + "/medication_intake"
	case KindSchedule:
		return "medical/devices/" + r.DeviceID + "/medication_schedule"
	case KindPump:
		return "medical/" + tenant + "/" + r.DeviceType + "/" + r.DeviceID + "/readings"
	case KindPumpFailure:
		return "medical/" + tenant + "/" + r.DeviceType + "/" + r.DeviceID + "/alerts"
	default:
		return "medical/" + tenant + "/" + r.DeviceType + "/" + r.DeviceID + "/vitals"
	}
}

func isoMs(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// deviceJSON is the seed's JSON body of r (without the batch envelope).
func deviceJSON(r *Reading) map[string]any {
	m := map[string]any{
		"messageId": r.EventID,
		"deviceId":  r.DeviceID,
		"timestamp": r.EventTime.UnixMilli(),
	}
	if r.PatientID != "" {
		m["patientId"] = r.PatientID
	}
	switch r.Kind {
	case KindIntake:
		m["medicationId"] = r.MedicationID
		m["intakeTime"] = isoMs(r.IntakeTime)
		m["status"] = r.Status
		m["dosage"] = 1
		m["unit"] = "tablet"
		m["deviceBattery"] = 90
		m["location"] = "ward-1"
		m["verificationMethod"] = "weight_sensor"
	case KindSchedule:
		s := r.Schedule
		m["medicationId"] = s.MedicationId
		m["medicationName"] = s.MedicationName
		m["timezone"] = s.Timezone
		m["times"] = s.Times
		m["startDate"] = s.StartDate
		m["endDate"] = s.EndDate
		m["dosesPerTime"] = s.DosesPerTime
		m["graceMinutes"] = s.GraceMinutes
		m["earlyWindowMinutes"] = s.EarlyWindowMinutes
		m["lateWindowMinutes"] = s.LateWindowMinutes
		m["version"] = s.Version
		m["ward"] = s.Ward
	case KindVitals:
		m["deviceType"] = r.DeviceType
		m["heartRate"] = r.HeartRate
		m["bloodPressure"] = map[string]float64{"systolic": r.SystolicBP, "diastolic": r.DiastolicBP}
		m["systolicBp"] = r.SystolicBP
		m["diastolicBp"] = r.DiastolicBP
		m["spo2"] = r.SpO2
		m["temperature"] = r.Temperature
		m["respiratoryRate"] = r.RespiratoryRate
		m["quality"] = "high"
	case KindPump:
		m["deviceType"] = r.DeviceType
		m["medicationDose"] = r.MedicationDose
		m["administrationRate"] = r.AdministrationRate
		m["batteryLevel"] = r.BatteryLevel
		m["quality"] = "high"
	case KindPumpFailure:
		m["deviceType"] = r.DeviceType
		m["alertType"] = r.AlertType
		m["severity"] = r.Severity
		m["message"] = "occlusion detected"
		m["batteryLevel"] = r.BatteryLevel
	}
	return m
}

// EncodeMQTT returns the publish of one reading on its device topic.
func EncodeMQTT(tenant string, r *Reading) Publish {
	switch r.Kind {
	case KindMalformed:
		return encodeMalformed(tenant, r)
	case KindVitals, KindPump, KindPumpFailure:
		return Publish{Topic: mqttTopic(tenant, r), Payload: appendTelemetry(make([]byte, 0, 320), r, ""), Readings: 1}
	}
	b, _ := json.Marshal(deviceJSON(r)) // maps of plain values always marshal
	return Publish{Topic: mqttTopic(tenant, r), Payload: b, Readings: 1}
}

// appendTelemetry appends the JSON body of a telemetry reading: the same
// fields as deviceJSON, written by hand because the batched path encodes
// tens of thousands of readings per second and must not dominate the
// harness's CPU. With tenant != "" it adds the batch fields "type" and
// "tenant".
func appendTelemetry(b []byte, r *Reading, tenant string) []byte {
	str := func(k, v string) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = appendJSONString(b, v)
		b = append(b, ',')
	}
	num := func(k string, v float64) {
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
		b = append(b, ',')
	}
	b = append(b, '{')
	str("messageId", r.EventID)
	str("deviceId", r.DeviceID)
	b = append(b, `"timestamp":`...)
	b = strconv.AppendInt(b, r.EventTime.UnixMilli(), 10)
	b = append(b, ',')
	if r.PatientID != "" {
		str("patientId", r.PatientID)
	}
	str("deviceType", r.DeviceType)
	if tenant != "" {
		str("type", kindWord(r.Kind))
		str("tenant", tenant)
	}
	switch r.Kind {
	case KindVitals:
		num("heartRate", r.HeartRate)
		b = append(b, `"bloodPressure":{"systolic":`...)
		b = strconv.AppendFloat(b, r.SystolicBP, 'f', -1, 64)
		b = append(b, `,"diastolic":`...)
		b = strconv.AppendFloat(b, r.DiastolicBP, 'f', -1, 64)
		b = append(b, "},"...)
		num("systolicBp", r.SystolicBP)
		num("diastolicBp", r.DiastolicBP)
		num("spo2", r.SpO2)
		num("temperature", r.Temperature)
		num("respiratoryRate", r.RespiratoryRate)
		str("quality", "high")
	case KindPump:
		num("medicationDose", r.MedicationDose)
		num("administrationRate", r.AdministrationRate)
		num("batteryLevel", r.BatteryLevel)
		str("quality", "high")
	case KindPumpFailure:
		str("alertType", r.AlertType)
		num("severity", float64(r.Severity))
		str("message", "occlusion detected")
		num("batteryLevel", r.BatteryLevel)
	}
	b[len(b)-1] = '}'
	return b
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// EncodeMQTTBatch returns the seed's batched publish of rs (all of one
// device): {batchId, deviceId, messages, count} on BatchTopic. Each message
// carries its own topic-less body plus "type" and "tenant" so the connector
// can route it.
func EncodeMQTTBatch(tenant string, rs []Reading) Publish {
	if isTelemetry(rs) {
		b := make([]byte, 0, 64+len(rs)*340)
		b = append(b, `{"batchId":`...)
		b = appendJSONString(b, rs[0].EventID)
		b = append(b, `,"deviceId":`...)
		b = appendJSONString(b, rs[0].DeviceID)
		b = append(b, `,"tenant":`...)
		b = appendJSONString(b, tenant)
		b = append(b, `,"messages":[`...)
		for i := range rs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTelemetry(b, &rs[i], tenant)
		}
		b = append(b, `],"count":`...)
		b = strconv.AppendInt(b, int64(len(rs)), 10)
		b = append(b, '}')
		return Publish{Topic: BatchTopic, Payload: b, Readings: len(rs)}
	}
	msgs := make([]map[string]any, len(rs))
	for i := range rs {
		m := deviceJSON(&rs[i])
		m["type"] = kindWord(rs[i].Kind)
		m["tenant"] = tenant
		msgs[i] = m
	}
	b, _ := json.Marshal(map[string]any{
		"batchId":  rs[0].EventID,
		"deviceId": rs[0].DeviceID,
		"tenant":   tenant,
		"messages": msgs,
		"count":    len(msgs),
	})
	return Publish{Topic: BatchTopic, Payload: b, Readings: len(rs)}
}

func isTelemetry(rs []Reading) bool {
	for i := range rs {
		switch rs[i].Kind {
		case KindVitals, KindPump, KindPumpFailure:
		default:
			return false
		}
	}
	return true
}

// kindWord is the last topic level a batched reading would have had.
func kindWord(k Kind) string {
	switch k {
	case KindPump:
		return "readings"
	case KindPumpFailure:
		return "alerts"
	case KindIntake:
		return "medication_intake"
	case KindSchedule:
		return "medication_schedule"
	}
	return "vitals"
}

func encodeMalformed(tenant string, r *Reading) Publish {
	topic := "medical/" + tenant + "/" + r.DeviceType + "/" + r.DeviceID + "/vitals"
	switch r.Malformed {
	case "bad_json":
		return Publish{Topic: topic, Payload: []byte(`{"deviceId":"` + r.DeviceID + `","heartRate":`), Readings: 1}
	case "missing_fields":
		b, _ := json.Marshal(map[string]any{"messageId": r.EventID, "heartRate": 80})
		return Publish{Topic: topic, Payload: b, Readings: 1}
	default: // spoofed_device: the payload names another device than the topic
		b, _ := json.Marshal(map[string]any{"messageId": r.EventID, "deviceId": r.DeviceID + "-spoof", "timestamp": r.EventTime.UnixMilli(), "heartRate": 80})
		return Publish{Topic: topic, Payload: b, Readings: 1}
	}
}

// EncodeKafka returns the Kafka record of r as the connectors would write
// it (stage kafka and sink drive the path from here).
func EncodeKafka(tenant string, r *Reading, ingest time.Time) *kgo.Record {
	topic, key, msg, raw := kafkaMsg(tenant, r, ingest)
	if raw != nil {
		return &kgo.Record{Topic: topic, Key: []byte(key), Value: raw}
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: marshalOrError(msg)}
}

// EncodeKafkaBatch returns the Kafka records of one device's batch as the
// mqtt connector writes them with batch_records: the vitals readings as
// one VitalsBatch record (where the first was), the rest one by one.
func EncodeKafkaBatch(tenant, batchID string, rs []Reading, ingest time.Time) []*kgo.Record {
	var out []*kgo.Record
	var batch *pb.VitalsBatch
	for i := range rs {
		topic, key, msg, raw := kafkaMsg(tenant, &rs[i], ingest)
		if v, ok := msg.(*pb.VitalsTelemetry); ok && topic == topics.Vitals {
			if batch == nil {
				batch = &pb.VitalsBatch{Meta: &pb.Meta{Tenant: tenant, EventId: "batch|" + key + "/" + batchID, EventTimeMs: v.Meta.EventTimeMs,
					IngestTimeMs: ingest.UnixMilli(), Source: "bench"}, DeviceId: key, BatchId: batchID}
				out = append(out, &kgo.Record{Topic: topics.VitalsBatches, Key: []byte(key)})
			}
			v.BatchId = batchID
			batch.Readings = append(batch.Readings, v)
			continue
		}
		if raw == nil {
			raw = marshalOrError(msg)
		}
		out = append(out, &kgo.Record{Topic: topic, Key: []byte(key), Value: raw})
	}
	for _, r := range out {
		if r.Topic == topics.VitalsBatches {
			r.Value = marshalOrError(batch)
		}
	}
	return out
}

func marshalOrError(m proto.Message) []byte {
	b, err := codec.Marshal(m)
	if err != nil {
		// Marshal of a well-formed message cannot fail; keep the record
		// visible as a malformed one rather than dropping it.
		return []byte(err.Error())
	}
	return b
}

// kafkaMsg returns r's topic, key and message, or raw bytes for a
// malformed reading.
func kafkaMsg(tenant string, r *Reading, ingest time.Time) (topic, key string, msg proto.Message, raw []byte) {
	meta := &pb.Meta{Tenant: tenant, EventId: r.EventID, EventTimeMs: r.EventTime.UnixMilli(), IngestTimeMs: ingest.UnixMilli(), Source: "bench"}
	switch r.Kind {
	case KindIntake:
		topic, key = topics.Intake, r.PatientID
		msg = &pb.MedicationIntake{Meta: meta, DeviceId: r.DeviceID, PatientId: r.PatientID, MedicationId: r.MedicationID,
			IntakeTimeMs: r.IntakeTime.UnixMilli(), Status: r.Status, Dosage: 1, Unit: "tablet", Location: "ward-1", Method: "weight_sensor", Ward: "ward-1"}
	case KindSchedule:
		topic, key = topics.Schedules, topics.ScheduleKey(r.PatientID, r.MedicationID)
		s := proto.Clone(r.Schedule).(*pb.DoseSchedule)
		s.Meta = meta
		msg = s
	case KindMalformed:
		// Bytes that are not a VitalsTelemetry: the consumers must
		// dead-letter them.
		return topics.Vitals, r.DeviceID, nil, []byte{0xff, 0xff, 0xff, 0x0f, 0x01}
	default:
		topic, key = topics.Vitals, r.DeviceID
		v := &pb.VitalsTelemetry{Meta: meta, DeviceId: r.DeviceID, DeviceType: r.DeviceType, PatientId: r.PatientID, Ward: "ward-1"}
		switch r.Kind {
		case KindVitals:
			v.Kind = "vitals"
			v.HeartRate, v.SystolicBp, v.DiastolicBp, v.Spo2, v.Temperature, v.RespiratoryRate = r.HeartRate, r.SystolicBP, r.DiastolicBP, r.SpO2, r.Temperature, r.RespiratoryRate
			v.Present = []string{"heartRate", "systolicBp", "diastolicBp", "spo2", "temperature", "respiratoryRate"}
			v.Quality = "high"
		case KindPump:
			v.Kind = "readings"
			v.MedicationDose, v.AdministrationRate, v.BatteryLevel = r.MedicationDose, r.AdministrationRate, r.BatteryLevel
			v.Present = []string{"medicationDose", "administrationRate", "batteryLevel"}
			v.Quality = "high"
		case KindPumpFailure:
			v.Kind = "alerts"
			v.Severity, v.AlertType, v.Message, v.BatteryLevel = r.Severity, r.AlertType, "occlusion detected", r.BatteryLevel
			v.Present = []string{"severity", "batteryLevel"}
		}
		msg = v
	}
	return topic, key, msg, nil
}

// scheduleJSON renders a schedule for humans (results, demo logs).
func scheduleJSON(s *pb.DoseSchedule) string {
	b, err := protojson.Marshal(s)
	if err != nil {
		return strconv.Quote(err.Error())
	}
	return string(b)
}

var _ = fmt.Sprint
