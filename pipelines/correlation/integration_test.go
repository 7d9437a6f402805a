package correlation_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/pipelines/correlation"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestIntegrationCorrelation runs the group on the real Kafka with private
// topics: a person detection confirms an intake in its zone, an old intake
// with no sighting is UNVERIFIED, unauthorized access in the medical device
// area secures its devices and raises an alert request, and an emergency
// boosts the patient's camera.
func TestIntegrationCorrelation(t *testing.T) {
	svc := testutil.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cfg := testConfig()
	cfg.Group = testutil.Unique(t, "corr")
	cfg.SweepInterval = config.Duration(time.Second)
	cfg.Grace = config.Duration(time.Second)

	tp := itTopics(ctx, t, svc.KafkaBrokers, "corrit", cfg.Group, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ConsumeTopics(tp.Intake, tp.Commands, tp.AlertRequests, tp.CameraControls),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	root := config.Default()
	root.Kafka.Brokers = svc.KafkaBrokers
	root.Kafka.Partitions = 3
	role, err := correlation.NewRole(&root, cfg, correlation.WithTopics(tp))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- role.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("role: %v", err)
		}
	}()

	now := time.Now().UnixMilli()
	produce := func(topic, key string, m proto.Message) {
		v, err := codec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(tp.Detections, "cam-1", &pb.FrameDetections{CameraId: "cam-1", Zone: "ward-1/room-1", FrameTimeMs: now - 30_000,
		Detections: []*pb.Detection{{ClassName: "person", Confidence: 0.9, Box: &pb.Box{W: 0.1, H: 0.2}}}})
	// Order across topics is not guaranteed; the intake may arrive first
	// and wait (pending) for the sighting: both orders must confirm it.
	produce(tp.Intake, "p-1", &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "t1", EventId: "in-confirmed", EventTimeMs: now},
		PatientId: "p-1", MedicationId: "m-1", IntakeTimeMs: now, Status: "taken", Location: "Room 1"})
	produce(tp.Intake, "p-1", &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "t1", EventId: "in-unverified", EventTimeMs: now - 600_000},
		PatientId: "p-1", MedicationId: "m-1", IntakeTimeMs: now - 600_000, Status: "taken", Location: "Room 1"})
	produce(tp.VideoEvents, "cam-2", &pb.VideoEvent{Meta: &pb.Meta{Tenant: "t1", EventId: "ve-1"}, CameraId: "cam-2",
		Zone: "ward-1/med-area", EventType: pb.VideoEventType_UNAUTHORIZED_ACCESS, StartTimeMs: now})
	produce(tp.Alerts, "p-1", &pb.Alert{Meta: &pb.Meta{Tenant: "t1", EventId: "a1@1"}, AlertId: "a1", AlertType: pb.AlertType_VITALS_EMERGENCY,
		State: pb.AlertState_OPEN, PatientId: "p-1", OpenedTimeMs: now})

	verified := map[string]string{}
	secured := map[string]bool{}
	var alertReqs, boosts int
	for ctx.Err() == nil && !(len(verified) == 2 && len(secured) == 2 && alertReqs == 1 && boosts == 1) {
		pctx, pc := context.WithTimeout(ctx, time.Second)
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case tp.Intake:
				var in pb.MedicationIntake
				_ = codec.Unmarshal(r.Value, &in)
				if in.Verification != "" {
					verified[in.Meta.EventId] = in.Verification
				}
			case tp.Commands:
				var c pb.DeviceCommand
				_ = codec.Unmarshal(r.Value, &c)
				if c.CommandType == pb.CommandType_SECURE_DEVICE {
					secured[c.DeviceId] = true
				}
			case tp.AlertRequests:
				alertReqs++
			case tp.CameraControls:
				var ev pb.VideoEvent
				_ = codec.Unmarshal(r.Value, &ev)
				if ev.CameraId == "cam-1" && ev.EventType == pb.VideoEventType_SAMPLE_RATE_BOOST {
					boosts++
				}
			}
		})
		pc()
	}
	if verified["in-confirmed"] != correlation.CameraConfirmed || verified["in-unverified"] != correlation.Unverified {
		t.Errorf("verified %v", verified)
	}
	if !secured["pump-1"] || !secured["pump-2"] || alertReqs != 1 || boosts != 1 {
		t.Errorf("secured %v, alert requests %d, boosts %d", secured, alertReqs, boosts)
	}
}

// itTopics creates a private set of the group's topics (partitions each,
// names starting with a unique name) on the real broker, and deletes them,
// the group's table and loop topics and the group at cleanup.
func itTopics(ctx context.Context, t testing.TB, brokers []string, name, group string, partitions int32) correlation.Topics {
	t.Helper()
	p := testutil.Unique(t, name) + "."
	tp := correlation.Topics{Detections: p + "det", VideoEvents: p + "ev", Intake: p + "intake", Alerts: p + "alerts",
		AlertRequests: p + "alertreq", Commands: p + "cmd", CameraControls: p + "ctl", DeadLetters: p + "dlq"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	names := []string{tp.Detections, tp.VideoEvents, tp.Intake, tp.Alerts, tp.AlertRequests, tp.Commands, tp.CameraControls, tp.DeadLetters}
	if _, err := adm.CreateTopics(ctx, partitions, 1, nil, names...); err != nil {
		cl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer cl.Close()
		c, cc := context.WithTimeout(context.Background(), 30*time.Second)
		defer cc()
		_, _ = adm.DeleteTopics(c, append(names, group+"-table", group+"-loop")...)
		_, _ = adm.DeleteGroup(c, group)
	})
	return tp
}
