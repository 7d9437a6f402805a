package payload_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// readings returns the vitals readings among outs, whether single records
// or inside a VitalsBatch (encoded by the batch encoder or not).
func readings(t *testing.T, outs []payload.Out) []*pb.VitalsTelemetry {
	t.Helper()
	var rs []*pb.VitalsTelemetry
	for _, o := range outs {
		if o.Reason != "" {
			t.Errorf("dead letter %s: %v", o.Reason, o.Msg.(*pb.DeadLetter).Error)
			continue
		}
		m, err := o.Message()
		if err != nil {
			t.Fatal(err)
		}
		switch v := m.(type) {
		case *pb.VitalsTelemetry:
			rs = append(rs, v)
		case *pb.VitalsBatch:
			rs = append(rs, v.Readings...)
		}
	}
	return rs
}

// The seed's devices (OfflineBuffer's sendVitalData, flushed later and
// batched by MessageBatcher) publish {type:'vitals', deviceId, data:
// {...vital values...}, timestamp}. The decoder ignored "data": the reading
// landed with no values and no dead letter. The values nested in "data"
// (and in "vitalSigns", the seed's IoT rules' name for them) are a
// reading's values, under the same names as at the top level, where the
// top level wins.
func TestNestedVitalValues(t *testing.T) {
	ms := now.Add(-time.Hour).UnixMilli()
	vit := payload.Source{Topic: "medical/h1/monitor/d1/vitals", Tenant: "h1", DeviceType: "monitor", DeviceID: "d1", Kind: "vitals"}
	seed := fmt.Sprintf(`{"type":"vitals","deviceId":"d1","data":{"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"oxygenSaturation":97,"temperature":36.8,"respiratoryRate":14},"timestamp":%d}`, ms)
	want := &pb.VitalsTelemetry{HeartRate: 72, SystolicBp: 120, DiastolicBp: 80, Spo2: 97, Temperature: 36.8, RespiratoryRate: 14,
		Present: []string{"heartRate", "systolicBp", "diastolicBp", "spo2", "temperature", "respiratoryRate"}}
	same := func(t *testing.T, got, want *pb.VitalsTelemetry) {
		t.Helper()
		g := proto.Clone(got).(*pb.VitalsTelemetry)
		g.Meta, g.DeviceId, g.DeviceType, g.Kind, g.BatchId, g.PatientId = nil, "", "", "", "", ""
		if !proto.Equal(g, want) {
			t.Errorf("reading values %v; want %v", g, want)
		}
	}
	t.Run("single", func(t *testing.T) {
		rs := readings(t, payload.Decode(payload.Telemetry, vit, []byte(seed), opts()))
		if len(rs) != 1 {
			t.Fatalf("%d readings; want 1", len(rs))
		}
		same(t, rs[0], want)
	})
	t.Run("top level wins", func(t *testing.T) {
		raw := fmt.Sprintf(`{"deviceId":"d1","heartRate":90,"systolicBp":130,"data":{"heartRate":72,"bloodPressure":{"systolic":120,"diastolic":80},"glucose":5.5},"vitalSigns":{"heartRate":60,"glucose":9,"spo2":95},"timestamp":%d}`, ms)
		rs := readings(t, payload.Decode(payload.Telemetry, vit, []byte(raw), opts()))
		if len(rs) != 1 {
			t.Fatalf("%d readings; want 1", len(rs))
		}
		same(t, rs[0], &pb.VitalsTelemetry{HeartRate: 90, SystolicBp: 130, DiastolicBp: 80, Spo2: 95, Glucose: 5.5,
			Present: []string{"heartRate", "systolicBp", "diastolicBp", "spo2", "glucose"}})
	})
	t.Run("pump values in data", func(t *testing.T) {
		src := payload.Source{Topic: "medical/h1/med-pump/p1/readings", Tenant: "h1", DeviceType: "med-pump", DeviceID: "p1", Kind: "readings"}
		raw := fmt.Sprintf(`{"deviceId":"p1","data":{"medicationDose":2.5,"administrationRate":10,"batteryLevel":80},"timestamp":%d}`, ms)
		rs := readings(t, payload.Decode(payload.Telemetry, src, []byte(raw), opts()))
		if len(rs) != 1 {
			t.Fatalf("%d readings; want 1", len(rs))
		}
		same(t, rs[0], &pb.VitalsTelemetry{MedicationDose: 2.5, AdministrationRate: 10, BatteryLevel: 80,
			Present: []string{"medicationDose", "administrationRate", "batteryLevel"}})
	})
	t.Run("wrong type inside data is a dead letter", func(t *testing.T) {
		raw := fmt.Sprintf(`{"deviceId":"d1","data":{"heartRate":"72"},"timestamp":%d}`, ms)
		outs := payload.Decode(payload.Telemetry, vit, []byte(raw), opts())
		if len(outs) != 1 || outs[0].Reason != payload.ReasonInvalidValue {
			t.Errorf("outputs %v; want one invalid_value dead letter", outs)
		}
	})
	batch := fmt.Sprintf(`{"batchId":1701,"deviceId":"d1","messages":[%s,%s],"count":2}`, seed, seed)
	for _, c := range []struct {
		name string
		o    payload.Options
	}{
		{"batch records, encoder", batchOpts()},
		{"batch records, general path", payload.GeneralPath(batchOpts())},
		{"single records", func() payload.Options { o := batchOpts(); o.BatchRecords = false; return o }()},
	} {
		t.Run(c.name, func(t *testing.T) {
			outs := payload.Decode(payload.Batch, batchSrc, []byte(batch), c.o)
			rs := readings(t, outs)
			if len(rs) != 2 {
				t.Fatalf("%d readings; want 2", len(rs))
			}
			for _, r := range rs {
				same(t, r, want)
			}
		})
	}
	t.Run("the encoder takes the seed's batch", func(t *testing.T) {
		if !encoderAgrees(t, batchSrc, []byte(batch), batchOpts()) {
			t.Error("the batch encoder gave the seed's nested batch to the general path")
		}
		if outs := payload.Decode(payload.Batch, batchSrc, []byte(batch), batchOpts()); len(outs) != 1 || outs[0].Topic != topics.VitalsBatches {
			t.Errorf("outputs %v; want one vitals batch", outs)
		}
	})
}
