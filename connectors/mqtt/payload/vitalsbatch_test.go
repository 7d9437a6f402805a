package payload_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"
	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

var batchSrc = payload.Source{Topic: "medical/devices/batch/telemetry"}

func batchOpts() payload.Options {
	o := opts()
	o.MaxBytes = 1 << 20
	o.BatchRecords = true
	return o
}

// encoderAgrees checks the batch encoder against the general path on raw:
// whenever it accepts, the general path yields exactly one record, and that
// record encodes to the same bytes.
func encoderAgrees(t *testing.T, src payload.Source, raw []byte, o payload.Options) bool {
	t.Helper()
	in := bytes.Clone(raw)
	got, ok := payload.EncodeVitalsBatch(src, raw, o)
	if !bytes.Equal(in, raw) {
		t.Fatal("the encoder modified its input")
	}
	if !ok {
		return false
	}
	ref := payload.Decode(payload.Batch, src, raw, payload.GeneralPath(o))
	if len(ref) != 1 || ref[0].Reason != "" {
		t.Fatalf("encoder accepted %q, the general path gives %d outputs (first %v)", raw, len(ref), ref[0])
	}
	want, err := codec.Marshal(ref[0].Msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != ref[0].Topic || got.Key != ref[0].Key || got.Msg != nil {
		t.Fatalf("encoder record %s/%s, general path %s/%s", got.Topic, got.Key, ref[0].Topic, ref[0].Key)
	}
	if !bytes.Equal(got.Value, want) {
		var m pb.VitalsBatch
		_ = proto.Unmarshal(got.Value, &m)
		t.Fatalf("encoder and general path differ on %q:\nencoder %v\ngeneral %v", raw, &m, ref[0].Msg)
	}
	return true
}

func TestVitalsBatchEncoder(t *testing.T) {
	ms := now.Add(-time.Hour).UnixMilli()
	sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", RunID: "r", Batch: 100}
	_, simBatch := sim.Payload(3, 7, now)
	for _, c := range []struct {
		name string
		src  payload.Source
		raw  string
		take bool // the encoder must accept it
	}{
		{"simulated batch", batchSrc, string(simBatch), true},
		{"no ids, batch id", batchSrc, fmt.Sprintf(`{"batchId":1701,"deviceId":"d1","messages":[{"timestamp":%d,"heartRate":70},{"timestamp":%d,"spo2":0,"oxygenSaturation":91}]}`, ms, ms), true},
		{"no ids, no batch id: hashed", batchSrc, fmt.Sprintf(`{"deviceId":"d1","tenant":"h9","messages":[{"timestamp":%d,"heartRate":-0,"severity":9.7,"type":"alerts","alertType":"x","message":"m","quality":"q"}]}`, ms), true},
		{"aliases, nulls, duplicates", batchSrc, fmt.Sprintf(`{"deviceId":"d1","count":1,"messages":[{"timestamp":"%s","ward":"w1","ward":null,"patientId":"p","patientId":null,"systolic":130,"bloodPressure":{"systolic":120},"bloodPressure":{"diastolic":80},"diastolicBp":null,"deviceBattery":50,"id":7,"eventId":"e","x":[1,{"y":null}]}]}`, now.Add(-time.Minute).Format(time.RFC3339)), true},
		{"topic tenant and type", payload.Source{Topic: "medical/h5/pump/batch", Tenant: "h5", DeviceType: "pump"}, fmt.Sprintf(`{"deviceId":"d1","tenant":"ignored","messages":[{"timestamp":%d,"tenant":"also","medicationDose":2.5,"administrationRate":10}]}`, ms), true},
		{"message tenant", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"tenant":"m1","deviceType":"monitor","respiratoryRate":12,"glucose":5.5,"temperature":37}]}`, ms), true},
		{"long ids: lengths past their reserved bytes", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"messageId":"%s","heartRate":1},{"timestamp":%d,"messageId":"%s","ward":"w","patientId":"p","deviceType":"x","spo2":1}]}`, ms, strings.Repeat("m", 200), ms, strings.Repeat("n", 20000)), true},
		{"short readings, varied fields", payload.Source{Topic: "t"}, fmt.Sprintf(`{"batchId":"b","deviceId":"d1","messages":[{"timestamp":%d,"spo2":97},{"timestamp":%d,"spo2":97,"quality":"q"},{"timestamp":%d,"spo2":97,"severity":3},{"timestamp":%d,"type":"alerts","spo2":97},{"timestamp":%d,"spo2":97}]}`, ms, ms, ms, ms, ms), true},
		{"messages before device", batchSrc, fmt.Sprintf(`{"messages":[{"timestamp":%d,"heartRate":1}],"deviceId":"d1"}`, ms), false},
		{"batch id after messages", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"heartRate":1}],"batchId":"b"}`, ms), false},
		{"status part", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"heartRate":1},{"type":"status","online":true}]}`, ms), false},
		{"spoofed part", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"deviceId":"d2","heartRate":1}]}`, ms), false},
		{"no timestamp", batchSrc, `{"deviceId":"d1","messages":[{"heartRate":1}]}`, false},
		{"too old", batchSrc, `{"deviceId":"d1","messages":[{"timestamp":1000,"heartRate":1}]}`, false},
		{"severity out of range", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"severity":11}]}`, ms), false},
		{"count mismatch", batchSrc, fmt.Sprintf(`{"deviceId":"d1","count":2,"messages":[{"timestamp":%d,"heartRate":1}]}`, ms), false},
		{"escape", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"ward":"a\u00e9"}]}`, ms), false},
		{"case variant", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"HeartRate":1}]}`, ms), false},
		{"nested data", batchSrc, fmt.Sprintf(`{"batchId":1701,"deviceId":"d1","messages":[{"type":"vitals","deviceId":"d1","data":{"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"oxygenSaturation":97,"deviceBattery":5},"timestamp":%d},{"systolic":1,"data":{"bloodPressure":{"systolic":2,"diastolic":3},"glucose":3},"vitalSigns":{"glucose":4,"spo2":5,"severity":6},"timestamp":%d}],"count":2}`, ms, ms), true},
		{"nested data replaced, not an object", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"data":{"spo2":1},"data":[1],"vitalSigns":null,"temperature":37,"timestamp":%d}]}`, ms), true},
		{"nested case variant", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"data":{"HEARTRATE":1},"temperature":37,"timestamp":%d}]}`, ms), false},
		{"nested wrong type", batchSrc, fmt.Sprintf(`{"deviceId":"d1","messages":[{"vitalSigns":{"heartRate":"1"},"temperature":37,"timestamp":%d}]}`, ms), false},
		{"topic device differs", payload.Source{Topic: "medical/devices/d2/batch", DeviceID: "d2"}, fmt.Sprintf(`{"deviceId":"d1","messages":[{"timestamp":%d,"heartRate":1}]}`, ms), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if took := encoderAgrees(t, c.src, []byte(c.raw), batchOpts()); took != c.take {
				t.Errorf("encoder took it: %v, want %v", took, c.take)
			}
			// Decode's answer is the general path's either way.
			outs := payload.Decode(payload.Batch, c.src, []byte(c.raw), batchOpts())
			ref := payload.Decode(payload.Batch, c.src, []byte(c.raw), payload.GeneralPath(batchOpts()))
			if len(outs) != len(ref) {
				t.Fatalf("%d outputs, general path %d", len(outs), len(ref))
			}
			for i := range outs {
				a, err := outs[i].Message()
				if err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(a, ref[i].Msg) || outs[i].Topic != ref[i].Topic || outs[i].Reason != ref[i].Reason {
					t.Errorf("output %d: %v, general path %v", i, a, ref[i].Msg)
				}
			}
		})
	}
	if out := payload.Decode(payload.Batch, batchSrc, simBatch, batchOpts()); len(out) != 1 || out[0].Value == nil || out[0].Topic != topics.VitalsBatches {
		t.Errorf("a simulated batch did not take the encoder: %v", out)
	}
}

