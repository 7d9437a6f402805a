package payload_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// FuzzDecode: any bytes on any route type yield at least one output; every
// output is a catalog record that encodes, and a dead letter of a whole
// payload keeps the raw bytes.
func FuzzDecode(f *testing.F) {
	ms := now.UnixMilli()
	for _, s := range []string{
		`{"deviceId":"d1","patientId":"p1","medicationId":"m1","intakeTime":"2026-03-10T11:00:00Z","status":"taken"}`,
		fmt.Sprintf(`{"deviceId":"d1","timestamp":%d,"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80}}`, ms),
		fmt.Sprintf(`{"batchId":"b","deviceId":"d1","count":2,"messages":[{"timestamp":%d},{"type":"status","online":false}]}`, ms),
		`online`, `{"status":"offline","reported":{"a":1}}`, `{"deviceId":"d1","times":["08:00"],"patientId":"p","medicationId":"m"}`,
		fmt.Sprintf(`{"type":"vitals","deviceId":"d1","data":{"heartRate":72,"spo2":97},"timestamp":%d}`, ms),
		fmt.Sprintf(`{"batchId":1,"deviceId":"d1","messages":[{"type":"vitals","data":{"heartRate":72},"timestamp":%d}],"count":1}`, ms),
		`{"timestamp":"1e400"}`, `{"intakeTime":-1}`, `null`, `""`, `{"messageId":{}}`, "\xff\xfe", `{"deviceId":"d1","timestamp":"2026-03-10 11:00:00"}`,
	} {
		for typ := range 5 {
			f.Add(uint8(typ), []byte(s))
		}
	}
	types := []payload.Type{payload.Intake, payload.Schedule, payload.Status, payload.Telemetry, payload.Batch}
	f.Fuzz(func(t *testing.T, typ uint8, raw []byte) {
		typ %= uint8(len(types))
		src := payload.Source{Topic: "medical/x/y/d1/vitals", DeviceID: "d1", Kind: "vitals"}
		if types[typ] == payload.Batch {
			src = payload.Source{Topic: "medical/devices/batch/telemetry"}
		}
		in := bytes.Clone(raw)
		outs := payload.Decode(types[typ], src, raw, opts())
		if len(outs) == 0 {
			t.Fatal("no output: the input would be dropped silently")
		}
		if !bytes.Equal(in, raw) {
			t.Fatal("Decode modified its input")
		}
		for _, o := range outs {
			if _, ok := topics.Lookup(o.Topic); !ok {
				t.Fatalf("output topic %q is not in the catalog", o.Topic)
			}
			if _, err := codec.Marshal(o.Msg); err != nil {
				t.Fatalf("output does not encode: %v", err)
			}
			if dl, ok := o.Msg.(*pb.DeadLetter); ok {
				if o.Reason == "" || dl.Reason != string(o.Reason) {
					t.Fatalf("dead letter without reason: %v", dl)
				}
				if len(outs) == 1 && types[typ] != payload.Batch && !bytes.Equal(dl.Raw, raw) {
					t.Fatal("dead letter lost the raw bytes")
				}
			} else if o.Reason != "" {
				t.Fatalf("record with a reason: %v", o)
			}
		}
		if types[typ] == payload.Batch && len(outs) > 1 {
			var b struct{ Messages []json.RawMessage }
			if json.Unmarshal(raw, &b) == nil && len(b.Messages) != len(outs) {
				t.Fatalf("batch of %d messages gave %d outputs", len(b.Messages), len(outs))
			}
		}
	})
}

