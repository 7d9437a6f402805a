package processors_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/pipelines/processors"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestPublishSchedulesChecksVersions: the adherence group applies a
// schedule only with a version above the one it has, so `schedules apply`
// refuses (publishing nothing) a changed schedule whose version was not
// raised and a lower version, which it used to publish and report as
// published while the processors ignored them; a schedule equal to the
// published one is left out, so re-applying a file is a no-op.
func TestPublishSchedulesChecksVersions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.Schedules))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := config.Default()
	root.Kafka.Brokers = c.ListenAddrs()
	cfg := processors.DefaultConfig()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sched := func(patient string, version int64, times ...string) *pb.DoseSchedule {
		return &pb.DoseSchedule{PatientId: patient, MedicationId: "m", Timezone: "UTC", Times: times, StartDate: "2026-03-01",
			DosesPerTime: 1, GraceMinutes: 15, EarlyWindowMinutes: 60, LateWindowMinutes: 240, Version: version}
	}
	records := func() int {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics.Schedules), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		n := 0
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		defer pcancel()
		for pctx.Err() == nil {
			cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
				var s pb.DoseSchedule
				if codec.Unmarshal(r.Value, &s) != nil {
					t.Errorf("undecodable schedule record")
				}
				n++
			})
		}
		return n
	}
	n, err := processors.PublishSchedules(ctx, &root, cfg, "", []*pb.DoseSchedule{sched("p1", 1, "08:00"), sched("p2", 3, "09:00")})
	if err != nil || n != 2 {
		t.Fatalf("first apply: %d, %v", n, err)
	}
	for _, tc := range []struct {
		name    string
		scheds  []*pb.DoseSchedule
		want    int    // published
		wantErr string // "" for none
		records int    // on the topic afterwards
	}{
		{"same file again: nothing to publish", []*pb.DoseSchedule{sched("p1", 1, "08:00"), sched("p2", 3, "09:00")}, 0, "", 2},
		{"changed at the same version: refused, nothing published", []*pb.DoseSchedule{sched("p1", 1, "08:30"), sched("p3", 1, "07:00")}, 0, "changed, but its version 1", 2},
		{"lower version: refused", []*pb.DoseSchedule{sched("p2", 2, "09:00")}, 0, "version 2 is below the published version 3", 2},
		{"raised version and a new schedule: published", []*pb.DoseSchedule{sched("p1", 2, "08:30"), sched("p3", 1, "07:00")}, 2, "", 4},
		{"the raised version again: nothing", []*pb.DoseSchedule{sched("p1", 2, "08:30")}, 0, "", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := processors.PublishSchedules(ctx, &root, cfg, "", tc.scheds)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if n != tc.want {
				t.Fatalf("published %d, want %d", n, tc.want)
			}
			if got := records(); got != tc.records {
				t.Fatalf("%d schedule records on the topic, want %d", got, tc.records)
			}
		})
	}
}
