// Package alerts provides the alerts goka group of wardstream: it owns the
// lifecycle of every alert. Detecting processors (adherence, anomaly, and
// any other) send alert requests (a [pb.Alert] with state OPEN or RESOLVED
// and a deterministic id, see [ID] and [Request]) to the alert-requests
// topic, keyed by alert id; acknowledgements arrive on the alerts-ack topic
// (from the API), keyed by alert id too, so both meet in one partition.
//
// The group table holds the current pb.Alert per alert id. Rules:
//   - OPEN for a new id raises the alert (first version: the time in Unix
//     ms, see below); OPEN while the alert
//     is open, acknowledged or escalated is suppressed (counted, not
//     emitted), unless it asks for a higher priority, which the alert
//     takes (with that priority's SLA); OPEN after it was resolved
//     re-opens it.
//   - RESOLVED resolves an alert that is not resolved yet. A numbered
//     RESOLVED for an id without an alert (it overtook its OPEN) is kept
//     unpublished, so that OPEN, when it comes, is stale and publishes the
//     alert resolved instead of leaving it open.
//   - A request numbered by its detector (RequestVersion > 0) at or below
//     the highest number the alert applied is a redelivery and changes
//     nothing: after a restart, goka re-reads uncommitted requests, and a
//     detector replaying its input asks again, but a resolved alert is
//     not re-opened by its own old OPEN. Unnumbered requests (0) follow
//     the rules above alone.
//   - An ack acknowledges an open or escalated alert (unknown ids go to the
//     dead-letter topic); one made before the alert last opened (an ack of
//     its earlier opening, redelivered) changes nothing.
//   - Resolved alerts are deleted from the table after ResolvedRetention
//     (default 7 days) from their resolution or the latest request for
//     them (a stale one refreshes the table copy's Meta.IngestTimeMs), by
//     the clock. Acknowledged discrete alerts (pump failure, device
//     severity, negative dose, unauthorized access), which no detector
//     resolves, and acknowledged MISSED_DOSE alerts, which the adherence
//     group resolves only within its correction horizon, are resolved by
//     the clock ResolvedRetention after the ack. An alert that nobody
//     acknowledges stays (at its last escalation level) until its detector
//     resolves it or somebody acknowledges it.
//   - An alert neither acknowledged nor resolved within its SLA (by
//     priority; default CRITICAL 5m, HIGH 15m, MEDIUM 30m, LOW 1h) is
//     escalated: state ESCALATED, escalation level + 1, and again after
//     each further SLA, up to MaxEscalation levels. The clock is the
//     group's [VisitEscalate] visitor, driven every tick by the role.
//
// Every change is emitted to the alerts topic keyed by the alert's subject
// id with version + 1 and event id "alertId@version", so downstream keeps
// the highest version as the alert's current state. A new alert's first
// version is the time it is raised in Unix ms, so that an id raised again
// after its pruning continues above the versions emitted before.
package alerts

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// VisitEscalate is the name of the group's escalation visitor; its meta is
// the current time in Unix ms (int64).
const VisitEscalate = "escalate"

// Source is the Meta.Source of every record the group emits.
const Source = "pipelines/alerts"

// Topics names the Kafka topics the group reads and writes.
type Topics struct {
	Requests, Acks, Alerts, DeadLetters string
}

// Config configures the group.
type Config struct {
	Group  string
	Topics Topics
	Tenant string
	// SLA is the time to acknowledge, by priority.
	SLA map[pb.Priority]time.Duration
	// MaxEscalation bounds the escalation level (default 3).
	MaxEscalation int32
	// ResolvedRetention is how long a resolved alert stays in the table
	// (default 7 days), so that late duplicate requests are still
	// recognized; after it the clock deletes it, which keeps the table
	// bounded.
	ResolvedRetention time.Duration
}

