package correlation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/gokaprod"
	"github.com/wardstream/wardstream/internal/gokastore"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/kafkahash"
	"github.com/wardstream/wardstream/pipelines/internal/gokalog"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Role runs the correlation group and its sweep clock.
type Role struct {
	root *config.Root
	p    *Processor
}

// NewRole builds the role; it does no I/O.
func NewRole(root *config.Root, cfg Config, opts ...Option) (*Role, error) {
	p, err := New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	return &Role{root: root, p: p}, nil
}

// Name returns "correlation".
func (r *Role) Name() string { return "correlation" }

// Run creates missing output topics, runs the group and visits every zone
// each sweep interval until ctx is done; goka commits and flushes on stop.
func (r *Role) Run(ctx context.Context) error {
	if err := r.ensureTopics(ctx); err != nil {
		return err
	}
	sc, err := kafka.SaramaConfig(r.root.Kafka)
	if err != nil {
		return err
	}
	sc.ClientID = r.root.Kafka.ClientID + "-correlation"
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{goka.CopartitioningStrategy}
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = int(r.root.Kafka.ReplicationFactor)
	tmc.Stream.Replication = int(r.root.Kafka.ReplicationFactor)
	tmc.Stream.Retention = 7 * 24 * time.Hour
	proc, err := goka.NewProcessor(r.root.Kafka.Brokers, r.p.Graph(),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithProducerBuilder(gokaprod.Builder(r.root.Kafka)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tmc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithStorageBuilder(gokastore.Builder()),
		goka.WithLogger(gokalog.New(r.p.log)),
		goka.WithClientID(sc.ClientID),
		goka.WithHasher(kafkahash.New),
	)
	if err != nil {
		return fmt.Errorf("correlation: building processor: %w", err)
	}
	clockCtx, stopClock := context.WithCancel(ctx)
	defer stopClock()
	go func() {
		t := time.NewTicker(r.p.cfg.SweepInterval.D())
		defer t.Stop()
		for {
			select {
			case <-clockCtx.Done():
				return
			case <-t.C:
				if err := proc.VisitAll(clockCtx, VisitSweep, r.p.now().UnixMilli()); err != nil && clockCtx.Err() == nil {
					r.p.log.Warn("sweep failed", "err", err)
				}
			}
		}
	}()
	r.p.log.Info("correlation group running", "group", r.p.cfg.Group, "zones", len(r.p.cfg.Zones))
	if err := proc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("correlation: %w", err)
	}
	return nil
}

// ensureTopics creates the inputs and outputs that do not exist yet (the
// alert-request topic with the alerts-ack partitions, as the alerts group
// needs them co-partitioned).
func (r *Role) ensureTopics(ctx context.Context) error {
	cl, err := kafka.NewClient(r.root.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := r.p.topics
	names := []string{t.Detections, t.VideoEvents, t.Intake, t.Alerts, t.Commands, t.CameraControls, t.DeadLetters, t.AlertRequests}
	acks := t.Prefix + topics.AlertAcks
	existing, err := adm.ListTopics(ctx, append(names, acks)...)
	if err != nil {
		return fmt.Errorf("correlation: listing topics on %v: %w", r.root.Kafka.Brokers, err)
	}
	var errs []error
	for _, name := range names {
		if td, ok := existing[name]; ok && td.Err == nil {
			continue
		}
		var parts int32
		var cfgs map[string]*string
		if tp, ok := topics.Lookup(strings.TrimPrefix(name, t.Prefix)); ok && name != t.AlertRequests {
			parts, cfgs = kafka.PartitionsFor(r.root.Kafka, tp), tp.Configs()
		} else {
			// The alert-request topic: partitions of alerts-ack.
			ack, _ := topics.Lookup(topics.AlertAcks)
			parts = kafka.PartitionsFor(r.root.Kafka, ack)
			if td, ok := existing[acks]; ok && td.Err == nil {
				parts = int32(len(td.Partitions))
			}
			ms := strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)
			cfgs = map[string]*string{"retention.ms": &ms}
		}
		resp, err := adm.CreateTopic(ctx, parts, r.root.Kafka.ReplicationFactor, cfgs, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("correlation: creating topic %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Only the topics the role creates: alerts-ack may not exist (its
	// partitions only size the alert-request topic).
	return kafka.WaitTopics(ctx, adm, names, 30*time.Second)
}
