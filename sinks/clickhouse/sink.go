package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Option injects what code (not YAML) decides.
type Option func(*Sink)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Sink) { s.log = l } }

// WithRegisterer sets where metrics are registered (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Sink) { s.reg = r } }

// WithHealth sets the readiness tracker; the sink reports "sink" ready once
// it reaches ClickHouse and while its circuit breaker is closed.
func WithHealth(h *runtime.Health) Option { return func(s *Sink) { s.health = h } }

// WithKafkaOpts appends franz-go options (tests).
func WithKafkaOpts(o ...kgo.Opt) Option { return func(s *Sink) { s.kopts = append(s.kopts, o...) } }

// Sink is the ClickHouse sink role: it consumes the catalog topics in the
// consumer group, converts records to rows, and inserts them in batches.
// Run may be called once.
type Sink struct {
	root   *config.Root
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	health *runtime.Health
	kopts  []kgo.Opt
	m      *metrics
	// Counted per record, added to the counters once per poll (an atomic
	// add per record was a tenth of record's CPU).
	nRecords, nFast int
	// rc is the record context, reused (mappers do not keep it).
	rc recCtx
	// befores: each route's row count before the record (convert), reused.
	befores []int

	// kafka topic -> catalog topic and routes
	catalog map[string]topics.Topic
	routes  map[string][]boundRoute
	dlq     string

	// Everything below is guarded by mu: the poll loop holds it while it
	// processes and inserts (released in cond waits and while a dead
	// letter is produced), the rebalance callbacks while they flush.
	mu     sync.Mutex
	cl     *kgo.Client
	conn   driver.Conn
	caps   chschema.Caps
	tables []*tableBuf
	// pos: per partition, the offset after the last record processed and
	// its leader epoch (absent: none processed yet); curPK/cur cache the
	// entry of the partition of the previous record (consecutive records
	// share it), dropped whenever an entry or an assignment goes away.
	pos      map[partKey]*partPos
	curPK    partKey
	cur      *partPos
	assigned map[partKey]bool
	buffered int               // rows held: filling and in the air
	rewind   map[partKey]int64 // where to re-read dropped partitions from
	brk      breaker
	paused   bool
	ran      bool
	msgs     map[string]proto.Message // decode target per topic, reused

	// Flights (flight.go): cond is broadcast whenever one lands or dies;
	// fctx is every flight's parent (cancelled when the drain ends); sem
	// bounds the inserts running at once; probing and nextProbe pace the
	// breaker's probes; pollCancel ends the poll in progress (a landing
	// changed its deadline).
	cond       *sync.Cond
	flying     int
	fctx       context.Context
	fcancel    context.CancelFunc
	sem        chan struct{}
	probing    bool
	nextProbe  time.Time
	pollCancel context.CancelFunc
	aborting   bool // abort is waiting for the flights to end
}

type boundRoute struct {
	tb   *tableBuf
	fn   mapper
	fast fastMapper
	fd   *fastDec
}

// New builds the sink; it does no I/O.
func New(root *config.Root, cfg Config, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{root: root, cfg: cfg, catalog: map[string]topics.Topic{}, routes: map[string][]boundRoute{},
		msgs: map[string]proto.Message{}, pos: map[partKey]*partPos{}, assigned: map[partKey]bool{}, rewind: map[partKey]int64{}}
	for _, o := range opts {
		o(s)
	}
	s.cond = sync.NewCond(&s.mu)
	s.fctx, s.fcancel = context.WithCancel(context.Background())
	s.sem = make(chan struct{}, parallelInserts)
	s.log = telemetry.OrDiscard(s.log).With("component", "sinks/clickhouse")
	s.m = newMetrics(s.reg)
	s.brk = breaker{base: cfg.RetryBackoff.D(), max: cfg.RetryBackoffMax.D(), cooldown: cfg.BreakerCooldown.D(), threshold: cfg.BreakerFailures}
	s.dlq = cfg.TopicPrefix + topics.DeadLetters

	bufs := map[string]*tableBuf{}
	all := routes()
	for _, name := range cfg.catalogTopics() {
		t, _ := topics.Lookup(name)
		rs, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("sinks/clickhouse: catalog topic %s has no table", name)
		}
		kt := cfg.TopicPrefix + name
		s.catalog[kt] = t
		for _, r := range rs {
			tb := bufs[r.table]
			if tb == nil {
				def, ok := chschema.LookupTable(r.table)
				if !ok {
					return nil, fmt.Errorf("sinks/clickhouse: table %s is not in the schema", r.table)
				}
				tb = newTableBuf(root.ClickHouse.Database, def)
				bufs[r.table] = tb
				s.tables = append(s.tables, tb)
			}
			// Check the mapper against the table once, with an empty
			// message and a row of defaults (then drop that row).
			if err := checkMapper(t, r.fn, tb); err != nil {
				return nil, fmt.Errorf("sinks/clickhouse: topic %s -> table %s: %w", name, r.table, err)
			}
			br := boundRoute{tb: tb, fn: r.fn}
			if r.fast != nil && !s.cfg.DisableFastPath {
				if err := checkFast(t, r.fast, tb); err != nil {
					return nil, fmt.Errorf("sinks/clickhouse: topic %s -> table %s (fast path): %w", name, r.table, err)
				}
				br.fast, br.fd = r.fast, newFastDec(tb)
			}
			s.routes[kt] = append(s.routes[kt], br)
		}
	}
	sort.Slice(s.tables, func(i, j int) bool { return s.tables[i].table.Name < s.tables[j].table.Name })
	if s.health != nil {
		s.health.NotReady("sink")
	}
	return s, nil
}

