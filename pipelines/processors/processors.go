// Package processors provides the processors role of wardstream: it runs
// the stateful goka groups of pipelines/ (adherence, anomaly, alerts) on
// Kafka, drives their clock, creates the topics they need and reports
// readiness. Instances sharing a group share its partitions through the
// Kafka consumer group; a failed instance's partitions move to the others,
// which restore the state from the group table topics.
//
// The clock: goka has no timers, so every TickInterval the role calls
// VisitAll on the adherence group (finalizing doses whose grace passed as
// MISSED) and on the alerts group (escalating alerts past their SLA). A
// visit runs inside each partition's goroutine over the keys of the
// partitions this instance currently owns, in order with the partition's
// messages, so nothing has to hand timers over on a rebalance: whoever owns
// a partition next finds the overdue doses in its restored table. Outputs
// are idempotent (deterministic ids and versions), so a visit repeated
// after a crash re-emits identical records.
//
// Sizing the clock: a visit decodes every key of the owned partitions; with
// 1M doses a day (about 250k patients at 4 doses) and a 15 s tick, each of
// N instances decodes 250k/N states per tick (see the benchmarks in
// pipelines/adherence). Keys with nothing due are not rewritten.
//
// It does not consume from MQTT or write to ClickHouse (the mqtt and sink
// roles do).
package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/sync/errgroup"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/gokaprod"
	"github.com/wardstream/wardstream/internal/gokastore"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/kafkahash"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/pipelines/adherence"
	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/pipelines/internal/gokalog"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Name is the role name.
const Name = "processors"

// Option injects dependencies.
type Option func(*Role)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(r *Role) { r.log = l } }

// WithRegisterer sets the Prometheus registerer (default: none).
func WithRegisterer(reg prometheus.Registerer) Option { return func(r *Role) { r.reg = reg } }

// WithHealth sets the health tracker the role reports readiness to.
func WithHealth(h *runtime.Health) Option { return func(r *Role) { r.health = h } }

// WithClock sets the processing-time clock (default time.Now); tests use it.
func WithClock(now func() time.Time) Option { return func(r *Role) { r.now = now } }

// Role runs the goka groups. Build it with [New]; Run it once.
type Role struct {
	root   *config.Root
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	health *runtime.Health
	now    func() time.Time

	adh *adherence.Processor
	ano *anomaly.Processor
	alr *alerts.Processor

	ticks    *prometheus.CounterVec
	tickTime *prometheus.HistogramVec
	restarts *prometheus.CounterVec

	mu    sync.Mutex
	procs map[string]*goka.Processor
}

// New builds the role; it does no I/O.
func New(root *config.Root, cfg Config, opts ...Option) (*Role, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Role{root: root, cfg: cfg, now: time.Now, procs: map[string]*goka.Processor{}}
	for _, o := range opts {
		o(r)
	}
	r.log = telemetry.OrDiscard(r.log).With("component", "pipelines/processors")
	if r.health == nil {
		r.health = runtime.NewHealth()
	}
	var err error
	if r.runs(GroupAdherence) {
		c := cfg.adherence()
		c.Tenant = root.Tenant
		if r.adh, err = adherence.New(c, adherence.WithLogger(r.log), adherence.WithRegisterer(r.reg), adherence.WithClock(r.now)); err != nil {
			return nil, err
		}
	}
	if r.runs(GroupAnomaly) {
		c := cfg.anomaly()
		c.Tenant = root.Tenant
		if r.ano, err = anomaly.New(c, anomaly.WithLogger(r.log), anomaly.WithRegisterer(r.reg), anomaly.WithClock(r.now)); err != nil {
			return nil, err
		}
	}
	if r.runs(GroupAlerts) {
		c := cfg.alerts()
		c.Tenant = root.Tenant
		if r.alr, err = alerts.New(c, alerts.WithLogger(r.log), alerts.WithRegisterer(r.reg), alerts.WithClock(r.now)); err != nil {
			return nil, err
		}
	}
	r.ticks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_clock_ticks_total",
		Help: "Clock visits run, by group and result."}, []string{"group", "result"})
	r.tickTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wardstream_processors_clock_visit_seconds",
		Help: "Duration of one clock visit over the owned partitions.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"group"})
	r.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_group_restarts_total",
		Help: "Goka groups rebuilt and restarted after a failure, by group."}, []string{"group"})
	if r.reg != nil {
		for _, c := range []prometheus.Collector{r.ticks, r.tickTime, r.restarts} {
			if err := r.reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering processors metrics: %w", err)
			}
		}
	}
	r.health.NotReady(Name)
	return r, nil
}

// Name implements runtime.Role.
func (r *Role) Name() string { return Name }

func (r *Role) runs(g string) bool { return slices.Contains(r.cfg.Groups, g) }

