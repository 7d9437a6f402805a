package adherence

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/pipelines/internal/cpu"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// BenchmarkIntakePath measures the CPU work the adherence group does per
// intake, without Kafka: decode the intake and the patient's state (two
// medications, three doses a day, three days of history), insert, re-run
// the matching, build the outcome and window records, encode them and the
// state.
func BenchmarkIntakePath(b *testing.B) {
	p, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	st := &State{Tenant: "t"}
	for _, med := range []string{"m1", "m2"} {
		s := &pb.DoseSchedule{Meta: &pb.Meta{EventTimeMs: start.UnixMilli()}, PatientId: "p", MedicationId: med, Timezone: "Europe/Berlin",
			Times: []string{"08:00", "13:00", "20:00"}, StartDate: "2026-03-01", Version: 1}
		m := st.med(med)
		m.Sched, _ = codec.Marshal(s)
		m.From = start.UnixMilli()
		m.materialize(start.Add(72 * time.Hour).UnixMilli())
		for i, d := range m.Doses[:len(m.Doses)-3] {
			m.Intakes = append(m.Intakes, &Intake{ID: fmt.Sprint(med, i), T: d.At + 60_000, Taken: true})
		}
		p.reconcile(st, "p", med, m, start.Add(72*time.Hour), nil)
	}
	stateBytes, err := StateCodec{}.Encode(st)
	if err != nil {
		b.Fatal(err)
	}
	now := start.Add(72 * time.Hour)
	target := st.Meds["m1"].Doses[len(st.Meds["m1"].Doses)-3].At
	intakes := make([][]byte, 64)
	for i := range intakes {
		intakes[i], _ = codec.Marshal(&pb.MedicationIntake{Meta: &pb.Meta{Tenant: "t", EventId: fmt.Sprint("new-", i)}, PatientId: "p",
			MedicationId: "m1", IntakeTimeMs: target + int64(i)*1000, Status: "taken", DeviceId: "pc"})
	}
	b.Logf("state %d bytes", len(stateBytes))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpu.Time()
	outs := 0
	for i := 0; i < b.N; i++ {
		var in pb.MedicationIntake
		if err := proto.Unmarshal(intakes[i%len(intakes)], &in); err != nil {
			b.Fatal(err)
		}
		v, err := StateCodec{}.Decode(stateBytes)
		if err != nil {
			b.Fatal(err)
		}
		s := v.(*State)
		m := s.med(in.MedicationId)
		m.Intakes = append(m.Intakes, &Intake{ID: in.Meta.EventId, T: in.IntakeTimeMs, Taken: true, Dev: in.DeviceId})
		for _, e := range p.reconcile(s, "p", in.MedicationId, m, now, nil) {
			bs, err := codec.Marshal(e.msg)
			if err != nil {
				b.Fatal(err)
			}
			outs += len(bs)
		}
		if _, err := (StateCodec{}).Encode(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if c := cpu.Time() - cpu0; c > 0 {
		b.ReportMetric(float64(b.N)/c.Seconds(), "events/cpu-s")
	}
}

// BenchmarkClockVisitIdleKey measures what a clock visit costs for a key
// with nothing due (the common case): goka decodes the state, the visitor
// checks it and writes nothing. The tick interval divided by this cost
// bounds the patients one core can keep on the clock.
func BenchmarkClockVisitIdleKey(b *testing.B) {
	p, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	st := &State{Tenant: "t"}
	for _, med := range []string{"m1", "m2"} {
		s := &pb.DoseSchedule{Meta: &pb.Meta{EventTimeMs: start.UnixMilli()}, PatientId: "p", MedicationId: med, Timezone: "Europe/Berlin",
			Times: []string{"08:00", "13:00", "20:00"}, StartDate: "2026-03-01", Version: 1}
		m := st.med(med)
		m.Sched, _ = codec.Marshal(s)
		m.From = start.UnixMilli()
		m.materialize(start.Add(72 * time.Hour).UnixMilli())
		p.reconcile(st, "p", med, m, start.Add(72*time.Hour), nil)
	}
	raw := st.AppendBinary(nil)
	now := start.Add(72 * time.Hour).UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpu.Time()
	for i := 0; i < b.N; i++ {
		s, err := DecodeState(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range s.Meds {
			if p.due(m, now) {
				b.Fatal("idle key is due")
			}
		}
	}
	if c := cpu.Time() - cpu0; c > 0 {
		b.ReportMetric(float64(b.N)/c.Seconds(), "keys/cpu-s")
	}
}