func checkMapper(t topics.Topic, fn mapper, tb *tableBuf) error {
	m := t.New()
	// A message with the required ids set, so that validation passes.
	fillRequired(m)
	var err error
	rows := 0
	fn(m, &recCtx{defaultTenant: "t"}, func() *rowWriter {
		if rows > 0 && tb.w.err == nil && tb.w.i != len(tb.cols) {
			err = fmt.Errorf("%w: row has %d values, table has %d columns", errColumn, tb.w.i, len(tb.cols))
		}
		rows++
		return tb.emit()
	})
	if err == nil && tb.w.err != nil {
		err = tb.w.err
	}
	if err == nil && rows > 0 && tb.w.i != len(tb.cols) {
		err = fmt.Errorf("%w: row has %d values, table has %d columns", errColumn, tb.w.i, len(tb.cols))
	}
	tb.reset()
	return err
}

// checkFast runs a fast mapper once on the wire form of the message
// [checkMapper] uses: it must take it, fill every column exactly once, and
// write each column with its type.
func checkFast(t topics.Topic, fm fastMapper, tb *tableBuf) (err error) {
	m := t.New()
	fillRequired(m)
	// Extra values take the general path.
	switch v := m.(type) {
	case *pb.VitalsTelemetry:
		v.Extra = nil
	case *pb.VitalsBatch:
		for _, r := range v.Readings {
			r.Extra = nil
		}
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	defer tb.reset()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errColumn, p)
		}
	}()
	if !fm(newFastDec(tb), raw, &recCtx{defaultTenant: "t"}) {
		return fmt.Errorf("%w: the fast path declined a valid record", errColumn)
	}
	for i, c := range tb.cols {
		if l := c.len(); l != tb.rows {
			return fmt.Errorf("%w: column %s has %d values for %d rows", errColumn, tb.table.Columns[i].Name, l, tb.rows)
		}
	}
	return nil
}

// fillRequired sets the fields mappers require, for [checkMapper].
func fillRequired(m proto.Message) {
	meta := &pb.Meta{EventId: "check"}
	switch v := m.(type) {
	case *pb.MedicationIntake:
		v.Meta = meta
	case *pb.DoseSchedule:
		v.Meta, v.PatientId, v.MedicationId = meta, "p", "m"
	case *pb.DeviceStatus:
		v.Meta = meta
	case *pb.VitalsTelemetry:
		v.Meta, v.Extra = meta, map[string]float64{"x": 1}
	case *pb.VitalsBatch:
		v.Meta, v.Readings = meta, []*pb.VitalsTelemetry{{Meta: meta, Extra: map[string]float64{"x": 1}}, {Meta: meta}}
	case *pb.DeviceCommand:
		v.Meta, v.CommandId = meta, "c"
	case *pb.DeviceShadow:
		v.Meta, v.DeviceId = meta, "d"
	case *pb.FrameDetections:
		v.Meta, v.Detections = meta, []*pb.Detection{{ClassName: "person"}}
	case *pb.VideoEvent:
		v.Meta = meta
	case *pb.DoseOutcome:
		v.Meta, v.DoseId, v.ScheduledTimeMs = meta, "d", 1
	case *pb.AdherenceWindow:
		v.Meta, v.Day = meta, "2026-01-01"
	case *pb.AnomalyScore:
		v.Meta = meta
	case *pb.AnomalyScoreBatch:
		v.Meta, v.Scores = meta, []*pb.AnomalyScore{{Meta: meta}, {Meta: meta}}
	case *pb.Alert:
		v.Meta, v.AlertId, v.OpenedTimeMs = meta, "a", 1
	case *pb.AlertAck:
		v.Meta = meta
	case *pb.DeadLetter:
		v.Meta = meta
	case *pb.AuditEvent:
		v.Meta = meta
	}
}

// Name implements runtime.Role.
func (s *Sink) Name() string { return "sink" }

