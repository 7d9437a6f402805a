package processors_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/internal/cpu"
	"github.com/wardstream/wardstream/pipelines/processors"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// brokerBench preloads records into a fresh topic set on the real broker,
// then runs one processors instance (only group) until it has written at
// least minOut records to out and then nothing more for 2 s, watching the
// topic's end offsets (a ListOffsets request every 20 ms, not a consumer:
// fetching, decompressing and decoding every output in the same process
// cost the measured role a tenth or more of its CPU). It reports events/s
// (wall) and events/cpu-s: the whole test process's CPU time (goka, sarama,
// our code, GC) from the first output to the last, which is the per-core
// figure on a shared machine. Afterwards, outside the measured window, it reads the outputs
// back and requires that progress counts want of them: a run that paused
// for 2 s before its end fails instead of reporting a rate.
func brokerBench(b *testing.B, group string, out string, clock time.Time, preload func(prefix string) (recs []*kgo.Record, events int), minOut func(events int) int64, want func(n int) int, progress func(*kgo.Record) int64) {
	svc := testutil.Integration(b)
	prefix := testutil.Unique(b, "wsbench") + "."
	root := config.Default()
	root.Tenant = "bench"
	root.Kafka.Brokers = svc.KafkaBrokers
	root.Kafka.Partitions = 4
	// Producer compression for A/B runs (default: config.Default's).
	if v := os.Getenv("WARDSTREAM_PROC_BENCH_COMPRESSION"); v != "" {
		root.Kafka.Compression = v
	}
	cfg := processors.DefaultConfig()
	cfg.TopicPrefix = prefix
	cfg.Groups = []string{group}
	cfg.CorrectionHorizon = config.Duration(10 * 24 * time.Hour)
	b.Cleanup(func() { cleanup(b, root, prefix) })
	clk := &simClock{}
	clk.set(clock)
	h := runtime.NewHealth()
	r, err := processors.New(&root, cfg, processors.WithClock(clk.now), processors.WithHealth(h))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.EnsureTopics(ctx); err != nil {
		b.Fatal(err)
	}
	cl, err := kafka.NewClient(root.Kafka, kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	recs, events := preload(prefix)
	for i := 0; i < len(recs); i += 20000 {
		if err := cl.ProduceSync(ctx, recs[i:min(i+20000, len(recs))]...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	cl.Close()
	// The run is over when at least minRecs outputs were written and no
	// more came for quiet; reading them back afterwards proves it.
	minRecs := minOut(events)
	const quiet = 2 * time.Second
	adm, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	written := func() int64 {
		ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, prefix+out)
		if err != nil || ends.Error() != nil {
			return 0
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	b.ResetTimer()
	cpu0, t0 := cpu.Time(), time.Now()
	rdone := make(chan error, 1)
	go func() { rdone <- r.Run(ctx) }()
	var firstCPU, lastCPU time.Duration
	var firstAt, lastAt time.Time
	deadline := time.After(5 * time.Minute)
	var got int64
	for got < minRecs || time.Since(lastAt) < quiet {
		select {
		case err := <-rdone:
			b.Fatalf("role stopped: %v", err)
		case <-deadline:
			b.Fatalf("%d output records after 5 minutes, want at least %d", got, minRecs)
		case <-time.After(20 * time.Millisecond):
		}
		if n := written(); n != got {
			got, lastCPU, lastAt = n, cpu.Time(), time.Now()
			if firstAt.IsZero() {
				firstCPU, firstAt = lastCPU, lastAt
			}
		} else if got > 0 && got < minRecs && time.Since(lastAt) > 30*time.Second {
			b.Fatalf("output stalled at %d records, want at least %d", got, minRecs)
		}
	}
	wall, used := lastAt.Sub(t0), lastCPU-cpu0
	// Steady state: from the first result to the last, so that group
	// start-up (topic creation, group join, table recovery) is left out.
	sWall, sCPU := lastAt.Sub(firstAt), lastCPU-firstCPU
	b.StopTimer()
	b.ReportMetric(float64(events)/sWall.Seconds(), "events/s")
	b.ReportMetric(float64(events)/sCPU.Seconds(), "events/cpu-s")
	b.Logf("%s: %d input events in %d records -> %d output records; steady state %v wall, %v CPU; with start-up %v wall, %v CPU",
		group, events, len(recs), got, sWall.Round(time.Millisecond), sCPU.Round(time.Millisecond), wall.Round(time.Millisecond), used.Round(time.Millisecond))
	cancel()
	<-rdone

	// Read the outputs back: they must be what the benchmark counts.
	cons, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ConsumeTopics(prefix+out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	vctx, vcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer vcancel()
	var read, counted int64
	for read < got && vctx.Err() == nil {
		cons.PollFetches(vctx).EachRecord(func(r *kgo.Record) { read++; counted += progress(r) })
	}
	if n := int64(want(events)); read != got || counted != n {
		b.Fatalf("read back %d of %d output records, counting %d, want %d", read, got, counted, n)
	}
}

// BenchmarkIntegrationVitalsPath: 200k vitals readings from 500 monitors
// through the anomaly group to the anomaly-scores topic.
func BenchmarkIntegrationVitalsPath(b *testing.B) {
	brokerBench(b, processors.GroupAnomaly, topics.AnomalyScores, benchNow, func(prefix string) ([]*kgo.Record, int) {
		const n = 200_000
		recs := make([]*kgo.Record, 0, n)
		for i := 0; i < n; i++ {
			v := benchReading(i)
			bs, _ := codec.Marshal(v)
			recs = append(recs, &kgo.Record{Topic: prefix + topics.Vitals, Key: []byte(v.DeviceId), Value: bs})
		}
		return recs, n
	}, func(n int) int64 { return int64(n) }, func(n int) int { return n }, func(*kgo.Record) int64 { return 1 })
}

// BenchmarkIntegrationVitalsBatchPath: the same kind of readings as
// BenchmarkIntegrationVitalsPath (1M of them, from 500 monitors) in
// device batches of 100, as the mqtt connector writes the seed's batched
// telemetry (batch_records), to the anomaly-score-batches topic; events
// are readings.
func BenchmarkIntegrationVitalsBatchPath(b *testing.B) {
	brokerBench(b, processors.GroupAnomaly, topics.ScoreBatches, benchNow, func(prefix string) ([]*kgo.Record, int) {
		const n, per, devices = 1_000_000, 100, 500
		var recs []*kgo.Record
		batch := map[int]*pb.VitalsBatch{}
		for i := 0; i < n; i++ {
			d := i % devices
			if batch[d] == nil {
				batch[d] = &pb.VitalsBatch{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("batch|b", i)}, DeviceId: fmt.Sprintf("mon-%d", d), BatchId: fmt.Sprint("b", i)}
			}
			bt := batch[d]
			bt.Readings = append(bt.Readings, benchReading(i))
			if len(bt.Readings) == per {
				bs, _ := codec.Marshal(bt)
				recs = append(recs, &kgo.Record{Topic: prefix + topics.VitalsBatches, Key: []byte(bt.DeviceId), Value: bs})
				delete(batch, d)
			}
		}
		return recs, n
	}, func(n int) int64 { return int64(n / 100) }, func(n int) int { return n }, func(r *kgo.Record) int64 {
		var sb pb.AnomalyScoreBatch
		if codec.Unmarshal(r.Value, &sb) != nil {
			return 0
		}
		return int64(len(sb.Scores))
	})
}

// benchReading is reading i of the vitals benchmarks (500 monitors).
func benchReading(i int) *pb.VitalsTelemetry {
	dev := fmt.Sprintf("mon-%d", i%500)
	return &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("v", i), EventTimeMs: int64(i) * 1000}, DeviceId: dev,
		PatientId: fmt.Sprintf("p-%d", i%500), Kind: "vitals", HeartRate: 60 + float64(i%50), SystolicBp: 110 + float64(i%40), Spo2: 93 + float64(i%6),
		Present: []string{"heart_rate", "systolic_bp", "spo2"}}
}

// benchNow is the processing time of the vitals benchmarks.
var benchNow = time.Date(2026, 3, 5, 0, 0, 0, 0, berlin)

// BenchmarkIntegrationAdherencePath: 20,000 patients' schedules (3 doses a
// day) and 3 days of intakes (180k) through the adherence group; counts the
// doses whose latest outcome is taken, until all 180k are. Two cases:
//
//   - on_time: intakes arrive while their doses are open (the processing
//     clock is at the schedules' start), so each intake decides its dose:
//     one outcome and one adherence window. This is the steady state of a
//     ward whose pillcases are online.
//   - late_flush: every intake arrives after its dose was declared MISSED
//     (the clock is at the end of the three days, as when every pillcase
//     flushes an offline buffer): each schedule first emits 9 MISSED
//     outcomes, 9 alerts and 3 windows, and each intake then corrects an
//     outcome, resolves an alert and re-emits the windows from its day on.
//     This is the worst case.
func BenchmarkIntegrationAdherencePath(b *testing.B) {
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, berlin)
	for _, tc := range []struct {
		name  string
		clock time.Time
	}{{"on_time", from}, {"late_flush", from.AddDate(0, 0, 3)}} {
		b.Run(tc.name, func(b *testing.B) { adherenceBench(b, from, tc.clock) })
	}
}

func adherenceBench(b *testing.B, from, clock time.Time) {
	brokerBench(b, processors.GroupAdherence, topics.DoseOutcomes, clock, func(prefix string) ([]*kgo.Record, int) {
		const patients = 20000
		var recs []*kgo.Record
		for p := 0; p < patients; p++ {
			pid := fmt.Sprintf("p-%d", p)
			s := &pb.DoseSchedule{Meta: &pb.Meta{Tenant: "bench", EventId: "s" + pid, EventTimeMs: from.UnixMilli()}, PatientId: pid, MedicationId: "m",
				Timezone: "Europe/Berlin", Times: []string{"08:00", "13:00", "20:00"}, StartDate: "2026-03-02", Version: 1}
			bs, _ := codec.Marshal(s)
			recs = append(recs, &kgo.Record{Topic: prefix + topics.Schedules, Key: []byte(topics.ScheduleKey(pid, "m")), Value: bs})
		}
		i := 0
		for d := 0; d < 3; d++ {
			for _, hm := range []int{8 * 60, 13 * 60, 20 * 60} {
				for p := 0; p < patients; p++ {
					pid := fmt.Sprintf("p-%d", p)
					at := from.AddDate(0, 0, d).Add(time.Duration(hm+p%20-10) * time.Minute)
					i++
					in := &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("i", i), EventTimeMs: at.UnixMilli()}, DeviceId: "pc-" + pid,
						PatientId: pid, MedicationId: "m", IntakeTimeMs: at.UnixMilli(), Status: "taken"}
					bs, _ := codec.Marshal(in)
					recs = append(recs, &kgo.Record{Topic: prefix + topics.Intake, Key: []byte(pid), Value: bs})
				}
			}
		}
		return recs, len(recs)
	}, func(n int) int64 { return int64(n - 20000) } /* at least an outcome per intake */, func(n int) int { return n - 20000 }, takenDoses())
}

