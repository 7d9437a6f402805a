package processors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
// waits until Kafka acknowledged every one.
func PublishSchedules(ctx context.Context, root *config.Root, cfg Config, tenant string, scheds []*pb.DoseSchedule) error {
	if tenant == "" {
		tenant = root.Tenant
	}
	cl, err := kafka.NewClient(root.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	now := time.Now()
	topic := cfg.topic(topics.Schedules)
	recs := make([]*kgo.Record, 0, len(scheds))
	for _, s := range scheds {
		r, err := ScheduleRecord(topic, tenant, s, now)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	var errs []error
	for _, res := range cl.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("publishing schedule %s to %s: %w", res.Record.Key, topic, res.Err))
		}
	}
	return errors.Join(errs...)
}