// KafkaTopics returns the Kafka topics the sink consumes.
func (s *Sink) KafkaTopics() []string {
	out := make([]string, 0, len(s.catalog))
	for t := range s.catalog {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Open connects to ClickHouse as configured in the topology (lazily: the
// first query dials). compression is lz4, zstd or none ("" is lz4).
func Open(c config.ClickHouse, compression string) (driver.Conn, error) {
	method := clickhouse.CompressionLZ4
	switch compression {
	case "zstd":
		method = clickhouse.CompressionZSTD
	case "none":
		method = clickhouse.CompressionNone
	}
	opts := &clickhouse.Options{
		Addr: c.Addr,
		Auth: clickhouse.Auth{Database: "default", Username: c.Username, Password: envOr(c.PasswordEnv)},
		// One dial timeout for every attempt; inserts carry their own.
		DialTimeout:  c.DialTimeout.D(),
		MaxOpenConns: parallelInserts + 2, // parallel inserts, and migrate/retention queries
		MaxIdleConns: parallelInserts,
		Compression:  &clickhouse.Compression{Method: method},
	}
	if c.TLS.Enabled {
		tc, err := kafka.TLSConfig(c.TLS)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls: %w", err)
		}
		opts.TLS = tc
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening clickhouse %v: %w", c.Addr, err)
	}
	return conn, nil
}

func envOr(name string) string {
	if name == "" {
		return ""
	}
	return os.Getenv(name)
}

// Run consumes until ctx is done, then flushes what it holds and commits
// within the topology's drain timeout. It returns nil after a clean drain.
func (s *Sink) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("sinks/clickhouse: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()

	conn, err := Open(s.root.ClickHouse, s.cfg.Compression)
	if err != nil {
		return err
	}
	defer conn.Close()
	s.conn = conn
	if err := s.connect(ctx); err != nil {
		return nil // ctx done before ClickHouse answered: nothing consumed, nothing to drain
	}

	opts := []kgo.Opt{
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.KafkaTopics()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Offsets are committed only once ClickHouse acknowledged the
		// rows: we mark them after Send and autocommit commits marks only.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxBytes(s.cfg.FetchMaxBytes),
		kgo.SessionTimeout(s.cfg.SessionTimeout.D()),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	}
	cl, err := kafka.NewClient(s.root.Kafka, append(opts, s.kopts...)...)
	if err != nil {
		return err
	}
	s.cl = cl
	runErr := s.loop(ctx)

	// Drain: insert what we hold and commit it, bounded by drain_timeout;
	// then flights still retrying are cancelled.
	dctx, cancel := runtime.DrainContext(ctx, s.root.DrainTimeout.D())
	defer cancel()
	stop := context.AfterFunc(dctx, s.fcancel)
	defer stop()
	s.mu.Lock()
	var drainErr error
	if runErr == nil {
		drainErr = s.settle(dctx)
	} else {
		_ = s.waitFor(dctx, func() bool { return s.flying == 0 })
	}
	s.fcancel()
	s.abort()
	s.markAll()
	s.mu.Unlock()
	if err := cl.CommitMarkedOffsets(dctx); err != nil && drainErr == nil {
		drainErr = fmt.Errorf("committing offsets at shutdown: %w", err)
	}
	cl.Close()
	if runErr != nil {
		return runErr
	}
	if drainErr != nil {
		return fmt.Errorf("sinks/clickhouse: drain: %w", drainErr)
	}
	s.log.Info("sink drained")
	return nil
}

// connect waits until ClickHouse answers and detects its capabilities.
func (s *Sink) connect(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		v, err := chschema.Adapt(s.conn).ServerVersion(ctx)
		if err == nil {
			// The database keeps the profile it was migrated with (TTL or
			// partition drops, dedup window); the server version is the
			// fallback before the first migration.
			profile := chschema.ProfileFor(v)
			rows, qerr := chschema.Adapt(s.conn).QueryStrings(ctx, fmt.Sprintf(
				"SELECT argMax(profile, applied_at) FROM %s.%s WHERE version = 1", s.root.ClickHouse.Database, chschema.MigrationsTable))
			if qerr == nil && len(rows) == 1 && (rows[0][0] == string(chschema.Modern) || rows[0][0] == string(chschema.Compat)) {
				profile = chschema.Profile(rows[0][0])
			} else {
				s.log.Warn("database not migrated yet (run wardstream migrate); using the server's profile", "database", s.root.ClickHouse.Database, "err", qerr)
			}
			s.caps = chschema.CapsFor(profile)
			s.log.Info("clickhouse connected", "version", v, "profile", s.caps.Profile, "database", s.root.ClickHouse.Database)
			if s.health != nil {
				s.health.Set("sink", nil)
			}
			return nil
		}
		s.log.Warn("clickhouse not reachable, retrying", "addr", s.root.ClickHouse.Addr, "err", err)
		if s.health != nil {
			s.health.Set("sink", fmt.Errorf("clickhouse: %w", err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.brk.base << min(attempt, 5)):
		}
	}
}

// loop is the poll / convert / insert / mark loop.
func (s *Sink) loop(ctx context.Context) error {
	lastRetention := time.Time{}
	for {
		if ctx.Err() != nil {
			return nil
		}
		pctx, cancel := s.pollContext(ctx)
		fetches := s.cl.PollRecords(pctx, s.cfg.MaxPollRecords)
		s.mu.Lock()
		s.pollCancel = nil
		cancel()
		if fetches.IsClientClosed() {
			s.mu.Unlock()
			return nil
		}
		err := s.process(ctx, fetches)
		if err == nil {
			err = s.flushDue(ctx)
		}
		if err == nil {
			s.markAll()
		}
		s.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil // shutting down mid-retry: the drain decides
			}
			return err
		}
		if !s.caps.TTL && s.cfg.RetentionInterval.D() > 0 && time.Since(lastRetention) > s.cfg.RetentionInterval.D() {
			lastRetention = time.Now()
			s.dropExpired(ctx)
		}
	}
}

