package main

// Cross-role integration tests of the rtsp role: camera -> rtsp -> Kafka
// -> ClickHouse sink, and camera -> rtsp -> correlation. They run several
// roles together, which only cmd/ and bench/ may import (STYLE.md
// dependency rule), so they live here rather than in connectors/rtsp.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/events"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/pipelines/correlation"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
	chsink "github.com/wardstream/wardstream/sinks/clickhouse"
)

// TestIntegrationCameraToClickHouse streams a synthetic H.264 camera into
// the rtsp role on the real Kafka, checks the detections against the true
// box, and runs the ClickHouse sink to check the rows land in ClickHouse.
func TestIntegrationCameraToClickHouse(t *testing.T) {
	svc := testutil.Integration(t)
	lib := rtsptest.NeedRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	prefix := testutil.Unique(t, "rtspit") + "."
	catalog := []string{topics.Detections, topics.VideoEvents, topics.CameraControls}
	var names []string
	for _, c := range catalog {
		names = append(names, prefix+c)
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, names...); err != nil {
		t.Fatalf("creating topics: %v", err)
	}
	group := testutil.Unique(t, "rtspsink")
	db := testutil.Unique(t, "rtsp")
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_, _ = adm.DeleteTopics(cctx, names...)
		_, _ = adm.DeleteGroup(cctx, group)
	})

	// ClickHouse: a private database with the current schema.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := (&chschema.Migrator{Conn: chschema.Adapt(conn), Database: db}).Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		if os.Getenv("WARDSTREAM_KEEP_DB") == "" {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		}
	})

	root := config.Default()
	root.Tenant = "hospital-it"
	root.Kafka.Brokers = svc.KafkaBrokers
	root.ClickHouse.Addr = []string{svc.ClickHouseAddr}
	root.ClickHouse.Database = db
	root.DrainTimeout = config.Duration(20 * time.Second)

	// The sink.
	scfg := chsink.DefaultConfig()
	scfg.Topics, scfg.TopicPrefix, scfg.Group = catalog, prefix, group
	scfg.BatchAge = config.Duration(500 * time.Millisecond)
	sink, err := chsink.New(&root, scfg, chsink.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	sinkCtx, stopSink := context.WithCancel(ctx)
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sink.Run(sinkCtx) }()
	defer func() { stopSink(); <-sinkDone }()

	// The camera and the rtsp role.
	srv := rtsptest.Camera(t, rtsptest.H264)
	cam := rtsp.Camera{ID: "cam-it", URL: srv.URL, Tenant: "hospital-it", Zone: "ward-1/room-1", Ward: "ward-1", Location: "Ward 1, Room 1"}
	cfg := rtspTestConfig(t, lib, cam)
	conn2, err := rtsp.New(&root, cfg, rtsp.WithTopics(prefix+topics.Detections, prefix+topics.VideoEvents, prefix+topics.CameraControls),
		rtsp.WithRegisterer(prometheus.NewRegistry()), rtsp.WithLogger(rtspTestLogger()))
	if err != nil {
		t.Fatal(err)
	}
	roleCtx, stopRole := context.WithCancel(ctx)
	roleDone := make(chan error, 1)
	go func() { roleDone <- conn2.Run(roleCtx) }()

	// Kafka: detections with the true box, and a PERSON_DETECTED event.
	cons, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ConsumeTopics(prefix+topics.Detections, prefix+topics.VideoEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var res struct {
		frames []*pb.FrameDetections
		events []*pb.VideoEvent
	}
	for ctx.Err() == nil && (len(res.frames) < 25 || !hasVideoEvent(res.events, pb.VideoEventType_PERSON_DETECTED)) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if r.Topic == prefix+topics.Detections {
				var fd pb.FrameDetections
				if err := codec.Unmarshal(r.Value, &fd); err != nil {
					t.Fatal(err)
				}
				res.frames = append(res.frames, &fd)
			} else {
				var ev pb.VideoEvent
				if err := codec.Unmarshal(r.Value, &ev); err != nil {
					t.Fatal(err)
				}
				res.events = append(res.events, &ev)
			}
		})
		pcancel()
	}
	stopRole()
	if err := <-roleDone; err != nil {
		t.Fatalf("rtsp role: %v", err)
	}
	if len(res.frames) < 25 {
		t.Fatalf("%d frames from Kafka", len(res.frames))
	}
	mean := rtsptest.CheckBoxes(t, srv, res.frames, "cam-it")
	t.Logf("%d frames via Kafka, mean IoU %.3f, %d events", len(res.frames), mean, len(res.events))

	// ClickHouse: every frame produced lands as a row with its detection,
	// and the PERSON_DETECTED event as a video_events row.
	var frames, dets, persons uint64
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		q := func(sql string) uint64 {
			var n uint64
			if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			return n
		}
		frames = q(fmt.Sprintf("SELECT count() FROM %s.%s WHERE camera_id = 'cam-it' AND tenant = 'hospital-it'", db, chschema.TFrames))
		dets = q(fmt.Sprintf("SELECT count() FROM %s.%s WHERE camera_id = 'cam-it' AND class_name = 'person'", db, chschema.TDetections))
		persons = q(fmt.Sprintf("SELECT count() FROM %s.%s WHERE camera_id = 'cam-it' AND event_type = 'PERSON_DETECTED'", db, chschema.TVideoEvents))
		if frames >= uint64(len(res.frames)) && dets >= uint64(len(res.frames)) && persons >= 1 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if frames < uint64(len(res.frames)) || dets < uint64(len(res.frames)) || persons != 1 {
		t.Fatalf("ClickHouse has %d frame rows, %d person detections, %d PERSON_DETECTED events; Kafka had %d frames",
			frames, dets, persons, len(res.frames))
	}
	t.Logf("ClickHouse: %d frame rows, %d detection rows, %d PERSON_DETECTED", frames, dets, persons)
}

