package devicesim

import (
	"encoding/json"
	"testing"
	"time"
)

// payloadReflect is Payload through json.Marshal of maps, as it was
// written before appendReading: the reference it is held to.
func (o Options) payloadReflect(d, i int, now time.Time) (string, []byte) {
	dev := DeviceID(o.ClientPrefix, d)
	ts := now.UnixMilli()
	if o.Batch > 0 {
		msgs := make([]map[string]any, o.Batch)
		for j := range msgs {
			msgs[j] = reading(o.RunID, dev, d, i, j, ts)
		}
		b, _ := json.Marshal(map[string]any{"batchId": MessageID(o.RunID, d, i, -1), "deviceId": dev, "messages": msgs, "count": o.Batch})
		return o.TopicRoot + "medical/devices/batch/telemetry", b
	}
	b, _ := json.Marshal(reading(o.RunID, dev, d, i, -1, ts))
	return o.TopicRoot + "medical/" + o.Tenant + "/" + o.DeviceType + "/" + dev + "/vitals", b
}

func reading(runID string, dev string, d, i, j int, ts int64) map[string]any {
	return map[string]any{
		"messageId": MessageID(runID, d, i, j), "deviceId": dev, "timestamp": ts,
		"heartRate": 60 + (i+j)%40, "bloodPressure": map[string]int{"systolic": 110 + i%30, "diastolic": 70 + i%15},
		"spo2": 97, "temperature": 36.8, "batteryLevel": 80,
	}
}

// TestPayloadIsJSONMarshal: Payload writes exactly the bytes json.Marshal
// wrote of the same maps, single and batched, also for ids json escapes.
func TestPayloadIsJSONMarshal(t *testing.T) {
	now := time.UnixMilli(1_764_000_000_123)
	for _, o := range []Options{
		{Tenant: "h1", DeviceType: "monitor", RunID: "r"},
		{Tenant: "h1", DeviceType: "monitor", RunID: "run-1764", ClientPrefix: "b-abc-", Batch: 3},
		{Tenant: "h1", DeviceType: "monitor", RunID: "<r&\"x\">", ClientPrefix: "é-", Batch: 2},
		{Tenant: "h1", DeviceType: "monitor", RunID: "r", TopicRoot: "it/x/", Batch: 100},
	} {
		for d := range 3 {
			for i := range 50 {
				gt, gb := o.Payload(d, i*7, now)
				wt, wb := o.payloadReflect(d, i*7, now)
				if gt != wt || string(gb) != string(wb) {
					t.Fatalf("%+v device %d publish %d:\n%s %s\nwant\n%s %s", o, d, i*7, gt, gb, wt, wb)
				}
			}
		}
	}
}

func BenchmarkPayload(b *testing.B) {
	o := Options{Tenant: "h1", DeviceType: "monitor", RunID: "bench", Batch: 100}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o.Payload(i%100, i, now)
	}
}