// pollContext bounds the poll by the oldest pending batch's deadline
// (batches behind a flight wait for its landing, which ends the poll).
func (s *Sink) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due time.Time
	for _, tb := range s.tables {
		if tb.rows > 0 && tb.fl == nil {
			d := tb.since.Add(s.batchAge(tb))
			if due.IsZero() || d.Before(due) {
				due = d
			}
		}
	}
	var pctx context.Context
	if due.IsZero() {
		pctx, s.pollCancel = context.WithCancel(ctx)
	} else {
		pctx, s.pollCancel = context.WithDeadline(ctx, due)
	}
	return pctx, s.pollCancel
}

// process converts the polled records into rows.
func (s *Sink) process(ctx context.Context, fetches kgo.Fetches) error {
	var skip map[partKey]bool
	if len(s.rewind) > 0 {
		// Batches were dropped in a rebalance while ClickHouse was
		// failing: re-read those partitions from their commit point
		// (SetOffsets also drops what kgo buffered for them) and skip
		// their records in this poll, which lie after the gap.
		skip = map[partKey]bool{}
		set := map[string]map[int32]kgo.EpochOffset{}
		for pk, off := range s.rewind {
			skip[pk] = true
			if s.assigned[pk] {
				if set[pk.topic] == nil {
					set[pk.topic] = map[int32]kgo.EpochOffset{}
				}
				set[pk.topic][pk.part] = kgo.EpochOffset{Epoch: -1, Offset: off}
				if p := s.pos[pk]; p != nil {
					p.next = off
				} else {
					s.pos[pk] = &partPos{next: off}
				}
			}
		}
		s.cl.SetOffsets(set)
		clear(s.rewind)
	}
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			s.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			s.m.fetchErrors.Inc()
		}
	})
	var err error
	defer func() {
		s.m.records.Add(float64(s.nRecords))
		s.m.fastPath.Add(float64(s.nFast))
		s.nRecords, s.nFast = 0, 0
	}()
	fetches.EachRecord(func(r *kgo.Record) {
		pk := partKey{r.Topic, r.Partition}
		if err != nil || skip[pk] {
			return
		}
		if _, dropped := s.rewind[pk]; dropped {
			// A rebalance during a flush below dropped this partition's
			// batch: the next poll re-reads it from its commit point.
			return
		}
		err = s.record(ctx, r)
		// One poll may hold far more rows than records (vitals batches,
		// detections): keep batch_rows and max_buffered_rows within the
		// poll, not only after it.
		if err == nil && s.full() {
			err = s.flushDue(ctx)
		}
	})
	return err
}

// full reports whether a table's batch reached batch_rows or all batches
// together max_buffered_rows.
func (s *Sink) full() bool {
	if s.buffered >= s.cfg.MaxBufferedRows {
		return true
	}
	for _, tb := range s.tables {
		if tb.rows >= s.cfg.BatchRows {
			return true
		}
	}
	return false
}

// partPos is where a partition stands: the offset after the last record
// processed (-1: none yet) and that record's leader epoch.
type partPos struct {
	next  int64
	epoch int32
}

// record converts one record into rows of its tables (or a dead letter).
func (s *Sink) record(ctx context.Context, r *kgo.Record) error {
	pk := partKey{r.Topic, r.Partition}
	p := s.cur
	if p == nil || s.curPK != pk {
		if !s.assigned[pk] {
			return nil // revoked after it was fetched; its new owner reads it
		}
		if p = s.pos[pk]; p == nil {
			p = &partPos{next: -1}
			s.pos[pk] = p
		}
		s.curPK, s.cur = pk, p
	}
	if r.Offset < p.next {
		return nil // already processed (re-delivered after a rewind)
	}
	// The position moves past the record only once it is in a batch or
	// in the dead-letter topic: a dead letter is produced with s.mu
	// released, and a commit point marked meanwhile (a landing, a
	// rebalance) must not pass it. If its produce failed, the record is in
	// neither place and the drain must not commit past it.
	if err := s.convert(ctx, r, pk); err != nil {
		return err
	}
	if _, rewound := s.rewind[pk]; s.pos[pk] != p || rewound {
		// Revoked, lost or rewound while the dead letter was produced:
		// the partition is re-read from its commit point (the dead letter
		// may then be produced twice, at least once as always).
		return nil
	}
	p.next = r.Offset + 1
	p.epoch = r.LeaderEpoch
	return nil
}

