package payload_test

import (
	"fmt"
	"google.golang.org/protobuf/proto"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func opts() payload.Options {
	// Tenants: the tenants the tests' payloads name.
	return payload.Options{Tenant: "t0", Tenants: []string{"h2", "h9", "m1"}, MaxBytes: 1024, MaxAge: 30 * 24 * time.Hour, MaxSkew: 10 * time.Minute, Now: now}
}

func TestDecode(t *testing.T) {
	ms := now.Add(-time.Hour).UnixMilli()
	intake := payload.Source{Topic: "medical/devices/pc-1/medication_intake", DeviceID: "pc-1"}
	vit := payload.Source{Topic: "medical/h1/med-pump/d1/vitals", Tenant: "h1", DeviceType: "med-pump", DeviceID: "d1", Kind: "vitals"}
	status := payload.Source{Topic: "medical/devices/d1/status", DeviceID: "d1"}
	cases := []struct {
		name   string
		typ    payload.Type
		src    payload.Source
		body   string
		topic  string
		key    string
		reason payload.Reason
		check  func(t *testing.T, o payload.Out)
	}{
		{name: "intake iso", typ: payload.Intake, src: intake, topic: topics.Intake, key: "p1",
			body: `{"messageId":"m1","deviceId":"pc-1","patientId":"p1","medicationId":"med1","intakeTime":"2026-03-10T11:00:00.000Z","status":"Taken","dosage":2,"unit":"tablet","verificationMethod":"rfid","timestamp":1}`,
			check: func(t *testing.T, o payload.Out) {
				m := o.Msg.(*pb.MedicationIntake)
				if m.IntakeTimeMs != ms || m.Meta.EventTimeMs != ms || m.Status != "taken" || m.Dosage != 2 || m.Method != "rfid" || m.Meta.EventId != "m1" || m.Meta.Tenant != "t0" {
					t.Errorf("intake = %v", m)
				}
			}},
		{name: "intake epoch ms", typ: payload.Intake, src: intake, topic: topics.Intake, key: "p1",
			body: fmt.Sprintf(`{"deviceId":"pc-1","patientId":"p1","medicationId":"med1","intakeTime":%d,"status":"taken"}`, ms),
			check: func(t *testing.T, o payload.Out) {
				m := o.Msg.(*pb.MedicationIntake)
				if m.IntakeTimeMs != ms || !strings.HasPrefix(m.Meta.EventId, "h-") {
					t.Errorf("intake = %v", m)
				}
			}},
		{name: "intake epoch seconds string", typ: payload.Intake, src: intake, topic: topics.Intake, key: "p1",
			body: fmt.Sprintf(`{"deviceId":"pc-1","patientId":"p1","medicationId":"med1","intakeTime":"%d","status":"taken"}`, ms/1000),
			check: func(t *testing.T, o payload.Out) {
				if m := o.Msg.(*pb.MedicationIntake); m.IntakeTimeMs != ms {
					t.Errorf("intake time %d, want %d", m.IntakeTimeMs, ms)
				}
			}},
		{name: "intake missing fields", typ: payload.Intake, src: intake, reason: payload.ReasonMissingField,
			body: `{"deviceId":"pc-1","patientId":"p1"}`,
			check: func(t *testing.T, o payload.Out) {
				dl := o.Msg.(*pb.DeadLetter)
				if !strings.Contains(dl.Error, "medicationId, intakeTime, status") {
					t.Errorf("error %q does not name the missing fields", dl.Error)
				}
			}},
		{name: "intake bad time", typ: payload.Intake, src: intake, reason: payload.ReasonInvalidValue,
			body: `{"deviceId":"pc-1","patientId":"p1","medicationId":"m","intakeTime":"yesterday","status":"taken"}`},
		{name: "intake too old", typ: payload.Intake, src: intake, reason: payload.ReasonTimestamp,
			body: `{"deviceId":"pc-1","patientId":"p1","medicationId":"m","intakeTime":"2025-01-01T00:00:00Z","status":"taken"}`},
		{name: "spoofed", typ: payload.Intake, src: intake, reason: payload.ReasonSpoofedDevice,
			body: fmt.Sprintf(`{"deviceId":"pc-2","patientId":"p1","medicationId":"m","intakeTime":%d,"status":"taken"}`, ms)},
		{name: "malformed", typ: payload.Telemetry, src: vit, reason: payload.ReasonMalformedJSON, body: `{"deviceId":"d1",`},
		{name: "not an object", typ: payload.Telemetry, src: vit, reason: payload.ReasonInvalidValue, body: `[1,2]`},
		{name: "wrong type", typ: payload.Telemetry, src: vit, reason: payload.ReasonInvalidValue, body: `{"deviceId":"d1","heartRate":"fast"}`},
		{name: "oversize", typ: payload.Telemetry, src: vit, reason: payload.ReasonOversize, body: `{"x":"` + strings.Repeat("a", 1100) + `"}`},
		{name: "telemetry without timestamp", typ: payload.Telemetry, src: vit, reason: payload.ReasonMissingField, body: `{"deviceId":"d1","heartRate":80}`},
		{name: "telemetry without device", typ: payload.Telemetry, src: vit, reason: payload.ReasonMissingField, body: fmt.Sprintf(`{"timestamp":%d,"heartRate":80}`, ms)},
		{name: "severity out of range", typ: payload.Telemetry, src: vit, reason: payload.ReasonInvalidValue, body: fmt.Sprintf(`{"deviceId":"d1","timestamp":%d,"severity":11}`, ms)},
		{name: "future", typ: payload.Telemetry, src: vit, reason: payload.ReasonTimestamp, body: fmt.Sprintf(`{"deviceId":"d1","timestamp":%d}`, now.Add(time.Hour).UnixMilli())},
		{name: "vitals nested bp", typ: payload.Telemetry, src: vit, topic: topics.Vitals, key: "d1",
			body: fmt.Sprintf(`{"deviceId":"d1","timestamp":%d,"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"oxygenSaturation":97,"patientId":"p9"}`, ms),
			check: func(t *testing.T, o payload.Out) {
				v := o.Msg.(*pb.VitalsTelemetry)
				if v.HeartRate != 72 || v.SystolicBp != 120 || v.DiastolicBp != 80 || v.Spo2 != 97 || v.PatientId != "p9" || v.Kind != "vitals" ||
					v.DeviceType != "med-pump" || v.Meta.Tenant != "h1" || v.Meta.EventTimeMs != ms || len(v.Present) != 4 {
					t.Errorf("vitals = %v", v)
				}
			}},
		{name: "vitals flat bp", typ: payload.Telemetry, src: vit, topic: topics.Vitals, key: "d1",
			body: fmt.Sprintf(`{"deviceId":"d1","timestamp":"%s","systolic":130,"diastolic":85,"spo2":95}`, now.Format(time.RFC3339)),
			check: func(t *testing.T, o payload.Out) {
				v := o.Msg.(*pb.VitalsTelemetry)
				if v.SystolicBp != 130 || v.DiastolicBp != 85 || v.Spo2 != 95 || v.Meta.EventTimeMs != now.UnixMilli() {
					t.Errorf("vitals = %v", v)
				}
			}},
		{name: "pump alert", typ: payload.Telemetry, src: payload.Source{Topic: "medical/h1/med-pump/d1/alerts", DeviceID: "d1", Kind: "alerts"}, topic: topics.Vitals, key: "d1",
			body: fmt.Sprintf(`{"deviceId":"d1","timestamp":%d,"alertType":"PUMP_FAILURE","severity":8,"medicationDose":-1,"administrationRate":5}`, ms),
			check: func(t *testing.T, o payload.Out) {
				v := o.Msg.(*pb.VitalsTelemetry)
				if v.Kind != "alerts" || v.AlertType != "PUMP_FAILURE" || v.Severity != 8 || v.MedicationDose != -1 || v.AdministrationRate != 5 {
					t.Errorf("alert = %v", v)
				}
			}},
		{name: "status word", typ: payload.Status, src: status, topic: topics.DeviceStatus, key: "d1", body: `offline`,
			check: func(t *testing.T, o payload.Out) {
				if s := o.Msg.(*pb.DeviceStatus); s.Online || s.Status != "offline" || s.Meta.EventTimeMs != now.UnixMilli() {
					t.Errorf("status = %v", s)
				}
			}},
		{name: "status json", typ: payload.Status, src: status, topic: topics.DeviceStatus, key: "d1",
			body: fmt.Sprintf(`{"deviceId":"d1","timestamp":%d,"batteryLevel":85,"firmwareVersion":"2.1.0","state":{"reported":{"medicationFlowRate":5.0}}}`, ms),
			check: func(t *testing.T, o payload.Out) {
				s := o.Msg.(*pb.DeviceStatus)
				if !s.Online || s.BatteryLevel != 85 || s.FirmwareVersion != "2.1.0" || s.Reported.Fields["medicationFlowRate"].GetNumberValue() != 5 || s.Meta.EventTimeMs != ms {
					t.Errorf("status = %v", s)
				}
			}},
		{name: "status json flat reported", typ: payload.Status, src: status, topic: topics.DeviceStatus, key: "d1",
			body: `{"status":"online","batteryLevel":50,"reminderEnabled":true}`,
			check: func(t *testing.T, o payload.Out) {
				s := o.Msg.(*pb.DeviceStatus)
				if !s.Online || s.Reported.Fields["reminderEnabled"] == nil || s.Reported.Fields["deviceId"] != nil {
					t.Errorf("status = %v", s)
				}
			}},
		{name: "schedule", typ: payload.Schedule, src: payload.Source{Topic: "medical/devices/pc-1/medication_schedule", DeviceID: "pc-1"}, topic: topics.Schedules, key: "p1|m1",
			body: `{"deviceId":"pc-1","patientId":"p1","medicationId":"m1","times":["08:00","20:00"],"timezone":"Europe/Berlin","version":3}`,
			check: func(t *testing.T, o payload.Out) {
				s := o.Msg.(*pb.DoseSchedule)
				if len(s.Times) != 2 || s.Version != 3 || s.Timezone != "Europe/Berlin" {
					t.Errorf("schedule = %v", s)
				}
			}},
		{name: "schedule bad time", typ: payload.Schedule, src: payload.Source{Topic: "x", DeviceID: "pc-1"}, reason: payload.ReasonInvalidValue,
			body: `{"deviceId":"pc-1","patientId":"p1","medicationId":"m1","times":["8am"]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			outs := payload.Decode(c.typ, c.src, []byte(c.body), opts())
			if len(outs) != 1 {
				t.Fatalf("got %d outputs, want 1", len(outs))
			}
			o := outs[0]
			if c.reason != "" {
				dl, ok := o.Msg.(*pb.DeadLetter)
				if o.Reason != c.reason || !ok || dl.Reason != string(c.reason) || o.Topic != topics.DeadLetters {
					t.Fatalf("got reason %q (%v), want %q", o.Reason, o.Msg, c.reason)
				}
				if string(dl.Raw) != c.body || dl.SourceTopic != c.src.Topic || dl.Meta.IngestTimeMs != now.UnixMilli() || dl.Error == "" {
					t.Errorf("dead letter = %v", dl)
				}
			} else {
				if o.Reason != "" {
					t.Fatalf("rejected: %v", o.Msg)
				}
				if o.Topic != c.topic || o.Key != c.key {
					t.Errorf("topic/key = %s/%s, want %s/%s", o.Topic, o.Key, c.topic, c.key)
				}
			}
			if c.check != nil {
				c.check(t, o)
			}
		})
	}
}

func TestDecodeBatch(t *testing.T) {
	src := payload.Source{Topic: "medical/devices/batch/telemetry"}
	ms := now.Add(-48 * time.Hour).UnixMilli() // an offline buffer: old is fine
	body := fmt.Sprintf(`{"batchId":1701234567000,"deviceId":"d1","count":4,"tenant":"h2","messages":[
		{"timestamp":%d,"heartRate":70},
		{"timestamp":%d,"heartRate":70},
		{"type":"medication_intake","patientId":"p1","medicationId":"m1","intakeTime":%d,"status":"taken","messageId":"in-1"},
		{"deviceId":"d2","timestamp":%d}]}`, ms, ms, ms, ms)
	outs := payload.Decode(payload.Batch, src, []byte(body), opts())
	if len(outs) != 4 {
		t.Fatalf("got %d outputs, want 4", len(outs))
	}
	v0, v1 := outs[0].Msg.(*pb.VitalsTelemetry), outs[1].Msg.(*pb.VitalsTelemetry)
	if v0.Meta.EventId == v1.Meta.EventId {
		t.Error("two equal readings in one batch share an event id")
	}
	if v0.BatchId != "1701234567000" || v0.DeviceId != "d1" || v0.Meta.EventTimeMs != ms || v0.Meta.Tenant != "h2" || outs[0].Key != "d1" {
		t.Errorf("part 0 = %v", v0)
	}
	if in, ok := outs[2].Msg.(*pb.MedicationIntake); !ok || in.Meta.EventId != "in-1" || outs[2].Topic != topics.Intake || outs[2].Key != "p1" {
		t.Errorf("part 2 = %v", outs[2])
	}
	if outs[3].Reason != payload.ReasonSpoofedDevice {
		t.Errorf("part 3 reason %q, want spoofed_device", outs[3].Reason)
	}
	// Redelivery yields the same ids.
	again := payload.Decode(payload.Batch, src, []byte(body), opts())
	if again[0].Msg.(*pb.VitalsTelemetry).Meta.EventId != v0.Meta.EventId {
		t.Error("event ids are not stable across redeliveries")
	}

	// BatchRecords: the two readings become one VitalsBatch record where
	// the first was, equal reading by reading; the intake and the dead
	// letter are unchanged.
	bo := opts()
	bo.BatchRecords = true
	joined := payload.Decode(payload.Batch, src, []byte(body), bo)
	if len(joined) != 3 || joined[0].Topic != topics.VitalsBatches || joined[0].Key != "d1" || joined[1].Topic != topics.Intake || joined[2].Reason != payload.ReasonSpoofedDevice {
		t.Fatalf("joined outputs %v", joined)
	}
	vb := joined[0].Msg.(*pb.VitalsBatch)
	if len(vb.Readings) != 2 || !proto.Equal(vb.Readings[0], v0) || !proto.Equal(vb.Readings[1], v1) {
		t.Errorf("batch readings %v, want %v and %v", vb.Readings, v0, v1)
	}
	if vb.DeviceId != "d1" || vb.BatchId != "1701234567000" || vb.Meta.EventId != "batch|d1/1701234567000" || vb.Meta.Tenant != "h2" {
		t.Errorf("batch envelope %v", vb)
	}
	if !proto.Equal(joined[1].Msg, outs[2].Msg) {
		t.Errorf("intake part changed by batch_records: %v", joined[1].Msg)
	}

	for name, c := range map[string]struct {
		body   string
		reason payload.Reason
	}{
		"count mismatch": {`{"batchId":"b","deviceId":"d1","count":2,"messages":[{"timestamp":1}]}`, payload.ReasonBatchMalformed},
		"empty":          {`{"batchId":"b","deviceId":"d1","messages":[]}`, payload.ReasonBatchMalformed},
		"no device":      {`{"batchId":"b","messages":[{"timestamp":1}]}`, payload.ReasonMissingField},
		"malformed":      {`{"batchId":"b",`, payload.ReasonMalformedJSON},
		"messages type":  {`{"batchId":"b","deviceId":"d1","messages":{}}`, payload.ReasonBatchMalformed},
	} {
		outs := payload.Decode(payload.Batch, src, []byte(c.body), opts())
		if len(outs) != 1 || outs[0].Reason != c.reason {
			t.Errorf("%s: got %v, want one dead letter %s", name, outs, c.reason)
		}
	}
}

func TestEventID(t *testing.T) {
	a := payload.EventID("", "d1", "t", []byte("x"))
	if a != payload.EventID("", "d1", "t", []byte("x")) || a == payload.EventID("", "d2", "t", []byte("x")) || a == payload.EventID("", "d1", "t2", []byte("x")) {
		t.Error("hash ids must be stable and depend on device, topic and payload")
	}
	if payload.EventID("m-1", "d1", "t", nil) != "m-1" {
		t.Error("a payload id must win")
	}
}