// TestIntegrationCrossSystem runs a synthetic camera through the rtsp role
// and the correlation group on the real Kafka: the person the camera sees
// confirms a pillcase intake in the camera's zone, and the person entering
// the restricted medical device area secures the devices there.
func TestIntegrationCrossSystem(t *testing.T) {
	svc := testutil.Integration(t)
	lib := rtsptest.NeedRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	p := testutil.Unique(t, "xsys") + "."
	tp := correlation.Topics{Detections: p + "det", VideoEvents: p + "ev", Intake: p + "intake", Alerts: p + "alerts",
		AlertRequests: p + "alertreq", Commands: p + "cmd", CameraControls: p + "ctl", DeadLetters: p + "dlq"}
	names := []string{tp.Detections, tp.VideoEvents, tp.Intake, tp.Alerts, tp.AlertRequests, tp.Commands, tp.CameraControls, tp.DeadLetters}
	cl, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ConsumeTopics(tp.Intake, tp.Commands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, names...); err != nil {
		t.Fatal(err)
	}
	ccfg := correlation.DefaultConfig()
	ccfg.Group = testutil.Unique(t, "xsys")
	ccfg.SweepInterval = config.Duration(time.Second)
	ccfg.Zones = []correlation.Zone{
		{ID: "ward-1/room-1", Locations: []string{"Room 1"}, Cameras: []string{"cam-x"}},
		{ID: "ward-1/med-area", Cameras: []string{"cam-x"}, Devices: []string{"pump-1"}, MedicalDeviceArea: true},
	}
	t.Cleanup(func() {
		c, cc := context.WithTimeout(context.Background(), 30*time.Second)
		defer cc()
		_, _ = adm.DeleteTopics(c, append(names, ccfg.Group+"-table", ccfg.Group+"-loop")...)
		_, _ = adm.DeleteGroup(c, ccfg.Group)
	})

	root := config.Default()
	root.Tenant = "hospital-it"
	root.Kafka.Brokers = svc.KafkaBrokers
	root.Kafka.Partitions = 3
	corr, err := correlation.NewRole(&root, ccfg, correlation.WithTopics(tp))
	if err != nil {
		t.Fatal(err)
	}
	srv := rtsptest.Camera(t, rtsptest.H264)
	cam := rtsp.Camera{ID: "cam-x", URL: srv.URL, Zone: "ward-1/room-1",
		Areas: []events.Area{{Name: "med-cabinet", Zone: "ward-1/med-area", Restricted: true,
			Polygon: [][2]float64{{0.5, 0.6}, {1, 0.6}, {1, 1}, {0.5, 1}}}}}
	conn, err := rtsp.New(&root, rtspTestConfig(t, lib, cam), rtsp.WithTopics(tp.Detections, tp.VideoEvents, tp.CameraControls))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- corr.Run(rctx) }()
	go func() { done <- conn.Run(rctx) }()
	defer func() {
		stop()
		for i := 0; i < 2; i++ {
			if err := <-done; err != nil {
				t.Errorf("role: %v", err)
			}
		}
	}()

	now := time.Now().UnixMilli()
	v, _ := codec.Marshal(&pb.MedicationIntake{Meta: &pb.Meta{Tenant: "hospital-it", EventId: "intake-x", EventTimeMs: now},
		PatientId: "p-1", MedicationId: "m-1", IntakeTimeMs: now, Status: "taken", Location: "Room 1"})
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: tp.Intake, Key: []byte("p-1"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	verification := ""
	secured := false
	for ctx.Err() == nil && (verification == "" || !secured) {
		pctx, pc := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case tp.Intake:
				var in pb.MedicationIntake
				if codec.Unmarshal(r.Value, &in) == nil && in.Verification != "" {
					verification = in.Verification
				}
			case tp.Commands:
				var c pb.DeviceCommand
				if codec.Unmarshal(r.Value, &c) == nil && c.DeviceId == "pump-1" && c.CommandType == pb.CommandType_SECURE_DEVICE {
					secured = true
				}
			}
		})
		pc()
	}
	if verification != correlation.CameraConfirmed || !secured {
		t.Fatalf("intake verification %q, pump-1 secured %v", verification, secured)
	}
}

// rtspTestConfig is the rtsp role's config for the given cameras with the
// test model, as connectors/rtsp's own tests configure it.
func rtspTestConfig(t testing.TB, lib string, cams ...rtsp.Camera) rtsp.Config {
	cfg := rtsp.DefaultConfig()
	cfg.ONNXRuntimeLib = lib
	cfg.Detector.Model = rtsptest.ModelPath(t)
	cfg.Detector.Sessions = 2
	cfg.Events.OccupancyStable = config.Duration(time.Second)
	cfg.ReconnectMin = config.Duration(100 * time.Millisecond)
	cfg.ReconnectMax = config.Duration(time.Second)
	cfg.ReadTimeout = config.Duration(2 * time.Second)
	cfg.Cameras = cams
	return cfg
}

// rtspTestLogger logs to stderr under go test -v, else discards.
func rtspTestLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func hasVideoEvent(evs []*pb.VideoEvent, typ pb.VideoEventType) bool {
	return slices.ContainsFunc(evs, func(e *pb.VideoEvent) bool { return e.EventType == typ })
}