// convert turns record r of partition pk into rows of its tables, or
// sends it to the dead-letter topic; an error means neither happened.
func (s *Sink) convert(ctx context.Context, r *kgo.Record, pk partKey) error {
	s.nRecords++
	ct := s.catalog[r.Topic]
	if r.Value == nil {
		// A tombstone on a compacted topic: the state tables keep their
		// last version (history is the point of the warehouse).
		s.m.tombstones.Inc()
		return nil
	}
	s.rc = recCtx{defaultTenant: s.root.Tenant, recordMs: r.Timestamp.UnixMilli(), topic: r.Topic, partition: r.Partition, offset: r.Offset, key: r.Key}
	rc := &s.rc
	if rs := s.routes[r.Topic]; len(rs) == 1 && rs[0].fast != nil {
		tb := rs[0].tb
		before := tb.rows
		if rs[0].fast(rs[0].fd, r.Value, rc) {
			if tb.checkRange(before) == nil {
				s.nFast++
				s.added(tb, before, pk, r.Offset)
				return nil
			}
			tb.truncate(before) // the general path dead-letters it
		}
		// Declined before any row: the general path decides.
	}
	// One message per topic, reset and reused: mappers copy what they keep
	// (strings and slices are fresh allocations of each Unmarshal).
	msg, ok := s.msgs[r.Topic]
	if !ok {
		msg = ct.New()
		s.msgs[r.Topic] = msg
	}
	proto.Reset(msg)
	if err := codec.Unmarshal(r.Value, msg); err != nil {
		return s.deadLetter(ctx, r, "decode", err)
	}
	// Every route's rows first, then the bookkeeping: a record refused by
	// one table puts rows in none.
	rs := s.routes[r.Topic]
	s.befores = s.befores[:0]
	for _, rt := range rs {
		tb := rt.tb
		before := tb.rows
		s.befores = append(s.befores, before)
		err := rt.fn(msg, rc, func() *rowWriter {
			tb.rows++
			return tb.emit()
		})
		reason := "convert"
		if err == nil {
			// Values a mapper cannot check without its column's type.
			if err = tb.checkRange(before); err != nil {
				reason = "time_out_of_range"
			}
		}
		if err != nil {
			// Mappers validate before they emit, so nothing was appended
			// by a mapper's error; out-of-range rows were.
			for i, b := range s.befores {
				rs[i].tb.truncate(b)
			}
			return s.deadLetter(ctx, r, reason, err)
		}
	}
	for i, rt := range rs {
		s.added(rt.tb, s.befores[i], pk, r.Offset)
	}
	return nil
}

// added accounts for the rows a record added to tb (rows were before).
func (s *Sink) added(tb *tableBuf, before int, pk partKey, offset int64) {
	if added := tb.rows - before; added > 0 {
		if before == 0 {
			tb.since = time.Now()
			tb.oldestMs = s.rc.recordMs
		} else if s.rc.recordMs < tb.oldestMs {
			tb.oldestMs = s.rc.recordMs
		}
		tb.mark(pk, offset)
		s.buffered += added
	}
}