// FuzzFastBody is a differential test: whenever the hand-written fast path
// accepts an input, encoding/json (the reference) must accept it too and
// produce the same body; and the fast path must accept the payloads devices
// actually send.
func FuzzFastBody(f *testing.F) {
	for _, s := range []string{
		`{"messageId":"m1","deviceId":"d1","timestamp":1700000000000,"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"spo2":97.5,"x":[1,{"y":null}],"online":true}`,
		`{"messageId":17,"deviceId":"d1","intakeTime":"2026-03-10T11:00:00Z","status":"taken","dosage":1e0,"unit":null}`,
		`{"DEVICEID":"d1"}`, `{"deviceId":"d\u00e9"}`, `{"heartRate":"72"}`, `{"a":1,}`, `{"messageId":1e400}`, `{"bloodPressure":{"Systolic":1}}`,
		` {"deviceId" : "d1" , "severity":-0.5 } `, `{"deviceId":"d1"}x`, `{"timestamp":null,"bloodPressure":null}`,
		`{"type":"vitals","deviceId":"d1","data":{"heartRate":72,"bloodPressure":{"systolic":120}},"timestamp":1700000000000}`,
		`{"data":null,"vitalSigns":[1,{"heartRate":2}],"data":"x","Data":{}}`, `{"vitalSigns":{"heartRate":60,"oxygenSat":90},"heartRate":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast, ref payload.FastDecodeResult
		okFast := payload.FastDecode(raw, &fast)
		okRef := payload.RefDecode(raw, &ref)
		if okFast && !okRef {
			t.Fatalf("fast path accepted what encoding/json rejects: %q", raw)
		}
		if okFast && !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast path and encoding/json differ on %q:\nfast %+v\nref  %+v", raw, fast, ref)
		}
	})
}

// FuzzFastValues holds the fast path of the nested data and vitalSigns
// objects to encoding/json.
func FuzzFastValues(f *testing.F) {
	for _, s := range []string{
		`{"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"oxygenSaturation":97,"temperature":36.8,"respiratoryRate":14}`,
		`{"medicationDose":2.5,"administrationRate":10,"batteryLevel":80,"deviceBattery":null,"severity":3,"deviceId":"x"}`,
		`{"HeartRate":1}`, `{"bloodPressure":{"Systolic":1},"bloodPressure":null}`, `{"spo2":"97"}`, `{"x":{"y":[1,"\u00e9"]}}`,
		`{"bloodPressure":{"systolic":1},"bloodPressure":{"diastolic":2}}`, ` { } `, `{"glucose":1e400}`, `{}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if ok, diff := payload.FastValuesAgrees(raw); ok && diff != "" {
			t.Fatalf("fast path of nested values vs encoding/json on %q: %s", raw, diff)
		}
	})
}

func TestFastPathCoversDevicePayloads(t *testing.T) {
	sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", RunID: "r"}
	_, single := sim.Payload(1, 1, now)
	var r payload.FastDecodeResult
	if !payload.FastDecode(single, &r) {
		t.Errorf("the fast path rejects a simulated reading: %s", single)
	}
	sim.Batch = 3
	_, batch := sim.Payload(1, 1, now)
	if !payload.FastBatch(batch) {
		t.Errorf("the fast path rejects a simulated batch: %s", batch)
	}
}

// FuzzFastBatch holds the one-pass batch decoder to encoding/json: the
// envelope, every raw message and every message it decoded on the way.
func FuzzFastBatch(f *testing.F) {
	sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", RunID: "r", Batch: 3}
	_, batch := sim.Payload(1, 1, now)
	f.Add(batch)
	for _, s := range []string{
		`{"batchId":"b1","deviceId":"d1","count":2,"messages":[{"type":"vitals","heartRate":70},{"type":"vitals","Heartrate":1}]}`,
		`{"batchId":7,"deviceId":"d1","messages":[ {"type":"status","online":true} , 5, "x", {"a":[1,{"b":null}]} ]}`,
		`{"deviceId":"d1","messages":[{"type":"vitals","note":"\u00e9"},{"type":"vitals","heartRate":1e400}]}`,
		`{"deviceId":"d1","messages":[]}`, `{"deviceId":"d1","messages":[{"x":1},]}`, `{"messages":[{}]}x`,
		`{"batchId":1701,"deviceId":"d1","messages":[{"type":"vitals","deviceId":"d1","data":{"heartRate":72},"timestamp":1},{"vitalSigns":{"spo2":9},"data":null}],"count":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if ok, diff := payload.FastBatchAgrees(raw); ok && diff != "" {
			t.Fatalf("fast batch path vs encoding/json on %q: %s", raw, diff)
		}
	})
}
