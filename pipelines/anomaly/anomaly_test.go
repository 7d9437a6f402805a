package anomaly_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/pipelines/internal/gokalog"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func vit(hr, bp, spo2 float64) anomaly.Vitals {
	return anomaly.Vitals{V: [3]float64{hr, bp, spo2}, Has: [3]bool{hr != 0, bp != 0, spo2 != 0}}
}

func TestRuleScoreIsTheSeeds(t *testing.T) {
	cases := []struct {
		hr, bp, spo2 float64
		want         float64
		level        string
	}{
		{80, 120, 98, 0, "NORMAL"},
		{100, 140, 95, 0, "NORMAL"}, // boundaries are strict
		{60, 0, 0, 0, "NORMAL"},
		{101, 0, 0, 0.1, "NORMAL"},
		{150, 0, 0, 5, "NORMAL"},      // (150-100)/10 = 5: not > 5
		{151, 0, 0, 5.1, "WARNING"},   // > 5
		{180, 0, 0, 8, "WARNING"},     // 8 is not > 8
		{181, 0, 0, 8.1, "EMERGENCY"}, // > 8
		{250, 0, 0, 10, "EMERGENCY"},  // capped at 10
		{50, 0, 0, 1, "NORMAL"},       // (60-50)/10
		{0.5, 0, 0, 5.95, "WARNING"},  // present but tiny: (60-0.5)/10
		{0, 200, 0, 6, "WARNING"},     // (200-140)/10
		{0, 0, 90, 2.5, "NORMAL"},     // (95-90)/2
		{0, 0, 84, 5.5, "WARNING"},    // (95-84)/2
		{0, 0, 78, 8.5, "EMERGENCY"},  // (95-78)/2
		{130, 170, 85, 5, "NORMAL"},   // max(3, 3, 5)
	}
	for _, c := range cases {
		got, reasons := anomaly.RuleScore(vit(c.hr, c.bp, c.spo2))
		if math.Abs(got-c.want) > 1e-9 || anomaly.Level(got) != c.level {
			t.Errorf("hr %v bp %v spo2 %v: score %v (%s) %v, want %v (%s)", c.hr, c.bp, c.spo2, got, anomaly.Level(got), reasons, c.want, c.level)
		}
		if (got > 0) != (len(reasons) > 0) {
			t.Errorf("reasons %v for score %v", reasons, got)
		}
	}
}

func TestBaselineLearnsPatientNormal(t *testing.T) {
	cfg := anomaly.DefaultBaselineConfig()
	var b anomaly.Baseline
	// A patient whose normal heart rate is 62 +- 1.
	for i := 0; i < 100; i++ {
		s, rule, z, _ := b.Score(cfg, vit(62+float64(i%3)-1, 0, 0))
		if s != 0 || rule != 0 || (i >= int(cfg.MinSamples) && z > 3) {
			t.Fatalf("reading %d of the patient's normal scored %v (z %v)", i, s, z)
		}
	}
	// 80 bpm is inside the seed's range but far from this patient's normal:
	// |z| = 18/2 (std floor) = 9 -> (9-3)*2 = 12 -> capped 10.
	s, rule, z, reasons := b.Score(cfg, vit(80, 0, 0))
	if rule != 0 || z < 8.5 || s != 10 || anomaly.Level(s) != "EMERGENCY" {
		t.Fatalf("80 bpm vs normal 62: score %v rule %v z %v %v", s, rule, z, reasons)
	}
	// Before MinSamples the baseline adds nothing.
	var fresh anomaly.Baseline
	if s, _, _, _ := fresh.Score(cfg, vit(80, 0, 0)); s != 0 {
		t.Fatalf("unlearned baseline scored %v", s)
	}
	// The baseline never lowers a rule score: a patient used to 130 bpm.
	var tachy anomaly.Baseline
	for i := 0; i < 50; i++ {
		tachy.Score(cfg, vit(130, 0, 0))
	}
	if s, rule, _, _ := tachy.Score(cfg, vit(130, 0, 0)); s != 3 || rule != 3 {
		t.Fatalf("rule score hidden by baseline: %v/%v", s, rule)
	}
}