// deadLetter sends a record that cannot become rows to the dead-letter
// topic with the reason. A dead letter that itself cannot be decoded is
// written straight to the dead_letters table instead (no loops).
//
// The caller holds s.mu; the produce (and its retries) runs with s.mu
// released, as a cond wait does: with it held, a slow or unavailable
// Kafka stalled every landing and rebalance callback for up to a minute.
func (s *Sink) deadLetter(ctx context.Context, r *kgo.Record, reason string, cause error) error {
	s.m.deadLetters.WithLabelValues(reason).Inc()
	s.log.Warn("record dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason, "err", cause)
	now := time.Now().UnixMilli()
	dl := &pb.DeadLetter{
		Meta:  &pb.Meta{Tenant: s.root.Tenant, EventId: fmt.Sprintf("sink/%s/%d/%d", r.Topic, r.Partition, r.Offset), EventTimeMs: r.Timestamp.UnixMilli(), IngestTimeMs: now, Source: "sinks/clickhouse"},
		Stage: "sink", SourceTopic: r.Topic, SourcePartition: r.Partition, SourceOffset: r.Offset,
		Key: r.Key, Raw: r.Value, Reason: reason, Error: cause.Error(),
	}
	if r.Topic == s.dlq {
		tb := s.routes[r.Topic][0].tb
		rc := recCtx{defaultTenant: s.root.Tenant, recordMs: now, topic: r.Topic, partition: r.Partition, offset: r.Offset}
		_ = mapDeadLetter(dl, &rc, func() *rowWriter { tb.rows++; return tb.emit() })
		if tb.rows == 1 {
			tb.since = time.Now()
		}
		tb.mark(partKey{r.Topic, r.Partition}, r.Offset)
		s.buffered++
		return nil
	}
	val, err := codec.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encoding dead letter for %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	base := s.brk.base
	s.mu.Unlock()
	defer s.mu.Lock()
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = s.cl.ProduceSync(pctx, &kgo.Record{Topic: s.dlq, Key: r.Key, Value: val}).FirstErr()
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= 5 {
			return fmt.Errorf("producing dead letter for %s/%d@%d to %s: %w", r.Topic, r.Partition, r.Offset, s.dlq, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("producing dead letter for %s/%d@%d to %s: %w (stopped: %w)", r.Topic, r.Partition, r.Offset, s.dlq, err, ctx.Err())
		case <-time.After(base << attempt):
		}
	}
}

// flushDue launches the batches that are full or old enough (flight.go),
// waits for a table's flight when its next batch is full too, and launches
// the largest batches, then waits for landings, while more than
// MaxBufferedRows rows are held.
func (s *Sink) flushDue(ctx context.Context) error {
	now := time.Now()
	for _, tb := range s.tables {
		if !s.due(tb, now) {
			continue
		}
		if tb.fl == nil {
			s.launch(tb)
			continue
		}
		if s.cfg.SerialInserts {
			continue // waited for below
		}
		if tb.rows >= s.cfg.BatchRows {
			f := tb.fl
			if err := s.waitFor(ctx, func() bool { return tb.fl != f || f.dead }); err != nil {
				return err
			}
		}
	}
	if s.cfg.SerialInserts {
		if err := s.waitFor(ctx, func() bool { return s.flying == 0 }); err != nil {
			return err
		}
	}
	for s.buffered >= s.cfg.MaxBufferedRows {
		var big *tableBuf
		for _, tb := range s.tables {
			if tb.fl == nil && tb.rows > 0 && (big == nil || tb.rows > big.rows) {
				big = tb
			}
		}
		if big != nil {
			s.launch(big)
			continue
		}
		if s.flying == 0 {
			break // what is held is in dead flights: the rebalance or drain decides
		}
		n := s.flying
		landed := func() bool { return s.flying < n || s.buffered < s.cfg.MaxBufferedRows }
		if err := s.waitFor(ctx, landed); err != nil {
			return err
		}
	}
	s.m.buffered.Set(float64(s.buffered))
	return nil
}

// hint names the operator's fix for errors that retrying cannot fix.
func hint(err error) string {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 60, 81, 16: // UNKNOWN_TABLE, UNKNOWN_DATABASE, NO_SUCH_COLUMN_IN_TABLE
			return "the schema is missing or older than this binary: run wardstream migrate"
		case 516, 192, 194, 195: // authentication, unknown user, wrong password, IP not allowed
			return "check clickhouse.username and clickhouse.password_env"
		}
	}
	return ""
}

func (s *Sink) setPaused(p bool) {
	if p == s.paused {
		return
	}
	s.paused = p
	if p {
		// Stop fetching while ClickHouse is down instead of buffering
		// without bound; what we hold is bounded by MaxBufferedRows.
		s.cl.PauseFetchTopics(s.KafkaTopics()...)
		s.m.breakerOpen.Set(1)
		if s.health != nil {
			s.health.Set("sink", errors.New("clickhouse inserts failing: circuit breaker open"))
		}
	} else {
		s.cl.ResumeFetchTopics(s.KafkaTopics()...)
		s.m.breakerOpen.Set(0)
		if s.health != nil {
			s.health.Set("sink", nil)
		}
	}
}

// attempt sends tb's batch once; it only reads tb (a flight's detached
// batch).
func (s *Sink) attempt(ctx context.Context, tb *tableBuf) error {
	start := time.Now()
	ictx, done := insertContext(ctx, s.cfg.InsertTimeout.D())
	defer done()
	settings := clickhouse.Settings{}
	if s.caps.InsertDedupToken {
		// A retried batch carries the same token, so the server drops
		// it if the first attempt had landed after all.
		settings["insert_deduplication_token"] = tb.token()
	}
	if s.root.ClickHouse.Sharded && s.root.ClickHouse.Cluster != "" {
		// Into a Distributed table: return only when every shard has its
		// rows, so the offsets committed after this insert are safe (the
		// default queues them on this node's disk first).
		settings["insert_distributed_sync"] = 1
	}
	if len(settings) > 0 {
		ictx = clickhouse.Context(ictx, clickhouse.WithSettings(settings))
	}
	err := s.send(ictx, tb)
	s.m.insertSeconds.WithLabelValues(tb.table.Name).Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.batches.WithLabelValues(tb.table.Name, "error").Inc()
		return err
	}
	s.m.batches.WithLabelValues(tb.table.Name, "ok").Inc()
	return nil
}

