package rtsp_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
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
	lib := needRuntime(t)
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
	srv := camera(t, rtsptest.H264)
	cam := rtsp.Camera{ID: "cam-it", URL: srv.URL, Tenant: "hospital-it", Zone: "ward-1/room-1", Ward: "ward-1", Location: "Ward 1, Room 1"}
	cfg := baseConfig(t, lib, cam)
	conn2, err := rtsp.New(&root, cfg, rtsp.WithTopics(prefix+topics.Detections, prefix+topics.VideoEvents, prefix+topics.CameraControls),
		rtsp.WithRegisterer(prometheus.NewRegistry()), rtsp.WithLogger(testLogger()))
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
	var res runResult
	for ctx.Err() == nil && (len(res.frames) < 25 || !hasEvent(res.events, pb.VideoEventType_PERSON_DETECTED)) {
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
	mean := checkBoxes(t, srv, res.frames, "cam-it")
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