func TestStateCodecRoundTrip(t *testing.T) {
	s := &anomaly.State{Tenant: "t", Patients: map[string]*anomaly.Baseline{"p": {N: [3]int64{1, 2, 3}, Mean: [3]float64{60, 120, 97}, Var: [3]float64{1, 2, 0.5}}},
		Episodes: map[anomaly.EpisodeKey]anomaly.Episode{{Type: int32(pb.AlertType_VITALS_WARNING), Subject: "p"}: {Start: 5, Last: 9, SubjectType: "patient"}},
		Judged:   map[anomaly.EpisodeKey]int64{{Type: int32(pb.AlertType_VITALS_WARNING), Subject: "p"}: 9, {Type: int32(pb.AlertType_LOW_BATTERY), Subject: "d"}: -3},
		Closed: map[anomaly.EpisodeKey][]anomaly.Span{{Type: int32(pb.AlertType_VITALS_EMERGENCY), Subject: "p"}: {{Start: 4, Last: 5}, {Start: 1, Last: 2}},
			{Type: int32(pb.AlertType_DEVICE_OFFLINE), Subject: "d"}: {{Start: -7, Last: 3}}}}
	s.Patients["p"].Last, s.Patients["p"].LastIDs = 9, []string{"a", "b"}
	b, err := anomaly.StateCodec{}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	v, err := anomaly.StateCodec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := anomaly.StateCodec{}.Encode(v)
	if string(b) != string(b2) || !reflect.DeepEqual(v, s) {
		t.Fatalf("round trip changed the state")
	}
	for i := 0; i < len(b); i++ {
		if _, err := anomaly.DecodeState(b[:i]); err == nil {
			t.Fatalf("truncated state of %d bytes decoded", i)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	s := &anomaly.State{Tenant: "t", Patients: map[string]*anomaly.Baseline{"p": {}}, Episodes: map[anomaly.EpisodeKey]anomaly.Episode{{Type: 1}: {Start: 1}}}
	b, _ := s.AppendBinary(nil)
	f.Add(b)
	s.Judged = map[anomaly.EpisodeKey]int64{{Type: 3, Subject: "d"}: 9}
	s.Closed = map[anomaly.EpisodeKey][]anomaly.Span{{Type: 1, Subject: "p"}: {{Start: 4, Last: 6}}, {Type: 3, Subject: "d"}: {{Start: 1, Last: 2}}}
	b, _ = s.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := anomaly.DecodeState(data)
		if err != nil {
			return
		}
		b, err := s.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := anomaly.DecodeState(b)
		if err != nil || len(s2.Patients) != len(s.Patients) || len(s2.Episodes) != len(s.Episodes) {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		// The encoding is canonical: a decoded state encodes to the same
		// bytes again (keys in order, whatever the maps' order).
		if b2, _ := s2.AppendBinary(nil); string(b2) != string(b) {
			t.Fatalf("state encodes to %x, then to %x", b, b2)
		}
	})
}

type harness struct {
	tt    *tester.Tester
	cfg   anomaly.Config
	score *tester.QueueTracker
	alert *tester.QueueTracker
	dlq   *tester.QueueTracker
}

func newHarness(t *testing.T) *harness {
	h := &harness{cfg: anomaly.DefaultConfig()}
	p, err := anomaly.New(h.cfg, anomaly.WithClock(func() time.Time { return time.UnixMilli(1e12) }))
	if err != nil {
		t.Fatal(err)
	}
	h.tt = tester.New(t)
	proc, err := goka.NewProcessor(nil, p.Graph(), goka.WithTester(h.tt), goka.WithLogger(gokalog.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	// A visit (the clock) before every partition table runs fails with
	// "error creating storage iterator": wait for the processor first.
	if err := proc.WaitForReady(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	h.score = h.tt.NewQueueTracker(h.cfg.Topics.AnomalyScores)
	h.alert = h.tt.NewQueueTracker(h.cfg.Topics.AlertRequests)
	h.dlq = h.tt.NewQueueTracker(h.cfg.Topics.DeadLetters)
	return h
}

func drainAlerts(q *tester.QueueTracker) []*pb.Alert {
	var out []*pb.Alert
	for {
		_, v, ok := q.Next()
		if !ok {
			return out
		}
		out = append(out, v.(*pb.Alert))
	}
}

func TestGroupScoresAndAlertEpisodes(t *testing.T) {
	h := newHarness(t)
	n := 0
	reading := func(hr float64, extra func(*pb.VitalsTelemetry)) {
		n++
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: fmt.Sprint("r", n), EventTimeMs: int64(n) * 60_000},
			DeviceId: "mon-1", PatientId: "p1", Kind: "vitals", HeartRate: hr, Present: []string{"heart_rate"}}
		if extra != nil {
			extra(v)
		}
		b, _ := codec.Marshal(v)
		h.tt.Consume(h.cfg.Topics.Vitals, "mon-1", b)
	}
	reading(80, nil)
	reading(185, nil) // 8.5: EMERGENCY opens
	reading(190, nil) // still EMERGENCY: no new request
	reading(155, nil) // 5.5: EMERGENCY resolves, WARNING opens
	reading(80, nil)  // WARNING resolves
	var levels []string
	for {
		_, v, ok := h.score.Next()
		if !ok {
			break
		}
		s := v.(*pb.AnomalyScore)
		levels = append(levels, s.Level)
		if s.Meta.EventId != "anomaly|"+s.ReadingEventId || s.Meta.Tenant != "t1" {
			t.Fatalf("score meta %v", s.Meta)
		}
	}
	if fmt.Sprint(levels) != "[NORMAL EMERGENCY EMERGENCY WARNING NORMAL]" {
		t.Fatalf("levels %v", levels)
	}
	var got []string
	for _, a := range drainAlerts(h.alert) {
		got = append(got, a.AlertType.String()+":"+a.State.String()+":"+a.Priority.String()+":"+a.AlertId)
	}
	want := []string{
		"VITALS_EMERGENCY:OPEN:CRITICAL:VITALS_EMERGENCY|patient|p1|120000",
		"VITALS_EMERGENCY:RESOLVED:CRITICAL:VITALS_EMERGENCY|patient|p1|120000",
		"VITALS_WARNING:OPEN:HIGH:VITALS_WARNING|patient|p1|240000",
		"VITALS_WARNING:RESOLVED:HIGH:VITALS_WARNING|patient|p1|240000",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts\n got %v\nwant %v", got, want)
	}
	// Device alerts.
	reading(80, func(v *pb.VitalsTelemetry) { v.Kind, v.Severity, v.AlertType = "alerts", 7, "PUMP_FAILURE" })
	reading(80, func(v *pb.VitalsTelemetry) { v.MedicationDose, v.Present = -1, append(v.Present, "medication_dose") })
	reading(80, func(v *pb.VitalsTelemetry) { v.BatteryLevel, v.Present = 12, append(v.Present, "battery_level") })
	reading(80, func(v *pb.VitalsTelemetry) { v.BatteryLevel, v.Present = 13, append(v.Present, "battery_level") })
	reading(80, func(v *pb.VitalsTelemetry) { v.BatteryLevel, v.Present = 90, append(v.Present, "battery_level") })
	st := &pb.DeviceStatus{Meta: &pb.Meta{EventId: "s1", EventTimeMs: 99}, DeviceId: "mon-1", Online: false}
	b, _ := codec.Marshal(st)
	h.tt.Consume(h.cfg.Topics.DeviceStatus, "mon-1", b)
	got = nil
	for _, a := range drainAlerts(h.alert) {
		got = append(got, a.AlertType.String()+":"+a.State.String()+":"+a.SubjectType)
	}
	want = []string{"DEVICE_SEVERITY:OPEN:device", "PUMP_FAILURE:OPEN:device", "NEGATIVE_DOSE:OPEN:device",
		"LOW_BATTERY:OPEN:device", "LOW_BATTERY:RESOLVED:device", "DEVICE_OFFLINE:OPEN:device"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("device alerts\n got %v\nwant %v", got, want)
	}
	// Garbage goes to the dead-letter topic, not into the state.
	h.tt.Consume(h.cfg.Topics.Vitals, "mon-1", []byte{0xff, 0xff, 0xff})
	if _, v, ok := h.dlq.Next(); !ok || v.(*pb.DeadLetter).Reason != "undecodable" {
		t.Fatalf("no dead letter for garbage: %v", v)
	}
}

// TestBatchEqualsSingles: readings consumed as device batches give exactly
// the scores (in order), alert requests and state that the same readings
// give one record at a time; a reading without an event id in a batch is
// dead-lettered alone.
func TestBatchEqualsSingles(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	devices := []string{"mon-1", "mon-2"}
	var readings []*pb.VitalsTelemetry
	for i := 0; i < 300; i++ {
		d := devices[rnd.IntN(len(devices))]
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: fmt.Sprint("r", i), EventTimeMs: int64(i) * 30_000},
			DeviceId: d, PatientId: "p-" + d, Kind: "vitals", HeartRate: 50 + rnd.Float64()*150, Spo2: 85 + rnd.Float64()*15,
			Present: []string{"heart_rate", "spo2"}}
		switch rnd.IntN(10) {
		case 0:
			v.BatteryLevel, v.Present = rnd.Float64()*40, append(v.Present, "battery_level")
		case 1:
			v.Severity, v.AlertType = int32(rnd.IntN(10)), "PUMP_FAILURE"
		case 2:
			v.Present = nil // nothing scored
			v.HeartRate, v.Spo2 = 0, 0
		}
		readings = append(readings, v)
	}
	single, batched := newHarness(t), newHarness(t)
	for _, v := range readings {
		b, _ := codec.Marshal(v)
		single.tt.Consume(single.cfg.Topics.Vitals, v.DeviceId, b)
	}
	// Batches per device, in order, of random sizes.
	pending := map[string][]*pb.VitalsTelemetry{}
	nb := 0
	flush := func(d string) {
		if len(pending[d]) == 0 {
			return
		}
		nb++
		b, _ := codec.Marshal(&pb.VitalsBatch{Meta: &pb.Meta{EventId: fmt.Sprint("batch|b", nb)}, DeviceId: d, BatchId: fmt.Sprint("b", nb), Readings: pending[d]})
		batched.tt.Consume(batched.cfg.Topics.VitalsBatches, d, b)
		pending[d] = nil
	}
	// Devices' readings interleave only across devices, so per-device
	// order is kept by flushing a device's batch at random points.
	for _, v := range readings {
		pending[v.DeviceId] = append(pending[v.DeviceId], v)
		if rnd.IntN(8) == 0 {
			flush(v.DeviceId)
		}
	}
	for _, d := range devices {
		flush(d)
	}
	perDevice := func(scores []*pb.AnomalyScore) map[string][]*pb.AnomalyScore {
		m := map[string][]*pb.AnomalyScore{}
		for _, s := range scores {
			m[s.DeviceId] = append(m[s.DeviceId], s)
		}
		return m
	}
	var want, got []*pb.AnomalyScore
	for {
		_, v, ok := single.score.Next()
		if !ok {
			break
		}
		want = append(want, v.(*pb.AnomalyScore))
	}
	bq := batched.tt.NewQueueTracker(batched.cfg.Topics.ScoreBatches)
	bq.Seek(0)
	for {
		_, v, ok := bq.Next()
		if !ok {
			break
		}
		got = append(got, v.(*pb.AnomalyScoreBatch).Scores...)
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%d scores from batches, %d from single records", len(got), len(want))
	}
	if _, _, ok := batched.score.Next(); ok {
		t.Fatal("batches wrote single score records")
	}
	w, g := perDevice(want), perDevice(got)
	for _, d := range devices {
		for i := range w[d] {
			if !proto.Equal(w[d][i], g[d][i]) {
				t.Fatalf("%s score %d differs:\nsingle %v\nbatch  %v", d, i, w[d][i], g[d][i])
			}
		}
	}
	alertIDs := func(h *harness) map[string]int {
		m := map[string]int{}
		for _, a := range drainAlerts(h.alert) {
			m[a.AlertId+":"+a.State.String()]++
		}
		return m
	}
	if wa, ga := alertIDs(single), alertIDs(batched); len(wa) == 0 || !maps.Equal(wa, ga) {
		t.Fatalf("alert requests differ:\nsingle %v\nbatch  %v", wa, ga)
	}
	for _, d := range devices {
		sv := single.tt.TableValue(goka.GroupTable(goka.Group(single.cfg.Group)), d)
		bv := batched.tt.TableValue(goka.GroupTable(goka.Group(batched.cfg.Group)), d)
		if sv == nil || !reflect.DeepEqual(sv, bv) {
			t.Fatalf("%s: state after batches differs from state after single records", d)
		}
	}
	// One bad reading in a batch: it alone is dead-lettered.
	b, _ := codec.Marshal(&pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|bad"}, DeviceId: "mon-1", BatchId: "bad",
		Readings: []*pb.VitalsTelemetry{{DeviceId: "mon-1"}, {Meta: &pb.Meta{EventId: "ok"}, DeviceId: "mon-1", HeartRate: 70, Present: []string{"heart_rate"}}}})
	batched.tt.Consume(batched.cfg.Topics.VitalsBatches, "mon-1", b)
	_, v, ok := batched.dlq.Next()
	if dl, _ := v.(*pb.DeadLetter); !ok || dl.Reason != "missing_field" || !strings.HasSuffix(dl.Meta.EventId, "#0") {
		t.Fatalf("dead letter for the bad reading: %v", v)
	}
	_, v, ok = bq.Next()
	if sb, _ := v.(*pb.AnomalyScoreBatch); !ok || len(sb.Scores) != 1 || sb.Scores[0].ReadingEventId != "ok" {
		t.Fatalf("score batch after a bad reading: %v", v)
	}
}