// watchdogGrace is how long an insert's context outlives its Send (see
// insertContext).
const watchdogGrace = 5 * time.Second

// insertContext bounds one insert by timeout; done ends it.
//
// clickhouse-go's batch Send starts a goroutine that closes the connection
// when the context ends, and stops it on return by closing a channel. If
// that goroutine has not run yet when both are ready (the caller cancels
// right after Send, as a deferred cancel does), its select picks either,
// and half the time it closes the connection Send has just returned to the
// pool: the next insert on it fails with "use of closed network
// connection" (about once per bench run on a busy box; upstream
// ClickHouse/clickhouse-go#2032, open). done therefore ends the context
// watchdogGrace later, by which time the goroutine has seen its stop. The
// parent (shutdown, the revoke flush's bound) still aborts an insert in
// flight, but its end after the insert no longer reaches the context.
// TestIntegrationInsertContext reproduces the failure with an immediate
// cancel and checks that none happens with insertContext.
func insertContext(parent context.Context, timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), timeout)
	stop := context.AfterFunc(parent, cancel)
	return ctx, func() {
		stop()
		time.AfterFunc(watchdogGrace, cancel)
	}
}

func (s *Sink) send(ctx context.Context, tb *tableBuf) error {
	batch, err := s.conn.PrepareBatch(ctx, tb.insert)
	if err != nil {
		return fmt.Errorf("preparing insert into %s: %w", tb.table.Name, err)
	}
	defer batch.Close()
	blk := blockOf(batch) // nil: the public Append only (wire.go)
	if blk != nil && len(blk.Columns) != len(tb.cols) {
		blk = nil
	}
	direct := 0
	for i, c := range tb.cols {
		if w, ok := c.(wireCol); ok && blk != nil && blk.Columns[i].Rows() == 0 && w.wire(blk.Columns[i].Type()) {
			blk.Columns[i] = &rawCol{Interface: blk.Columns[i], src: w}
			direct++
			continue
		}
		if err := c.appendTo(batch.Column(i)); err != nil {
			return fmt.Errorf("appending column %s of %s: %w", tb.table.Columns[i].Name, tb.table.Name, err)
		}
	}
	s.m.columns.WithLabelValues("direct").Add(float64(direct))
	s.m.columns.WithLabelValues("append").Add(float64(len(tb.cols) - direct))
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d rows into %s: %w", tb.rows, tb.table.Name, err)
	}
	return nil
}

// token identifies a batch's content: the offset range of every partition
// in it (the rows are a function of those records). A retry of the same
// batch carries the same token; a different batch never does.
func (tb *tableBuf) token() string {
	keys := make([]string, 0, len(tb.offs))
	for pk, r := range tb.offs {
		keys = append(keys, fmt.Sprintf("%s/%d@%d-%d", pk.topic, pk.part, r.first, r.last))
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d", tb.table.Name, tb.rows)
	for _, k := range keys {
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// commitPoint is the offset up to which partition pk is fully in
// ClickHouse: the lowest first offset still pending in a batch (filling or
// in the air), else the offset after the last processed record.
func (s *Sink) commitPoint(pk partKey) (int64, bool) {
	p := s.pos[pk]
	if p == nil || p.next < 0 {
		return 0, false
	}
	off := p.next
	for _, tb := range s.tables {
		if r, ok := tb.offs[pk]; ok && r.first < off {
			off = r.first
		}
		if tb.fl != nil {
			if r, ok := tb.fl.b.offs[pk]; ok && r.first < off {
				off = r.first
			}
		}
	}
	return off, true
}

// mark marks the commit points of parts for autocommit.
func (s *Sink) mark(parts []partKey) {
	marks := map[string]map[int32]kgo.EpochOffset{}
	for _, pk := range parts {
		if !s.assigned[pk] {
			continue
		}
		off, ok := s.commitPoint(pk)
		if !ok {
			continue
		}
		if marks[pk.topic] == nil {
			marks[pk.topic] = map[int32]kgo.EpochOffset{}
		}
		marks[pk.topic][pk.part] = kgo.EpochOffset{Epoch: s.pos[pk].epoch, Offset: off}
	}
	if len(marks) > 0 {
		s.cl.MarkCommitOffsets(marks)
	}
}

// markAll marks every assigned partition (after records that needed no
// batch, e.g. tombstones, moved the commit point).
func (s *Sink) markAll() {
	parts := make([]partKey, 0, len(s.assigned))
	for pk := range s.assigned {
		parts = append(parts, pk)
	}
	s.mark(parts)
}

func (s *Sink) onAssigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t, ps := range m {
		for _, p := range ps {
			s.assigned[partKey{t, p}] = true
			n++
		}
	}
	s.m.partitions.Set(float64(len(s.assigned)))
	s.log.Info("partitions assigned", "count", n)
}

// onRevoked inserts what the sink holds (its batches and those in the air,
// bounded by RevokeFlushTimeout) and commits, so that the partitions' next
// owner starts after the rows already in ClickHouse. If a batch fails,
// every batch is dropped uncommitted: the revoked partitions are re-read by
// their new owner and the kept ones by us (rewind).
func (s *Sink) onRevoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	fctx, cancel := context.WithTimeout(ctx, s.cfg.RevokeFlushTimeout.D())
	defer cancel()
	s.markAll()
	if err := s.settle(fctx); err != nil {
		s.abort()
		s.log.Warn("flush on revoke failed; dropping uncommitted batches to be re-read", "err", err)
		s.dropAll()
	}
	for t, ps := range m {
		for _, p := range ps {
			pk := partKey{t, p}
			delete(s.assigned, pk)
			delete(s.pos, pk)
			delete(s.rewind, pk)
			s.cur = nil
		}
	}
	s.m.partitions.Set(float64(len(s.assigned)))
	s.mu.Unlock()
	// The commit gets a bound of its own: after a flush that ran out of
	// revoke_flush_timeout, fctx has expired and the commit always failed,
	// so batches that landed during that flush were re-read and inserted
	// again by the partitions' next owner (kgo forgets the marks of
	// revoked partitions). Only commit points are marked, and they never
	// pass a batch that did not land. ctx is kgo's client context, which
	// is only cancelled once the client is closed, after this callback.
	cctx, ccancel := context.WithTimeout(ctx, revokeCommitTimeout)
	defer ccancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		s.log.Warn("commit on revoke failed", "err", err)
	}
}