// FuzzVitalsBatchEncoder: whenever the batch encoder accepts an input, the
// general path gives one record with the same bytes.
func FuzzVitalsBatchEncoder(f *testing.F) {
	ms := now.Add(-time.Hour).UnixMilli()
	sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", RunID: "r", Batch: 3}
	_, b := sim.Payload(1, 1, now)
	f.Add(uint8(0), b)
	for _, s := range []string{
		`{"batchId":1701,"deviceId":"d1","messages":[{"timestamp":%d,"heartRate":70},{"timestamp":%d,"spo2":0,"oxygenSaturation":91}]}`,
		`{"deviceId":"d1","tenant":"h9","messages":[{"timestamp":%d,"heartRate":-0,"severity":9.7,"type":"alerts","alertType":"x"},{"timestamp":%d}]}`,
		`{"deviceId":"d1","count":2,"messages":[{"timestamp":%d,"ward":"w1","ward":null,"bloodPressure":{"systolic":120},"bloodPressure":null,"id":7},{"timestamp":"%d","type":"readings","glucose":1}]}`,
		`{"deviceId":"d1","messages":[{"timestamp":%d,"deviceId":null,"deviceId":"d1","eventId":"","messageId":1e2},{"timestamp":%d,"x":{"y":[true,false,null]},"glucose":1}]}`,
		`{"batchId":1701,"deviceId":"d1","messages":[{"type":"vitals","deviceId":"d1","data":{"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"oxygenSaturation":97},"timestamp":%d},{"heartRate":1,"data":{"heartRate":2,"glucose":3},"vitalSigns":{"glucose":4,"spo2":5,"severity":6},"timestamp":%d}],"count":2}`,
		`{"deviceId":"d1","messages":[{"data":{"spo2":1},"data":"x","vitalSigns":{"bloodPressure":{"systolic":1},"bloodPressure":null,"x":[{}]},"temperature":37,"timestamp":%d},{"data":{"deviceBattery":50},"timestamp":%d}]}`,
	} {
		f.Add(uint8(0), []byte(fmt.Sprintf(s, ms, ms)))
		f.Add(uint8(1), []byte(fmt.Sprintf(s, ms, ms)))
	}
	srcs := []payload.Source{batchSrc, {Topic: "medical/h5/pump/d1/batch", Tenant: "h5", DeviceType: "pump", DeviceID: "d1"}}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		encoderAgrees(t, srcs[int(which)%len(srcs)], raw, batchOpts())
	})
}