// DefaultConfig returns the defaults with the catalog's topic names.
func DefaultConfig() Config {
	return Config{
		Group:  topics.GroupAlerts,
		Topics: Topics{Requests: topics.GroupAlerts + "-requests", Acks: topics.AlertAcks, Alerts: topics.Alerts, DeadLetters: topics.DeadLetters},
		Tenant: "default",
		SLA: map[pb.Priority]time.Duration{pb.Priority_CRITICAL: 5 * time.Minute, pb.Priority_HIGH: 15 * time.Minute,
			pb.Priority_MEDIUM: 30 * time.Minute, pb.Priority_LOW: time.Hour},
		MaxEscalation:     3,
		ResolvedRetention: 7 * 24 * time.Hour,
	}
}

// Validate returns every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("group: must not be empty"))
	}
	if c.Topics.Requests == "" || c.Topics.Acks == "" || c.Topics.Alerts == "" || c.Topics.DeadLetters == "" {
		errs = append(errs, errors.New("topics: every topic must be named"))
	}
	for _, p := range []pb.Priority{pb.Priority_LOW, pb.Priority_MEDIUM, pb.Priority_HIGH, pb.Priority_CRITICAL} {
		if c.SLA[p] <= 0 {
			errs = append(errs, fmt.Errorf("sla.%s: must be > 0", p))
		}
	}
	if c.ResolvedRetention < time.Hour {
		errs = append(errs, fmt.Errorf("resolved_retention: %v is shorter than 1h", c.ResolvedRetention))
	}
	if c.MaxEscalation < 0 {
		errs = append(errs, errors.New("max_escalation: must be >= 0"))
	}
	return errors.Join(errs...)
}

// Option injects dependencies.
type Option func(*Processor)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(p *Processor) { p.log = l } }

// WithRegisterer sets the Prometheus registerer (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(p *Processor) { p.reg = r } }

// WithClock sets the processing-time clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(p *Processor) { p.now = now } }

// Processor is the alerts group's logic; safe for concurrent use.
type Processor struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
	now func() time.Time

	transitions *prometheus.CounterVec
	suppressed  *prometheus.CounterVec
	stale       *prometheus.CounterVec
	acksIgnored *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
}

// New builds the group logic; it does no I/O.
func New(cfg Config, opts ...Option) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alerts config: %w", err)
	}
	p := &Processor{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	p.log = telemetry.OrDiscard(p.log).With("component", Source)
	p.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_alert_transitions_total",
		Help: "Alert state changes emitted, by type and new state."}, []string{"type", "state"})
	p.suppressed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_alerts_suppressed_total",
		Help: "Alert requests suppressed because the identical alert is open, by type."}, []string{"type"})
	p.stale = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_alerts_stale_requests_total",
		Help: "Alert requests ignored because the alert applied that request version already (redeliveries), by type."}, []string{"type"})
	p.acksIgnored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_alerts_acks_ignored_total",
		Help: "Acks that changed nothing because they were made before the alert last opened (redelivered acks of an earlier opening, or an acking clock behind), by reason."}, []string{"reason"})
	p.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_alerts_dead_letters_total",
		Help: "Alert inputs sent to the dead-letter topic, by reason."}, []string{"reason"})
	if p.reg != nil {
		for _, c := range []prometheus.Collector{p.transitions, p.suppressed, p.stale, p.acksIgnored, p.deadLetters} {
			if err := p.reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering alerts metrics: %w", err)
			}
		}
	}
	return p, nil
}

var (
	alertCodec = codec.NewGoka(func() *pb.Alert { return &pb.Alert{} })
	dlqCodec   = codec.NewGoka(func() *pb.DeadLetter { return &pb.DeadLetter{} })
)

