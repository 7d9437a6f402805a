package processors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// ScheduleRecord returns the Kafka record of a schedule on the schedule
// topic: keyed "patientId|medicationId", with Meta filled (tenant, a
// deterministic event id per patient, medication and version, event time
// now). The schedule applies to doses from its event time on.
func ScheduleRecord(topic, tenant string, s *pb.DoseSchedule, now time.Time) (*kgo.Record, error) {
	if s.Meta == nil {
		s.Meta = &pb.Meta{}
	}
	if s.Meta.Tenant == "" {
		s.Meta.Tenant = tenant
	}
	s.Meta.EventId = "schedule|" + s.PatientId + "|" + s.MedicationId + "|v" + strconv.FormatInt(s.Version, 10)
	if s.Meta.EventTimeMs == 0 {
		s.Meta.EventTimeMs = now.UnixMilli()
	}
	s.Meta.IngestTimeMs = now.UnixMilli()
	s.Meta.Source = "wardstream schedules apply"
	b, err := codec.Marshal(s)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(topics.ScheduleKey(s.PatientId, s.MedicationId)), Value: b}, nil
}

// PublishSchedules produces schedules (already validated, e.g. by
// schedule.ParseFile) to the schedule topic (TopicPrefix applied) and
// waits until Kafka acknowledged every one. It returns how many it
// published.
//
// It first reads what the topic holds (the latest record per key) and
// checks every schedule against it, publishing nothing if one fails: the
// adherence group applies a schedule only with a version above the one it
// has, so a changed schedule whose version was not raised, or a lower
// version, would be published and then ignored (and a lower version would
// replace the newer one in the compacted topic). A schedule equal to the
// published one at its version is left out (re-applying a file is a
// no-op).
func PublishSchedules(ctx context.Context, root *config.Root, cfg Config, tenant string, scheds []*pb.DoseSchedule) (int, error) {
	if tenant == "" {
		tenant = root.Tenant
	}
	cl, err := kafka.NewClient(root.Kafka)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	topic := cfg.topic(topics.Schedules)
	published, err := PublishedSchedules(ctx, root.Kafka, topic)
	if err != nil {
		return 0, err
	}
	todo, err := CheckScheduleVersions(published, tenant, scheds)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	recs := make([]*kgo.Record, 0, len(todo))
	for _, s := range todo {
		r, err := ScheduleRecord(topic, tenant, s, now)
		if err != nil {
			return 0, err
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	var errs []error
	for _, res := range cl.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("publishing schedule %s to %s: %w", res.Record.Key, topic, res.Err))
		}
	}
	return len(recs) - len(errs), errors.Join(errs...)
}

// CheckScheduleVersions returns the schedules to publish given what the
// topic holds (published, by key): an error naming every schedule whose
// version is below the published one, or equal to it with other content
// (the adherence group would ignore it); schedules equal to the published
// one (tenant and content, not the event time) are left out.
func CheckScheduleVersions(published map[string]*pb.DoseSchedule, tenant string, scheds []*pb.DoseSchedule) ([]*pb.DoseSchedule, error) {
	var todo []*pb.DoseSchedule
	var errs []error
	for _, s := range scheds {
		key := topics.ScheduleKey(s.PatientId, s.MedicationId)
		cur := published[key]
		if cur == nil {
			todo = append(todo, s)
			continue
		}
		switch {
		case s.Version > cur.Version:
			todo = append(todo, s)
		case s.Version < cur.Version:
			errs = append(errs, fmt.Errorf("schedule %s: version %d is below the published version %d (the processors would ignore it): raise it above %d", key, s.Version, cur.Version, cur.Version))
		case !sameSchedule(cur, s, tenant):
			errs = append(errs, fmt.Errorf("schedule %s: changed, but its version %d is the published one (the processors would ignore it): raise it", key, s.Version))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nothing published: %w", errors.Join(errs...))
	}
	return todo, nil
}

// sameSchedule reports whether a published schedule and one to publish for
// tenant say the same (Meta aside, but for its tenant).
func sameSchedule(cur, s *pb.DoseSchedule, tenant string) bool {
	if t := s.GetMeta().GetTenant(); t != "" {
		tenant = t
	}
	if cur.GetMeta().GetTenant() != tenant {
		return false
	}
	a, b := proto.Clone(cur).(*pb.DoseSchedule), proto.Clone(s).(*pb.DoseSchedule)
	a.Meta, b.Meta = nil, nil
	return proto.Equal(a, b)
}

// PublishedSchedules reads the schedule topic from its start to the end
// offsets it has when called and returns the latest schedule per key (a
// tombstone removes its key). Undecodable records are skipped: the
// processors dead-letter them and they constrain nothing.
func PublishedSchedules(ctx context.Context, kcfg config.Kafka, topic string) (map[string]*pb.DoseSchedule, error) {
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	parts := map[int32]kgo.Offset{}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			parts[o.Partition] = kgo.NewOffset().AtStart()
			want[o.Partition] = o.Offset
		}
	})
	out := map[string]*pb.DoseSchedule{}
	if len(parts) == 0 {
		return out, nil
	}
	rd, err := kafka.NewClient(kcfg, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	defer rd.Close()
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("reading %s/%d: %w", t, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				delete(out, string(r.Key))
			} else {
				var s pb.DoseSchedule
				if codec.Unmarshal(r.Value, &s) == nil {
					out[string(r.Key)] = &s
				}
			}
			if w, ok := want[r.Partition]; ok && r.Offset+1 >= w {
				delete(want, r.Partition)
			}
		})
	}
	return out, nil
}