// takenDoses counts doses whose latest outcome is taken (not EXTRA).
func takenDoses() func(*kgo.Record) int64 {
	latest := map[string]pb.Outcome{}
	return func(r *kgo.Record) int64 {
		var d pb.DoseOutcome
		if codec.Unmarshal(r.Value, &d) != nil {
			return 0
		}
		was := latest[d.DoseId]
		latest[d.DoseId] = d.Outcome
		taken := func(o pb.Outcome) bool {
			return o == pb.Outcome_TAKEN_ON_TIME || o == pb.Outcome_TAKEN_EARLY || o == pb.Outcome_TAKEN_LATE
		}
		switch {
		case taken(d.Outcome) && !taken(was):
			return 1
		case !taken(d.Outcome) && taken(was):
			return -1
		}
		return 0
	}
}

// BenchmarkIntegrationAlertsPath: the alerts group's lifecycle on the real
// broker. 50,000 alerts (the seed's kinds: missed doses, vitals, pump
// failures), each requested OPEN, requested OPEN again while open
// (suppressed: no output) and RESOLVED: 150k requests, 100k alert records
// out (raised, resolved). Events are requests.
func BenchmarkIntegrationAlertsPath(b *testing.B) {
	type kind struct {
		t       pb.AlertType
		p       pb.Priority
		subject string
	}
	kinds := []kind{{pb.AlertType_MISSED_DOSE, pb.Priority_HIGH, alerts.SubjectPatient}, {pb.AlertType_VITALS_WARNING, pb.Priority_MEDIUM, alerts.SubjectPatient},
		{pb.AlertType_PUMP_FAILURE, pb.Priority_CRITICAL, alerts.SubjectDevice}}
	brokerBench(b, processors.GroupAlerts, topics.Alerts, benchNow, func(prefix string) ([]*kgo.Record, int) {
		const n = 50_000
		topic := prefix + processors.DefaultConfig().AlertRequestsTopic
		var recs []*kgo.Record
		for _, state := range []pb.AlertState{pb.AlertState_OPEN, pb.AlertState_OPEN, pb.AlertState_RESOLVED} {
			for i := 0; i < n; i++ {
				k := kinds[i%len(kinds)]
				at := benchNow.Add(time.Duration(i) * time.Millisecond)
				req := alerts.Request("bench", k.t, k.p, state, k.subject, fmt.Sprintf("s-%d", i%5000), at.Format("2006-01-02T15:04:05.000"), at, at)
				bs, _ := codec.Marshal(req)
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(req.AlertId), Value: bs})
			}
		}
		return recs, len(recs)
	}, func(n int) int64 { return int64(n) * 2 / 3 }, func(n int) int { return n / 3 }, func(r *kgo.Record) int64 {
		var a pb.Alert
		if codec.Unmarshal(r.Value, &a) != nil || a.State != pb.AlertState_RESOLVED {
			return 0
		}
		return 1
	})
}