// Graph returns the goka group graph.
func (p *Processor) Graph() *goka.GroupGraph {
	t := p.cfg.Topics
	return goka.DefineGroup(goka.Group(p.cfg.Group),
		goka.Input(goka.Stream(t.Requests), new(gcodec.Bytes), p.onRequest),
		goka.Input(goka.Stream(t.Acks), new(gcodec.Bytes), p.onAck),
		goka.Visitor(VisitEscalate, p.onEscalate),
		goka.Persist(alertCodec),
		goka.Output(goka.Stream(t.Alerts), alertCodec),
		goka.Output(goka.Stream(t.DeadLetters), dlqCodec),
	)
}

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string, err error) {
	p.deadLetters.WithLabelValues(reason).Inc()
	now := p.now()
	src := string(ctx.Topic())
	p.log.Warn("input dead-lettered", "topic", src, "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	ctx.Emit(goka.Stream(p.cfg.Topics.DeadLetters), ctx.Key(), &pb.DeadLetter{
		Meta: &pb.Meta{Tenant: p.cfg.Tenant, EventId: src + "/" + strconv.Itoa(int(ctx.Partition())) + "/" + strconv.FormatInt(ctx.Offset(), 10),
			EventTimeMs: now.UnixMilli(), IngestTimeMs: now.UnixMilli(), Source: Source},
		Stage: Source, SourceTopic: src, SourcePartition: ctx.Partition(), SourceOffset: ctx.Offset(),
		Key: []byte(ctx.Key()), Raw: raw, Reason: reason, Error: err.Error(),
	})
}

func current(ctx goka.Context) *pb.Alert {
	if v := ctx.Value(); v != nil {
		return v.(*pb.Alert)
	}
	return nil
}

// publish stores a and emits it with the next version. A new alert (no
// version yet) starts at its time of publication in Unix ms, not at 1:
// its id may have been emitted before and pruned after the retention (a
// late report of an earlier device episode, an unnumbered detector asking
// again), and downstream keeps an id's highest version, so the new
// alert's versions must be above the pruned one's. They are: an alert is
// pruned at least ResolvedRetention (>= 1h) after its last change, and an
// alert's versions grow by one per change from its first publication.
func (p *Processor) publish(ctx goka.Context, a *pb.Alert, now time.Time) {
	if a.Version == 0 {
		a.Version = max(0, now.UnixMilli()-1)
	}
	a.Version++
	if a.Meta == nil {
		a.Meta = &pb.Meta{}
	}
	if a.Meta.Tenant == "" {
		a.Meta.Tenant = p.cfg.Tenant
	}
	a.Meta.EventId = a.AlertId + "@" + strconv.FormatInt(a.Version, 10)
	a.Meta.EventTimeMs, a.Meta.IngestTimeMs, a.Meta.Source = now.UnixMilli(), now.UnixMilli(), Source
	ctx.SetValue(a)
	p.transitions.WithLabelValues(a.AlertType.String(), a.State.String()).Inc()
	key := a.SubjectId
	if key == "" {
		key = a.AlertId
	}
	ctx.Emit(goka.Stream(p.cfg.Topics.Alerts), key, a)
}

