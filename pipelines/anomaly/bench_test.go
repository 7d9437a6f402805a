package anomaly_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/pipelines/internal/cpu"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// BenchmarkVitalsPath measures the CPU work the anomaly group does per
// vitals reading, without Kafka: decode the reading and the device state,
// score, encode the AnomalyScore record and the state.
func BenchmarkVitalsPath(b *testing.B) {
	cfg := anomaly.DefaultBaselineConfig()
	st := &anomaly.State{Tenant: "t", Patients: map[string]*anomaly.Baseline{}}
	stateBytes, _ := st.AppendBinary(nil)
	readings := make([][]byte, 64)
	for i := range readings {
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t", EventId: fmt.Sprint("ev-", i), EventTimeMs: int64(i) * 1000}, DeviceId: "mon-1",
			PatientId: "p-1", Kind: "vitals", HeartRate: 70 + float64(i%20), SystolicBp: 120 + float64(i%30), Spo2: 97, Present: []string{"heart_rate", "systolic_bp", "spo2"}}
		readings[i], _ = codec.Marshal(v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpu.Time()
	for i := 0; i < b.N; i++ {
		var v pb.VitalsTelemetry
		if err := proto.Unmarshal(readings[i%len(readings)], &v); err != nil {
			b.Fatal(err)
		}
		s, err := anomaly.DecodeState(stateBytes)
		if err != nil {
			b.Fatal(err)
		}
		if s.Patients == nil {
			s.Patients = map[string]*anomaly.Baseline{}
		}
		bl := s.Patients[v.PatientId]
		if bl == nil {
			bl = &anomaly.Baseline{}
			s.Patients[v.PatientId] = bl
		}
		score, rule, z, reasons := bl.Score(cfg, anomaly.Vitals{V: [3]float64{v.HeartRate, v.SystolicBp, v.Spo2}, Has: [3]bool{true, true, true}})
		out, err := codec.Marshal(&pb.AnomalyScore{Meta: &pb.Meta{Tenant: "t", EventId: "anomaly|" + v.Meta.EventId, EventTimeMs: v.Meta.EventTimeMs},
			DeviceId: v.DeviceId, PatientId: v.PatientId, ReadingEventId: v.Meta.EventId, Score: score, RuleScore: rule, ZScore: z, Reasons: reasons,
			Level: anomaly.Level(score), HeartRate: v.HeartRate, SystolicBp: v.SystolicBp, Spo2: v.Spo2})
		if err != nil || len(out) == 0 {
			b.Fatal(err)
		}
		if stateBytes, err = s.AppendBinary(stateBytes[:0:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if c := cpu.Time() - cpu0; c > 0 {
		b.ReportMetric(float64(b.N)/c.Seconds(), "events/cpu-s")
	}
}