// Topics returns every Kafka topic the role reads or writes that it must
// create when missing (goka creates the table and loopback topics).
func (r *Role) Topics() []string {
	c := r.cfg
	out := []string{c.topic(topics.DeadLetters), c.topic(c.AlertRequestsTopic), c.topic(topics.AlertAcks)}
	if r.runs(GroupAdherence) {
		out = append(out, c.topic(topics.Intake), c.topic(topics.Schedules), c.topic(topics.DoseOutcomes), c.topic(topics.Adherence))
	}
	if r.runs(GroupAnomaly) {
		out = append(out, c.topic(topics.Vitals), c.topic(topics.VitalsBatches), c.topic(topics.DeviceStatus), c.topic(topics.AnomalyScores), c.topic(topics.ScoreBatches))
	}
	if r.runs(GroupAlerts) {
		out = append(out, c.topic(topics.Alerts))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// EnsureTopics creates the role's topics that are missing, with the
// catalog's settings (partitions from the kafka section). The alert
// requests topic gets the partitions of the alerts-ack topic, with which
// the alerts group co-partitions it.
func (r *Role) EnsureTopics(ctx context.Context) error {
	cl, err := kafka.NewClient(r.root.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := r.Topics()
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("listing topics on %v: %w", r.root.Kafka.Brokers, err)
	}
	var errs []error
	create := func(name string, parts int32, cfgs map[string]*string) {
		if td, ok := existing[name]; ok && td.Err == nil {
			return
		}
		resp, err := adm.CreateTopic(ctx, parts, r.root.Kafka.ReplicationFactor, cfgs, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %s: %w", name, err))
		}
	}
	ackParts := int32(0)
	for _, name := range names {
		t, ok := topics.Lookup(name[len(r.cfg.TopicPrefix):])
		if !ok {
			continue
		}
		parts := kafka.PartitionsFor(r.root.Kafka, t)
		if td, ok := existing[name]; ok && td.Err == nil {
			parts = int32(len(td.Partitions))
		}
		if t.Name == topics.AlertAcks {
			ackParts = parts
		}
		create(name, parts, t.Configs())
	}
	retention := strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)
	del := "delete"
	create(r.cfg.topic(r.cfg.AlertRequestsTopic), ackParts, map[string]*string{"cleanup.policy": &del, "retention.ms": &retention})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return kafka.WaitTopics(ctx, adm, names, 30*time.Second)
}

// gokaOptions builds the goka options for one group: sarama settings from
// the kafka section (one config per group, since goka's builders mutate
// it), the co-partitioning rebalance strategy goka needs, table topics
// with the cluster's replication, and the storage.
func (r *Role) gokaOptions(group string) ([]goka.ProcessorOption, error) {
	sc, err := kafka.SaramaConfig(r.root.Kafka)
	if err != nil {
		return nil, err
	}
	sc.ClientID = r.root.Kafka.ClientID + "-" + group
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{goka.CopartitioningStrategy}
	sc.Consumer.MaxProcessingTime = time.Second
	// Bigger channels and fetches amortize sarama's per-message overhead.
	sc.ChannelBufferSize = 4096
	sc.Consumer.Fetch.Default = 4 << 20
	sc.Metadata.AllowAutoTopicCreation = false
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = int(r.root.Kafka.ReplicationFactor)
	tmc.Stream.Replication = int(r.root.Kafka.ReplicationFactor)
	tmc.Stream.Retention = 7 * 24 * time.Hour
	sb := gokastore.Builder()
	if r.cfg.StorageDir != "" {
		sb = storage.DefaultBuilder(r.cfg.StorageDir + "/" + group)
	}
	return []goka.ProcessorOption{
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		// franz-go instead of sarama's AsyncProducer (see gokaprod).
		goka.WithProducerBuilder(gokaprod.Builder(r.root.Kafka)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tmc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithStorageBuilder(sb),
		goka.WithLogger(gokalog.New(r.log)),
		goka.WithClientID(sc.ClientID),
		// Partition like every franz-go producer does (see kafkahash).
		goka.WithHasher(kafkahash.New),
		// Records without a value reach the callbacks: goka's default
		// (NilIgnore) drops them unseen, which would lose a schedule's
		// deletion (a tombstone on the compacted schedules topic) and
		// drop empty records silently instead of dead-lettering them.
		// Every callback of these groups handles a nil value.
		goka.WithNilHandling(goka.NilProcess),
	}, nil
}

// Run creates missing topics, runs the groups and the clock until ctx is
// done, then stops the groups (goka commits and flushes on stop) within
// the topology's drain timeout.
func (r *Role) Run(ctx context.Context) error {
	if err := r.EnsureTopics(ctx); err != nil {
		return err
	}
	type grp struct {
		name  string
		graph *goka.GroupGraph
		visit string
	}
	var groups []grp
	if r.adh != nil {
		groups = append(groups, grp{GroupAdherence, r.adh.Graph(), adherence.VisitClock})
	}
	if r.ano != nil {
		groups = append(groups, grp{GroupAnomaly, r.ano.Graph(), ""})
	}
	if r.alr != nil {
		groups = append(groups, grp{GroupAlerts, r.alr.Graph(), alerts.VisitEscalate})
	}
	build := func(name string, graph *goka.GroupGraph) (groupRunner, error) {
		opts, err := r.gokaOptions(name)
		if err != nil {
			return nil, err
		}
		p, err := goka.NewProcessor(r.root.Kafka.Brokers, graph, opts...)
		if err != nil {
			return nil, fmt.Errorf("building goka group %s: %w", name, err)
		}
		r.mu.Lock()
		r.procs[name] = p
		r.mu.Unlock()
		return p, nil
	}
	for _, g := range groups { // configuration errors fail the role at once
		if _, err := build(g.name, g.graph); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	eg, egCtx := errgroup.WithContext(runCtx)
	for _, g := range groups {
		g := g
		first := r.Processor(g.name)
		eg.Go(func() error {
			return r.restartLoop(egCtx, g.name, first, func() (groupRunner, error) { return build(g.name, g.graph) })
		})
	}
	eg.Go(func() error { r.watchReady(egCtx); return nil })
	for _, g := range groups {
		if g.visit == "" {
			continue
		}
		g := g
		eg.Go(func() error { r.clock(egCtx, g.name, g.visit); return nil })
	}
	stopped := make(chan error, 1)
	go func() { stopped <- eg.Wait() }()
	select {
	case err := <-stopped:
		r.health.Set(Name, errors.New("stopped"))
		return err
	case <-ctx.Done():
	}
	r.health.Set(Name, errors.New("draining"))
	r.log.Info("draining goka groups")
	cancel()
	dctx, dcancel := runtime.DrainContext(ctx, r.root.DrainTimeout.D())
	defer dcancel()
	select {
	case err := <-stopped:
		return err
	case <-dctx.Done():
		return fmt.Errorf("goka groups did not stop within drain timeout %s", r.root.DrainTimeout.D())
	}
}

// groupRunner is a goka processor as restartLoop sees it.
type groupRunner interface {
	Run(ctx context.Context) error
}

// restartLoop runs a group until ctx is done. When it fails, it is rebuilt
// (new goka processor: new consumer group session, tables recovered from
// their topics) and restarted after a backoff, up to GroupRestarts failures
// in a row; a run that lasted restartReset resets the count. Outputs are
// keyed and idempotent, so reprocessing from the last commit is safe.
func (r *Role) restartLoop(ctx context.Context, name string, p groupRunner, build func() (groupRunner, error)) error {
	backoff, failures := restartBackoff, 0
	var buildErr error
	for {
		start := time.Now()
		var err error
		if p != nil {
			err = p.Run(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("stopped without an error")
			}
			if time.Since(start) >= restartReset {
				backoff, failures = restartBackoff, 0
			}
		} else {
			err = buildErr
		}
		failures++
		if failures > r.cfg.GroupRestarts {
			return fmt.Errorf("goka group %s: failed %d times in a row: %w", name, failures, err)
		}
		r.restarts.WithLabelValues(name).Inc()
		r.log.Error("goka group failed; restarting it", "group", name, "failure", failures, "of", r.cfg.GroupRestarts+1, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		// Rebuilding connects to the brokers (goka prepares its topics):
		// when they are what failed, it fails too, and counts as one more
		// failure of the group, retried after the backoff like a run.
		if p, buildErr = build(); buildErr != nil {
			p = nil
		}
	}
}

// restartReset is how long a group must run for its failures to be
// forgotten; restartBackoff is the first wait before a restart.
var (
	restartReset   = 2 * time.Minute
	restartBackoff = time.Second
)

// watchReady keeps the role's readiness: ready while every group's
// processor has recovered its tables (a restarted group is not, until it
// has recovered again).
func (r *Role) watchReady(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	ready, logged := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all := true
		r.mu.Lock()
		for _, p := range r.procs {
			all = all && p.Recovered()
		}
		r.mu.Unlock()
		if all == ready {
			continue
		}
		ready = all
		if ready {
			r.health.Set(Name, nil)
			if !logged {
				r.log.Info("goka groups recovered", "groups", r.cfg.Groups)
				logged = true
			}
		} else {
			r.health.Set(Name, errors.New("a goka group is recovering"))
		}
	}
}

// clock visits every key of the group's owned partitions each tick (of
// the group's current processor: a restart replaces it).
func (r *Role) clock(ctx context.Context, name string, visit string) {
	t := time.NewTicker(r.cfg.TickInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := r.Processor(name)
		if p == nil || !p.Recovered() {
			continue
		}
		start := time.Now()
		n, err := p.VisitAllWithStats(ctx, visit, r.now().UnixMilli())
		r.tickTime.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// A rebalance cancels a visit; the next tick covers it.
			r.ticks.WithLabelValues(name, "interrupted").Inc()
			r.log.Debug("clock visit interrupted", "group", name, "err", err)
			continue
		}
		r.ticks.WithLabelValues(name, "ok").Inc()
		r.log.Debug("clock visit", "group", name, "keys", n, "took", time.Since(start))
	}
}

// Processor returns the running goka processor of group (nil before Run);
// tests use it to look into tables.
func (r *Role) Processor(group string) *goka.Processor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[group]
}