func (p *Processor) onRequest(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	var req pb.Alert
	if raw == nil {
		p.deadLetter(ctx, nil, "empty", errors.New("alert request has no value"))
		return
	}
	if err := proto.Unmarshal(raw, &req); err != nil {
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding alert request: %w", err))
		return
	}
	if req.AlertId == "" || req.AlertId != ctx.Key() {
		p.deadLetter(ctx, raw, "bad_key", fmt.Errorf("alert request id %q arrived under key %q", req.AlertId, ctx.Key()))
		return
	}
	now := p.now()
	cur := current(ctx)
	if req.State == pb.AlertState_OPEN && cur != nil && cur.State != pb.AlertState_RESOLVED && req.Priority > cur.Priority &&
		(req.GetRequestVersion() == 0 || req.GetRequestVersion() >= cur.GetRequestVersion()) {
		// The condition got worse (a device severity of 9 after one of 7,
		// under one episode's id and request number): the alert takes the
		// higher priority and its shorter SLA, counted from when it
		// opened. A redelivery of it finds the priority raised already;
		// one numbered below the alert's (from before it was resolved and
		// re-opened) is stale below. Unnumbered requests raise as well.
		cur.Priority = req.Priority
		cur.RequestVersion = max(cur.RequestVersion, req.RequestVersion)
		p.publish(ctx, cur, now)
		return
	}
	if rv := req.GetRequestVersion(); rv > 0 && cur != nil && rv <= cur.GetRequestVersion() {
		// A request the group applied already, redelivered (goka is at
		// least once: a restart re-reads what was not committed, and a
		// detector that replays its input asks again).
		p.stale.WithLabelValues(req.AlertType.String()).Inc()
		if cur.State == pb.AlertState_RESOLVED && cur.Version == 0 && req.State == pb.AlertState_OPEN {
			// The OPEN that a RESOLVED seen first (see below) followed:
			// downstream gets the alert as it ends in either order,
			// resolved, without notifying an open alert.
			a := proto.Clone(&req).(*pb.Alert)
			a.State, a.OpenedTimeMs, a.ResolvedTimeMs, a.RequestVersion = pb.AlertState_RESOLVED, now.UnixMilli(), cur.ResolvedTimeMs, cur.RequestVersion
			p.publish(ctx, a, now)
			return
		}
		if cur.State == pb.AlertState_RESOLVED {
			// Its detector still asks (a pump failure's episode goes on
			// after the clock resolved it): the table copy's ingest time
			// keeps it past the retention, which counts from the latest
			// request, so the next one is not raised again at version 1.
			if cur.Meta == nil {
				cur.Meta = &pb.Meta{}
			}
			cur.Meta.IngestTimeMs = now.UnixMilli()
			ctx.SetValue(cur)
		}
		return
	}
	switch req.State {
	case pb.AlertState_OPEN:
		if cur != nil && cur.State != pb.AlertState_RESOLVED {
			p.suppressed.WithLabelValues(req.AlertType.String()).Inc()
			return
		}
		a := proto.Clone(&req).(*pb.Alert)
		a.Version = 0 // a re-opened alert continues its versions
		if cur != nil {
			a.Version = cur.Version
			a.RequestVersion = max(a.RequestVersion, cur.RequestVersion)
		}
		a.State, a.OpenedTimeMs, a.AckedTimeMs, a.ResolvedTimeMs, a.EscalationLevel, a.AckedBy = pb.AlertState_OPEN, now.UnixMilli(), 0, 0, 0, ""
		p.publish(ctx, a, now)
	case pb.AlertState_RESOLVED:
		if cur == nil && req.GetRequestVersion() > 0 {
			// Resolved before it was opened: the OPEN it follows arrives
			// later (reordered, e.g. a zombie producer's OPEN delivered
			// after the new owner's RESOLVED). Kept, unpublished (version
			// 0), so that OPEN is stale when it comes instead of opening
			// the alert for good; pruned after the retention like any
			// resolved alert. An unnumbered RESOLVED cannot be ordered
			// and is dropped.
			a := proto.Clone(&req).(*pb.Alert)
			a.Version, a.ResolvedTimeMs = 0, now.UnixMilli()
			if a.Meta == nil {
				a.Meta = &pb.Meta{}
			}
			a.Meta.IngestTimeMs = now.UnixMilli()
			ctx.SetValue(a)
			return
		}
		if cur == nil || cur.State == pb.AlertState_RESOLVED {
			return
		}
		cur.State, cur.ResolvedTimeMs = pb.AlertState_RESOLVED, now.UnixMilli()
		cur.RequestVersion = max(cur.RequestVersion, req.RequestVersion)
		p.publish(ctx, cur, now)
	default:
		p.deadLetter(ctx, raw, "bad_state", fmt.Errorf("alert request state %s is not OPEN or RESOLVED", req.State))
	}
}

