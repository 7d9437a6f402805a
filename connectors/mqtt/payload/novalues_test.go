package payload_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"
	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/schemas/topics"
)

// A telemetry reading without a single measured value landed as an empty
// row (a reading of nothing, stamped with the device's time). It is a dead
// letter, no_values; a partial reading (a heart rate alone), a pump's
// reading, a battery level and an alert without values still pass.
func TestReadingWithoutValues(t *testing.T) {
	ms := now.Add(-time.Hour).UnixMilli()
	src := func(kind string) payload.Source {
		return payload.Source{Topic: "medical/h1/monitor/d1/" + kind, Tenant: "h1", DeviceType: "monitor", DeviceID: "d1", Kind: kind}
	}
	for _, c := range []struct {
		name, kind, body string
		reason           payload.Reason
	}{
		{"nothing", "vitals", `{"deviceId":"d1","timestamp":%d}`, payload.ReasonNoValues},
		{"only metadata", "vitals", `{"deviceId":"d1","patientId":"p1","quality":"high","ward":"w1","timestamp":%d}`, payload.ReasonNoValues},
		{"nulls", "readings", `{"deviceId":"d1","heartRate":null,"bloodPressure":{},"timestamp":%d}`, payload.ReasonNoValues},
		{"empty data", "vitals", `{"type":"vitals","deviceId":"d1","data":{},"timestamp":%d}`, payload.ReasonNoValues},
		{"data not an object", "vitals", `{"type":"vitals","deviceId":"d1","data":"72","timestamp":%d}`, payload.ReasonNoValues},
		{"alert without anything", "alerts", `{"deviceId":"d1","timestamp":%d}`, payload.ReasonNoValues},
		{"heart rate alone", "vitals", `{"deviceId":"d1","heartRate":72,"timestamp":%d}`, ""},
		{"zero is a value", "vitals", `{"deviceId":"d1","spo2":0,"timestamp":%d}`, ""},
		{"nested heart rate alone", "vitals", `{"deviceId":"d1","data":{"heartRate":72},"timestamp":%d}`, ""},
		{"pump reading", "readings", `{"deviceId":"d1","medicationDose":2.5,"administrationRate":10,"timestamp":%d}`, ""},
		{"battery only", "readings", `{"deviceId":"d1","batteryLevel":80,"timestamp":%d}`, ""},
		{"alert type only", "alerts", `{"deviceId":"d1","alertType":"PUMP_FAILURE","timestamp":%d}`, ""},
		{"alert message only", "alerts", `{"deviceId":"d1","message":"occlusion","timestamp":%d}`, ""},
		{"severity only", "alerts", `{"deviceId":"d1","severity":0,"timestamp":%d}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := []byte(fmt.Sprintf(c.body, ms))
			outs := payload.Decode(payload.Telemetry, src(c.kind), raw, opts())
			if len(outs) != 1 || outs[0].Reason != c.reason {
				t.Fatalf("outputs %v; want one with reason %q", outs, c.reason)
			}
			if c.reason == "" && outs[0].Topic != topics.Vitals {
				t.Errorf("topic %s; want %s", outs[0].Topic, topics.Vitals)
			}
			// Inside a batch: the empty reading alone is dead-lettered, with
			// the batch encoder or without.
			part := fmt.Sprintf(`{"type":%q,`, c.kind) + string(raw[1:])
			batch := []byte(fmt.Sprintf(`{"batchId":"b","deviceId":"d1","messages":[{"type":%q,"heartRate":60,"timestamp":%d},%s]}`, c.kind, ms, part))
			for _, o := range []payload.Options{batchOpts(), payload.GeneralPath(batchOpts())} {
				outs := payload.Decode(payload.Batch, batchSrc, batch, o)
				var reasons []payload.Reason
				for _, out := range outs {
					if out.Reason != "" {
						reasons = append(reasons, out.Reason)
					}
				}
				if c.reason == "" && len(reasons) != 0 || c.reason != "" && (len(reasons) != 1 || reasons[0] != c.reason) {
					t.Errorf("batch: rejections %v; want [%s]", reasons, c.reason)
				}
			}
			encoderAgrees(t, batchSrc, batch, batchOpts())
		})
	}
	if got := fmt.Sprint(payload.Reasons()); !containsReason(payload.Reasons(), payload.ReasonNoValues) {
		t.Errorf("Reasons() %s lacks no_values (metric pre-registration)", got)
	}
}

func containsReason(rs []payload.Reason, r payload.Reason) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// The simulated devices' readings have values: none is dead-lettered.
func TestSimulatedReadingsHaveValues(t *testing.T) {
	for _, batch := range []int{0, 5} {
		sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", RunID: "r", Batch: batch}
		topic, raw := sim.Payload(2, 3, now)
		typ, src := payload.Telemetry, payload.Source{Topic: topic, Tenant: "h1", DeviceType: "monitor", DeviceID: devicesim.DeviceID("", 2), Kind: "vitals"}
		if batch > 0 {
			typ, src = payload.Batch, batchSrc
		}
		for _, o := range payload.Decode(typ, src, raw, batchOpts()) {
			if o.Reason != "" {
				t.Errorf("simulated %s: dead letter %s", topic, o.Reason)
			}
		}
	}
}
