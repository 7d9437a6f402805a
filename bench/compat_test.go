package bench_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/bench"
	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// source resolves the simulator's MQTT topics the way the connector's
// default routes do.
func source(t *testing.T, topic string) (payload.Type, payload.Source) {
	t.Helper()
	p := strings.Split(topic, "/")
	switch {
	case topic == bench.BatchTopic:
		return payload.Batch, payload.Source{Topic: topic}
	case len(p) == 4 && p[1] == "devices" && p[3] == "medication_intake":
		return payload.Intake, payload.Source{Topic: topic, DeviceID: p[2]}
	case len(p) == 4 && p[1] == "devices" && p[3] == "medication_schedule":
		return payload.Schedule, payload.Source{Topic: topic, DeviceID: p[2]}
	case len(p) == 5:
		return payload.Telemetry, payload.Source{Topic: topic, Tenant: p[1], DeviceType: p[2], DeviceID: p[3], Kind: p[4]}
	}
	t.Fatalf("topic %s matches no default route", topic)
	return "", payload.Source{}
}

// Every message the simulator publishes must decode with the connector's
// decoder into the record the harness counts (same event id, tenant, event
// time), and every malformed one into a dead letter with its reason.
func TestPayloadsDecodeWithTheConnector(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	sc, err := bench.LoadScenario("scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := bench.NewFleet(sc, "brun", "bench-brun", start.Add(-time.Minute), start.Add(20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	opts := payload.Options{Tenant: "bench-brun", MaxBytes: 256 << 10, MaxAge: 30 * 24 * time.Hour, MaxSkew: 10 * time.Minute, Now: start}
	check := func(r bench.Reading, outs []payload.Out) {
		t.Helper()
		if len(outs) != 1 || outs[0].Reason != "" {
			t.Fatalf("%v %s: decoded to %+v", r.Kind, r.EventID, outs)
		}
		mg := outs[0].Msg.(interface{ GetMeta() *pb.Meta })
		m := mg.GetMeta()
		if m.GetEventId() != r.EventID || m.GetTenant() != "bench-brun" || m.GetEventTimeMs() != r.EventTime.UnixMilli() {
			t.Errorf("%v: meta %v, want id %s time %d", r.Kind, m, r.EventID, r.EventTime.UnixMilli())
		}
	}
	g := f.NewTelemetry()
	var failure bool
	for i := 0; i < 2000; i++ {
		// 2000 readings over the 20 minutes: failing pumps fail.
		at := start.Add(time.Duration(i) * 600 * time.Millisecond)
		rs := g.Next(at, 1)
		p := bench.EncodeMQTT("bench-brun", &rs[0])
		typ, src := source(t, p.Topic)
		opts.Now = at
		outs := payload.Decode(typ, src, p.Payload, opts)
		check(rs[0], outs)
		if rs[0].Kind == bench.KindPumpFailure {
			failure = true
			if v := outs[0].Msg.(*pb.VitalsTelemetry); v.AlertType != "PUMP_FAILURE" || v.Kind != "alerts" || v.Severity != 8 {
				t.Errorf("pump failure decoded as %v", v)
			}
		}
		if outs[0].Topic != topics.Vitals {
			t.Errorf("telemetry went to %s", outs[0].Topic)
		}
	}
	if !failure {
		t.Error("no pump failure in 2000 readings")
	}
	opts.Now = start
	rs := g.Next(start, 100)
	p := bench.EncodeMQTTBatch("bench-brun", rs)
	typ, src := source(t, p.Topic)
	outs := payload.Decode(typ, src, p.Payload, opts)
	if len(outs) != 100 {
		t.Fatalf("batch of 100 decoded to %d records", len(outs))
	}
	for i := range outs {
		check(rs[i], outs[i:i+1])
	}
	for _, e := range f.PillEvents() {
		p := bench.EncodeMQTT("bench-brun", &e.Reading)
		typ, src := source(t, p.Topic)
		opts.Now = e.At // devices report when the plan says
		outs := payload.Decode(typ, src, p.Payload, opts)
		check(e.Reading, outs)
		if e.Reading.Kind == bench.KindSchedule {
			s := outs[0].Msg.(*pb.DoseSchedule)
			if s.GraceMinutes != int32(sc.Pillcases.GraceMinutes) || len(s.Times) == 0 || s.StartDate == "" || s.Version != 1 {
				t.Errorf("schedule decoded as %v", s)
			}
		}
		if e.Reading.Kind == bench.KindIntake {
			in := outs[0].Msg.(*pb.MedicationIntake)
			if in.IntakeTimeMs != e.Reading.IntakeTime.UnixMilli() || in.Status != "taken" || in.PatientId != e.Reading.PatientID {
				t.Errorf("intake decoded as %v", in)
			}
		}
	}
	want := map[string]payload.Reason{"bad_json": payload.ReasonMalformedJSON, "missing_fields": payload.ReasonMissingField, "spoofed_device": payload.ReasonSpoofedDevice}
	for i := 0; i < 3; i++ {
		m := g.Malformed(start)
		p := bench.EncodeMQTT("bench-brun", &m)
		typ, src := source(t, p.Topic)
		outs := payload.Decode(typ, src, p.Payload, opts)
		if len(outs) != 1 || outs[0].Reason != want[m.Malformed] {
			t.Errorf("malformed %s: %+v", m.Malformed, outs)
		}
	}
}