func (p *Processor) onAck(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	var ack pb.AlertAck
	if raw == nil {
		p.deadLetter(ctx, nil, "empty", errors.New("alert ack has no value"))
		return
	}
	if err := proto.Unmarshal(raw, &ack); err != nil {
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding alert ack: %w", err))
		return
	}
	cur := current(ctx)
	if cur == nil || ack.AlertId != ctx.Key() {
		p.deadLetter(ctx, raw, "unknown_alert", fmt.Errorf("ack for unknown alert %q (key %q)", ack.AlertId, ctx.Key()))
		return
	}
	if cur.State != pb.AlertState_OPEN && cur.State != pb.AlertState_ESCALATED {
		return // already acknowledged or resolved
	}
	now := p.now()
	at := ack.GetMeta().GetEventTimeMs()
	if at == 0 {
		at = now.UnixMilli()
	} else if at < cur.OpenedTimeMs {
		// Made before the alert (re-)opened: an ack of its earlier
		// opening, read again after a restart. Counted and logged: an
		// acking host whose clock is behind this group's would have its
		// acks land here too.
		p.acksIgnored.WithLabelValues("before_open").Inc()
		p.log.Warn("ack made before the alert opened ignored", "alert_type", cur.GetAlertType().String(),
			"acked_ms", at, "opened_ms", cur.OpenedTimeMs)
		return
	}
	cur.State, cur.AckedTimeMs, cur.AckedBy = pb.AlertState_ACKNOWLEDGED, at, ack.User
	p.publish(ctx, cur, now)
}

// discrete reports whether alerts of type t are raised by discrete events
// (device reports; the correlation group's unauthorized access per camera
// event), which no detector resolves, or are resolved by their detector
// only for a while: MISSED_DOSE, which the adherence group resolves when
// a late intake corrects the dose within the correction horizon and never
// after it. Left to the detector, every finally missed dose would keep
// its acknowledged alert in the table for good (one entry per missed
// dose, without bound). A RESOLVED request after the clock resolved it
// (a correction horizon longer than the retention) changes nothing: the
// alert is resolved either way.
func discrete(t pb.AlertType) bool {
	switch t {
	case pb.AlertType_PUMP_FAILURE, pb.AlertType_DEVICE_SEVERITY, pb.AlertType_NEGATIVE_DOSE, pb.AlertType_UNAUTHORIZED_ACCESS_ALERT,
		pb.AlertType_MISSED_DOSE:
		return true
	}
	return false
}

// onEscalate escalates an unacknowledged alert whose SLA passed, and
// deletes resolved alerts past their retention.
func (p *Processor) onEscalate(ctx goka.Context, meta any) {
	cur := current(ctx)
	if cur == nil {
		return
	}
	nowMs, ok := meta.(int64)
	if !ok {
		nowMs = p.now().UnixMilli()
	}
	if cur.State == pb.AlertState_RESOLVED && nowMs-max(cur.ResolvedTimeMs, cur.GetMeta().GetIngestTimeMs()) > p.cfg.ResolvedRetention.Milliseconds() {
		ctx.Delete()
		return
	}
	// Discrete device alerts (pump failure, severity, negative dose) are
	// never resolved by their detector, only acknowledged: the retention
	// after its ack, such an alert is resolved here (a new version, so
	// downstream sees it closed), and the retention after that it leaves
	// the table like any resolved alert, which keeps the table bounded.
	// Condition alerts stay until their detector resolves them.
	if cur.State == pb.AlertState_ACKNOWLEDGED && discrete(cur.AlertType) && cur.AckedTimeMs > 0 && nowMs-cur.AckedTimeMs > p.cfg.ResolvedRetention.Milliseconds() {
		cur.State, cur.ResolvedTimeMs = pb.AlertState_RESOLVED, nowMs
		p.publish(ctx, cur, time.UnixMilli(nowMs))
		return
	}
	if (cur.State != pb.AlertState_OPEN && cur.State != pb.AlertState_ESCALATED) || cur.EscalationLevel >= p.cfg.MaxEscalation {
		return
	}
	sla := p.cfg.SLA[cur.Priority]
	if sla <= 0 {
		sla = p.cfg.SLA[pb.Priority_LOW]
	}
	due := cur.OpenedTimeMs + sla.Milliseconds()*int64(cur.EscalationLevel+1)
	if nowMs < due {
		return
	}
	cur.State = pb.AlertState_ESCALATED
	cur.EscalationLevel++
	p.publish(ctx, cur, time.UnixMilli(nowMs))
}
