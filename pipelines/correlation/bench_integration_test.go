package correlation_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/pipelines/correlation"
	"github.com/wardstream/wardstream/pipelines/internal/cpu"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// BenchmarkIntegrationCorrelation: the correlation group on the real
// broker. 200 zones with one camera each; 200k camera frames with a person
// detection (5 fps for 200 s, thinned to one sighting per camera per 10 s,
// as configured by default) and 4,000 intakes in those zones (20 each),
// each of which is verified (re-emitted with its verification). Events are frames
// plus intakes; the window runs from the role's start to its last output,
// start-up included, watched through the intake topic's end offsets (no
// consumer in the measured process). The outputs are read back afterwards.
func BenchmarkIntegrationCorrelation(b *testing.B) {
	svc := testutil.Integration(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const zones, frames, intakes = 200, 200_000, 4_000
	cfg := correlation.DefaultConfig()
	for z := 0; z < zones; z++ {
		cfg.Zones = append(cfg.Zones, correlation.Zone{ID: fmt.Sprintf("ward-1/room-%d", z), Locations: []string{fmt.Sprintf("Room %d", z)},
			Cameras: []string{fmt.Sprintf("cam-%d", z)}})
	}
	cfg.Group = testutil.Unique(b, "corrbench")
	cfg.SweepInterval = config.Duration(time.Second)

	tp := itTopics(ctx, b, svc.KafkaBrokers, "corrbench", cfg.Group, 4)
	cl, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// Frames span [start, end); intakes fall inside it, so each has a
	// sighting within the +-2 minute window.
	end := time.Now().UnixMilli()
	start := end - frames/zones*200
	var recs []*kgo.Record
	for i := 0; i < frames; i++ {
		z := i % zones
		fd := &pb.FrameDetections{CameraId: fmt.Sprintf("cam-%d", z), Zone: fmt.Sprintf("ward-1/room-%d", z), FrameTimeMs: start + int64(i/zones)*200,
			Detections: []*pb.Detection{{ClassName: "person", Confidence: 0.9, Box: &pb.Box{W: 0.1, H: 0.2}}}}
		v, _ := codec.Marshal(fd)
		recs = append(recs, &kgo.Record{Topic: tp.Detections, Key: []byte(fd.CameraId), Value: v})
	}
	for i := 0; i < intakes; i++ {
		z := i % zones
		at := start + 60_000 + int64(i/zones)*int64(end-start-120_000)/int64(intakes/zones)
		in := &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("in-", i), EventTimeMs: at}, PatientId: fmt.Sprintf("p-%d", i%2000),
			MedicationId: "m-1", IntakeTimeMs: at, Status: "taken", Location: fmt.Sprintf("Room %d", z)}
		v, _ := codec.Marshal(in)
		recs = append(recs, &kgo.Record{Topic: tp.Intake, Key: []byte(in.PatientId), Value: v})
	}
	for i := 0; i < len(recs); i += 20000 {
		if err := cl.ProduceSync(ctx, recs[i:min(i+20000, len(recs))]...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	written := func() int64 {
		ends, err := adm.ListEndOffsets(ctx, tp.Intake)
		if err != nil || ends.Error() != nil {
			return 0
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n - intakes
	}

	root := config.Default()
	root.Kafka.Brokers = svc.KafkaBrokers
	root.Kafka.Partitions = 4
	// The processing clock stays at the frames' start, so an intake that
	// arrives before its zone's sightings waits for them instead of timing
	// out (the topics are consumed concurrently, in no set order).
	role, err := correlation.NewRole(&root, cfg, correlation.WithTopics(tp), correlation.WithClock(func() time.Time { return time.UnixMilli(start) }))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, t0 := cpu.Time(), time.Now()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- role.Run(rctx) }()
	var got int64
	var lastCPU time.Duration
	var lastAt time.Time
	for got < intakes {
		select {
		case err := <-done:
			b.Fatalf("role stopped: %v", err)
		case <-ctx.Done():
			b.Fatalf("%d of %d intakes verified", got, intakes)
		case <-time.After(20 * time.Millisecond):
		}
		if n := written(); n != got {
			got, lastCPU, lastAt = n, cpu.Time(), time.Now()
		}
	}
	b.StopTimer()
	wall, used := lastAt.Sub(t0), lastCPU-cpu0
	b.ReportMetric(float64(frames+intakes)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(frames+intakes)/used.Seconds(), "events/cpu-s")
	b.Logf("correlation: %d frames + %d intakes -> %d verified intakes; %v wall, %v CPU, start-up included",
		frames, intakes, got, wall.Round(time.Millisecond), used.Round(time.Millisecond))
	stop()
	if err := <-done; err != nil {
		b.Errorf("role: %v", err)
	}

	// Read the outputs back: one verified copy per intake, confirmed by a
	// sighting.
	cons, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ConsumeTopics(tp.Intake), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	confirmed := map[string]bool{}
	var read int64
	for read < intakes+got && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			read++
			var in pb.MedicationIntake
			if codec.Unmarshal(r.Value, &in) == nil && in.Verification == correlation.CameraConfirmed {
				confirmed[in.Meta.EventId] = true
			}
		})
	}
	if len(confirmed) != intakes {
		b.Fatalf("%d of %d intakes camera-confirmed", len(confirmed), intakes)
	}
}
