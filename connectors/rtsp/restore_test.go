package rtsp_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestEventsSurviveRestart runs the role, stops it while the test
// camera's person is in view, and starts it again on the same Kafka: with
// the state replay the person is still the one PERSON_DETECTED and the
// one OCCUPANCY_CHANGED (0 -> 1) of the first run; with it off (the
// behaviour before it existed) the restart raises both again.
func TestEventsSurviveRestart(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	// Every case on a kfake cluster of its own (kfake seeds the catalog
	// topics unprefixed).
	restartCases(t, lib, nil, func(t *testing.T) string { return "" }, func() *kfake.Cluster { return newCluster(t) })
}

// TestIntegrationEventsSurviveRestart is TestEventsSurviveRestart on the
// real Kafka broker (make services), each case on its own topics.
func TestIntegrationEventsSurviveRestart(t *testing.T) {
	svc := testutil.Integration(t)
	lib := rtsptest.NeedRuntime(t)
	restartCases(t, lib, svc.KafkaBrokers, func(t *testing.T) string {
		prefix := testutil.Unique(t, "rtsprestart") + "."
		cl, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...))
		if err != nil {
			t.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		var names []string
		for _, tp := range []string{topics.Detections, topics.VideoEvents, topics.CameraControls} {
			names = append(names, prefix+tp)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.CreateTopics(ctx, 3, 1, nil, names...); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(ctx, names...)
			cl.Close()
		})
		// Creation is asynchronous: wait for leaders.
		for ctx.Err() == nil {
			tds, err := adm.ListTopics(ctx, names...)
			if err == nil && tds.Error() == nil && len(tds) == len(names) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		return prefix
	}, nil)
}

// restartCases runs the role, stops it while the test camera's person is
// in view, and starts it again on the same Kafka: with the state replay
// the person is still the one PERSON_DETECTED and the one
// OCCUPANCY_CHANGED (0 -> 1) of the first run; with it off (the
// behaviour before it existed) the restart raises both again. setup
// returns the case's topic prefix; fresh, if set, gives kfake cases a
// cluster of their own.
func restartCases(t *testing.T, lib string, brokers []string, setup func(t *testing.T) string, fresh func() *kfake.Cluster) {
	cases := []struct {
		name          string
		lookback      time.Duration
		wantPerson    int
		wantOccupancy int
		wantReplayed  bool
	}{
		{"state replayed", time.Minute, 1, 1, true},
		{"state replay off", 0, 2, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bs := brokers
			if fresh != nil {
				cluster := fresh()
				defer cluster.Close()
				bs = cluster.ListenAddrs()
			}
			srv := rtsptest.Camera(t, rtsptest.H264)
			cfg := baseConfig(t, lib, rtsp.Camera{ID: "cam-restart", URL: srv.URL, Tenant: "t1", Zone: "ward-1/room-3"})
			cfg.StateLookback = config.Duration(c.lookback)
			cfg.TopicPrefix = setup(t)

			first := runRoleOn(t, bs, cfg, prometheus.NewRegistry(), 20*time.Second, func(r runResult) bool {
				return countEvents(r.events, pb.VideoEventType_OCCUPANCY_CHANGED) >= 1 && len(r.frames) >= 10
			})
			if n := countEvents(first.events, pb.VideoEventType_PERSON_DETECTED); n != 1 {
				t.Fatalf("first run: %d PERSON_DETECTED, want 1 (person always in view)", n)
			}
			reg := prometheus.NewRegistry()
			before := len(first.frames)
			second := runRoleOn(t, bs, cfg, reg, 20*time.Second, func(r runResult) bool {
				return len(r.frames) >= before+15
			})
			if len(second.frames) < before+15 {
				t.Fatalf("second run produced %d frames, want >= 15", len(second.frames)-before)
			}
			if n := countEvents(second.events, pb.VideoEventType_PERSON_DETECTED); n != c.wantPerson {
				t.Errorf("PERSON_DETECTED over both runs: %d, want %d", n, c.wantPerson)
			}
			if n := countEvents(second.events, pb.VideoEventType_OCCUPANCY_CHANGED); n != c.wantOccupancy {
				t.Errorf("OCCUPANCY_CHANGED over both runs: %d, want %d", n, c.wantOccupancy)
			}
			replayed, _ := testutil.MetricValue(t, reg, "wardstream_rtsp_state_replayed_records_total", "outcome", "replayed")
			if (replayed > 0) != c.wantReplayed {
				t.Errorf("replayed %v records at the restart, want > 0: %v", replayed, c.wantReplayed)
			}
		})
	}
}

func countEvents(evs []*pb.VideoEvent, typ pb.VideoEventType) int {
	n := 0
	for _, e := range evs {
		if e.EventType == typ {
			n++
		}
	}
	return n
}