// revokeCommitTimeout bounds onRevoked's commit, after its flush (which
// revoke_flush_timeout bounds separately).
const revokeCommitTimeout = 5 * time.Second

// onLost forgets partitions whose offsets can no longer be committed.
func (s *Sink) onLost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			pk := partKey{t, p}
			delete(s.assigned, pk)
			delete(s.pos, pk)
			delete(s.rewind, pk)
			s.cur = nil
		}
	}
	s.m.partitions.Set(float64(len(s.assigned)))
	s.log.Warn("partitions lost", "topics", len(m))
}

// dropAll discards every pending batch, filling or in a dead flight, and
// records where each partition must be re-read from. No flight may be
// flying (abort).
func (s *Sink) dropAll() {
	for pk, p := range s.pos {
		if off, ok := s.commitPoint(pk); ok && off < p.next {
			s.rewind[pk] = off
			// The position goes back now, not at the next poll: the loop
			// may be waiting in flushDue (s.mu released) and mark every
			// partition when it returns, and kgo never moves a mark back.
			p.next = off
		}
	}
	for _, tb := range s.tables {
		tb.reset()
		if tb.fl != nil {
			tb.fl.b.reset()
			tb.fl, tb.spare = nil, tb.fl.b
		}
	}
	s.buffered = 0
	s.m.buffered.Set(0)
	if s.paused {
		// Only a flight's success resumed fetching, and none is left: with
		// nothing held, fetch again. The breaker stays open, so the next
		// batch's flight probes ClickHouse once per cooldown (and pauses
		// fetching again if it fails).
		s.setPaused(false)
		if s.brk.open() && s.health != nil {
			s.health.Set("sink", errors.New("clickhouse inserts failing: circuit breaker open"))
		}
		s.log.Info("batches dropped while clickhouse was failing; fetching resumed, the next batch probes it")
	}
	if len(s.rewind) > 0 && s.pollCancel != nil {
		// The poll in progress may have no deadline (nothing is pending):
		// end it so that the loop applies the rewind now.
		s.pollCancel()
	}
}

// dropExpired enforces retention on servers without TTL by dropping month
// partitions older than each table's retention, in the database and in its
// tenant BI databases.
func (s *Sink) dropExpired(ctx context.Context) {
	db := s.root.ClickHouse.Database
	tg := chschema.Target{Database: db, Cluster: s.root.ClickHouse.Cluster, Sharded: s.root.ClickHouse.Sharded, Caps: s.caps}
	stmts, err := chschema.RetentionStatements(ctx, chschema.Adapt(s.conn), tg, time.Now())
	if err != nil {
		s.log.Warn("listing partitions for retention failed", "err", err)
	}
	for _, q := range stmts {
		if err := s.conn.Exec(ctx, q); err != nil {
			s.log.Warn("dropping expired partition failed", "query", q, "err", err)
			continue
		}
		s.m.partitionsDropped.Inc()
		s.log.Info("expired partition dropped", "query", q)
	}
}
