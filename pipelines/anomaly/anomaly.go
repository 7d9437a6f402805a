// Package anomaly provides the anomaly goka group of wardstream: it scores
// every vitals reading 0-10 (the seed's rules for heart rate, blood
// pressure and SpO2, combined with a per-patient EWMA baseline z-score, see
// [Baseline.Score]) and raises alert requests: VITALS_EMERGENCY (score > 8)
// and VITALS_WARNING (score > 5) per patient, and the device alerts
// DEVICE_SEVERITY (device-reported severity > 5), PUMP_FAILURE,
// NEGATIVE_DOSE, LOW_BATTERY (below the threshold) and DEVICE_OFFLINE.
//
// The group table is keyed by device (vitals and status topics are keyed by
// device id). The baseline is kept per patient inside the state of the
// device that measured them: no re-keying round trip on the hottest path,
// at the price that a patient moved to another monitor starts a new
// baseline there. A baseline learns each reading once and in event-time
// order: a reading no newer than the newest it learned (a redelivery after
// a restart, a device's buffer flushed late) is scored but not learned.
//
// Alerts are episodes: a condition that starts opens an alert whose id
// carries the episode's start (type + subject + start), and the end of the
// condition (score back to normal, battery recharged, device online again)
// resolves it. Episodes are kept per alert type and subject, so one
// patient's readings never open, continue or resolve another patient's
// alert on the same monitor.
//
// Event time decides, whatever the arrival order. A reading older than
// the newest that judged a condition (a redelivery after a restart, a
// device's buffer flushed late) does not end the open episode (a newer
// reading found the condition on). One that finds the condition on, with
// no episode open or before the open one's start, is part of an episode
// the readings judged so far did not show. Within a closed episode the
// state remembers (per condition the latest [MaxPrevEpisodes], from their
// start to the reading that ended them) it changes nothing: a replay
// raises nothing. Otherwise it is the episode event order gives it: its
// alert (id at its own time) is opened and resolved at once, and its span
// up to the next known reading or episode is remembered, so the rest of
// it, late too, changes nothing. So a condition that is on in one
// reading of a stretch gives the same final alerts in any arrival order,
// with any redeliveries. Bounded state that emits no retractions cannot
// do that in general: the readings of one past episode arriving newest
// first report it under a second, resolved id too (the event-order id is
// there, with its final state); an abnormal reading older than the open
// episode's start is reported as an episode of its own, right when a
// normal reading lay between, else the ongoing condition stays open
// under the later id; a late normal reading within an episode does not
// split it; a late abnormal reading older than the remembered episodes
// (the oldest are forgotten) is reported as a past episode again. Never
// is an alert left open that event order would not leave open.
//
// Discrete device events (severity, pump
// failure, negative dose) continue their episode while they repeat within
// EpisodeQuiet (default 15 min, the seed's alert window), also when a late
// one was buffered by the device; the alerts group suppresses repeated
// requests for an open alert and escalates unacknowledged ones.
//
// A reading with a value that is not a number, or a scored vital outside
// [Plausible], is dead-lettered (reason implausible_value): neither scored
// nor learned. The reported score is rounded to 6 decimals and the level
// follows the reported score, so the two always agree.
//
// It does not decide adherence or manage the alert lifecycle.
package anomaly

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Source is the Meta.Source of every record the group emits.
const Source = "pipelines/anomaly"

// Topics names the Kafka topics the group reads and writes.
type Topics struct {
	Vitals, DeviceStatus, AnomalyScores, AlertRequests, DeadLetters string
	// VitalsBatches carries device batches (one record per batch, keyed by
	// device like Vitals); their scores go to ScoreBatches, one record per
	// batch.
	VitalsBatches, ScoreBatches string
}

// Config configures the group.
type Config struct {
	Group    string
	Topics   Topics
	Tenant   string
	Baseline BaselineConfig
	// BatteryThreshold is the battery level (percent) below which
	// LOW_BATTERY is raised (default 20).
	BatteryThreshold float64
	// EpisodeQuiet ends a discrete device-alert episode after this long
	// without a repeat (default 15m).
	EpisodeQuiet time.Duration
}

// DefaultConfig returns the defaults with the catalog's topic names.
func DefaultConfig() Config {
	return Config{
		Group: topics.GroupAnomaly,
		Topics: Topics{Vitals: topics.Vitals, DeviceStatus: topics.DeviceStatus, AnomalyScores: topics.AnomalyScores,
			AlertRequests: topics.GroupAlerts + "-requests", DeadLetters: topics.DeadLetters,
			VitalsBatches: topics.VitalsBatches, ScoreBatches: topics.ScoreBatches},
		Tenant: "default", Baseline: DefaultBaselineConfig(), BatteryThreshold: 20, EpisodeQuiet: 15 * time.Minute,
	}
}

// Validate returns every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("group: must not be empty"))
	}
	if c.Topics.Vitals == "" || c.Topics.DeviceStatus == "" || c.Topics.AnomalyScores == "" || c.Topics.AlertRequests == "" || c.Topics.DeadLetters == "" ||
		c.Topics.VitalsBatches == "" || c.Topics.ScoreBatches == "" {
		errs = append(errs, errors.New("topics: every topic must be named"))
	}
	b := c.Baseline
	if b.Alpha <= 0 || b.Alpha >= 1 {
		errs = append(errs, fmt.Errorf("baseline_alpha: %v is not in (0,1)", b.Alpha))
	}
	if b.MinSamples < 2 {
		errs = append(errs, fmt.Errorf("baseline_min_samples: %d is below 2", b.MinSamples))
	}
	if b.ZThreshold <= 0 || b.ZScale <= 0 {
		errs = append(errs, errors.New("z_threshold and z_scale: must be > 0"))
	}
	if c.BatteryThreshold < 0 || c.BatteryThreshold > 100 {
		errs = append(errs, fmt.Errorf("battery_threshold: %v is not 0..100", c.BatteryThreshold))
	}
	if c.EpisodeQuiet <= 0 {
		errs = append(errs, errors.New("episode_quiet: must be > 0"))
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

// Processor is the anomaly group's logic; safe for concurrent use.
type Processor struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
	now func() time.Time

	scored      *prometheus.CounterVec
	byLevel     map[string]prometheus.Counter // scored's children, looked up once
	batteryMsg  func() string
	deadLetters *prometheus.CounterVec
	alertReqs   *prometheus.CounterVec
}

// New builds the group logic; it does no I/O.
func New(cfg Config, opts ...Option) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("anomaly config: %w", err)
	}
	p := &Processor{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	p.log = telemetry.OrDiscard(p.log).With("component", Source)
	p.scored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_anomaly_scores_total",
		Help: "Vitals readings scored, by level."}, []string{"level"})
	p.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_anomaly_dead_letters_total",
		Help: "Anomaly inputs sent to the dead-letter topic, by reason."}, []string{"reason"})
	p.alertReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_anomaly_alert_requests_total",
		Help: "Alert requests sent by the anomaly group, by type and state."}, []string{"type", "state"})
	p.byLevel = map[string]prometheus.Counter{}
	for _, l := range []string{"NORMAL", "WARNING", "EMERGENCY"} {
		p.byLevel[l] = p.scored.WithLabelValues(l)
	}
	bm := fmt.Sprintf("battery below %.0f%%", cfg.BatteryThreshold)
	p.batteryMsg = func() string { return bm }
	if p.reg != nil {
		for _, c := range []prometheus.Collector{p.scored, p.deadLetters, p.alertReqs} {
			if err := p.reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering anomaly metrics: %w", err)
			}
		}
	}
	return p, nil
}

var (
	scoreCodec = codec.NewGoka(func() *pb.AnomalyScore { return &pb.AnomalyScore{} })
	batchCodec = codec.NewGoka(func() *pb.AnomalyScoreBatch { return &pb.AnomalyScoreBatch{} })
	alertCodec = codec.NewGoka(func() *pb.Alert { return &pb.Alert{} })
	dlqCodec   = codec.NewGoka(func() *pb.DeadLetter { return &pb.DeadLetter{} })
)

// Graph returns the goka group graph.
func (p *Processor) Graph() *goka.GroupGraph {
	t := p.cfg.Topics
	return goka.DefineGroup(goka.Group(p.cfg.Group),
		goka.Input(goka.Stream(t.Vitals), new(gcodec.Bytes), p.onVitals),
		goka.Input(goka.Stream(t.VitalsBatches), new(gcodec.Bytes), p.onVitalsBatch),
		goka.Input(goka.Stream(t.DeviceStatus), new(gcodec.Bytes), p.onStatus),
		goka.Persist(StateCodec{}),
		goka.Output(goka.Stream(t.AnomalyScores), scoreCodec),
		goka.Output(goka.Stream(t.ScoreBatches), batchCodec),
		goka.Output(goka.Stream(t.AlertRequests), alertCodec),
		goka.Output(goka.Stream(t.DeadLetters), dlqCodec),
	)
}

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string, err error) {
	p.deadLetterAt(ctx, -1, raw, reason, err)
}

// deadLetterAt dead-letters part idx of the input record (a reading of a
// batch; idx < 0: the whole record); the part's index keeps the dead
// letters' ids distinct.
func (p *Processor) deadLetterAt(ctx goka.Context, idx int, raw []byte, reason string, err error) {
	p.deadLetters.WithLabelValues(reason).Inc()
	now := p.now()
	src := string(ctx.Topic())
	p.log.Warn("input dead-lettered", "topic", src, "partition", ctx.Partition(), "offset", ctx.Offset(), "part", idx, "reason", reason)
	id := src + "/" + strconv.Itoa(int(ctx.Partition())) + "/" + strconv.FormatInt(ctx.Offset(), 10)
	if idx >= 0 {
		id += "#" + strconv.Itoa(idx)
	}
	ctx.Emit(goka.Stream(p.cfg.Topics.DeadLetters), ctx.Key(), &pb.DeadLetter{
		Meta: &pb.Meta{Tenant: p.cfg.Tenant, EventId: id,
			EventTimeMs: now.UnixMilli(), IngestTimeMs: now.UnixMilli(), Source: Source},
		Stage: Source, SourceTopic: src, SourcePartition: ctx.Partition(), SourceOffset: ctx.Offset(),
		Key: []byte(ctx.Key()), Raw: raw, Reason: reason, Error: err.Error(),
	})
}

func stateOf(ctx goka.Context) *State {
	if v := ctx.Value(); v != nil {
		return v.(*State)
	}
	return &State{}
}

// scoredBy returns the scored counter of level.
func (p *Processor) scoredBy(level string) prometheus.Counter {
	if c, ok := p.byLevel[level]; ok {
		return c
	}
	return p.scored.WithLabelValues(level)
}

// Fields of a reading that the group reads, as bits of a [presence].
const (
	fieldHR = 1 << iota
	fieldBP
	fieldSpO2
	fieldDose
	fieldBattery
)

// presence is which fields a reading carries: those its Present list
// names (by proto name or the seed's camelCase), or, without a list, those
// with a non-zero value.
type presence struct {
	listed bool
	set    uint8
}

// presenceOf reads v's Present list once.
func presenceOf(v *pb.VitalsTelemetry) presence {
	p := presence{listed: len(v.GetPresent()) > 0}
	for _, n := range v.GetPresent() {
		switch n {
		case "heart_rate", "heartRate":
			p.set |= fieldHR
		case "systolic_bp", "systolicBp", "bloodPressure", "blood_pressure":
			p.set |= fieldBP
		case "spo2", "oxygenSat", "oxygen_sat":
			p.set |= fieldSpO2
		case "medication_dose", "medicationDose", "dose":
			p.set |= fieldDose
		case "battery_level", "batteryLevel":
			p.set |= fieldBattery
		}
	}
	return p
}

// has reports whether the reading carries field f, whose value is val.
func (p presence) has(f uint8, val float64) bool {
	if !p.listed {
		return val != 0
	}
	return p.set&f != 0
}

func (p *Processor) onVitals(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if raw == nil {
		p.deadLetter(ctx, nil, "empty", errors.New("vitals record has no value"))
		return
	}
	s := scratches.Get().(*scratch)
	v := &s.v
	if err := codec.UnmarshalVitalsMeta(raw, v, &s.vmeta); err != nil {
		scratches.Put(s)
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding vitals: %w", err))
		return
	}
	if v.GetDeviceId() == "" || v.GetMeta().GetEventId() == "" {
		scratches.Put(s)
		p.deadLetter(ctx, raw, "missing_field", errors.New("vitals lack deviceId or meta.eventId"))
		return
	}
	if v.GetDeviceId() != ctx.Key() {
		// The state is the device's: a record under another key (or none)
		// would read and write another device's baselines.
		err := fmt.Errorf("vitals of device %q arrived under key %q (vitals are keyed by device)", v.GetDeviceId(), ctx.Key())
		scratches.Put(s)
		p.deadLetter(ctx, raw, "bad_key", err)
		return
	}
	// Implausible vitals are dead-lettered and neither scored nor learned;
	// the reading's device events (pump failure, severity, dose, battery)
	// are still handled.
	score := true
	if err := checkValues(v); err != nil {
		p.deadLetter(ctx, raw, ReasonImplausible, err)
		score = false
	}
	st := stateOf(ctx)
	if p.reading(ctx, st, v, p.now(), score, &s.sc, &s.smeta) {
		ctx.Emit(goka.Stream(p.cfg.Topics.AnomalyScores), v.GetDeviceId(), &s.sc)
	}
	ctx.SetValue(st)
	scratches.Put(s)
}

// scratch holds the messages of one single-reading callback, reused from
// record to record: goka encodes what a callback emits before Emit
// returns, and nothing keeps a pointer to them (the state keeps strings
// only). A callback that panics (goka's ctx.Fail) drops its scratch.
type scratch struct {
	v     pb.VitalsTelemetry
	vmeta pb.Meta
	sc    pb.AnomalyScore
	smeta pb.Meta
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// onVitalsBatch handles a device batch exactly as its readings one by one
// on the vitals topic, in order, except that the state is read and written
// once and the scores leave as one AnomalyScoreBatch record. A reading
// without device or event id, or of another device, is dead-lettered
// alone.
func (p *Processor) onVitalsBatch(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if raw == nil {
		p.deadLetter(ctx, nil, "empty", errors.New("vitals batch record has no value"))
		return
	}
	var b pb.VitalsBatch
	if err := codec.UnmarshalVitalsBatch(raw, &b); err != nil {
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding vitals batch: %w", err))
		return
	}
	if b.GetDeviceId() != ctx.Key() {
		p.deadLetter(ctx, raw, "bad_key", fmt.Errorf("vitals batch of device %q arrived under key %q (batches are keyed by device)", b.GetDeviceId(), ctx.Key()))
		return
	}
	now := p.now()
	st := stateOf(ctx)
	scores := make([]*pb.AnomalyScore, 0, len(b.Readings))
	for i, v := range b.Readings {
		if v.GetDeviceId() == "" || v.GetMeta().GetEventId() == "" {
			part, _ := proto.Marshal(v)
			p.deadLetterAt(ctx, i, part, "missing_field", fmt.Errorf("batch %s reading %d lacks deviceId or meta.eventId", b.GetBatchId(), i))
			continue
		}
		if v.GetDeviceId() != b.GetDeviceId() {
			// As a single reading under another device's key: the state
			// is the batch's device's.
			part, _ := proto.Marshal(v)
			p.deadLetterAt(ctx, i, part, "bad_key", fmt.Errorf("batch %s of device %q holds reading %d of device %q", b.GetBatchId(), b.GetDeviceId(), i, v.GetDeviceId()))
			continue
		}
		score := true
		if err := checkValues(v); err != nil {
			part, _ := proto.Marshal(v)
			p.deadLetterAt(ctx, i, part, ReasonImplausible, fmt.Errorf("batch %s reading %d: %w", b.GetBatchId(), i, err))
			score = false
		}
		sc, m := new(pb.AnomalyScore), new(pb.Meta)
		if p.reading(ctx, st, v, now, score, sc, m) {
			scores = append(scores, sc)
		}
	}
	if len(scores) > 0 {
		ctx.Emit(goka.Stream(p.cfg.Topics.ScoreBatches), ctx.Key(), &pb.AnomalyScoreBatch{
			Meta:     p.meta(st, "anomaly|"+b.GetMeta().GetEventId(), scores[len(scores)-1].GetMeta().GetEventTimeMs(), now),
			DeviceId: b.GetDeviceId(), Scores: scores,
		})
	}
	ctx.SetValue(st)
}

// ReasonImplausible is the dead-letter reason of a reading with a value
// that is not a number (NaN, infinite) or a scored vital outside
// [Plausible].
const ReasonImplausible = "implausible_value"

// Plausible is the range, inclusive, of each scored vital (heart rate in
// bpm, systolic blood pressure in mmHg, SpO2 in %) that a reading may
// carry. A value outside is a sensor or encoding fault, not a measurement:
// scored, it would raise a false alert, and learned, it would wreck the
// patient's baseline for hundreds of readings (one heart rate of 1e200
// made the variance infinite and every later z-score 0). Zero is kept: a
// monitor reporting a heart rate of 0 must alert.
var Plausible = [nMetrics][2]float64{HR: {0, 350}, BP: {0, 400}, SpO2: {0, 100}}

// checkValues refuses a reading whose present scored vital (heart rate,
// systolic blood pressure, SpO2) is not a number or lies outside
// [Plausible]. Other fields are not the group's to judge (the sink lands
// them as sent); a battery level or dose that is not a number counts as
// absent here.
func checkValues(v *pb.VitalsTelemetry) error {
	vals := [nMetrics]float64{v.GetHeartRate(), v.GetSystolicBp(), v.GetSpo2()}
	pr := presenceOf(v)
	has := [nMetrics]bool{pr.has(fieldHR, vals[HR]), pr.has(fieldBP, vals[BP]), pr.has(fieldSpO2, vals[SpO2])}
	for m := range nMetrics {
		switch {
		case !has[m]:
		case math.IsNaN(vals[m]) || math.IsInf(vals[m], 0):
			return fmt.Errorf("%s is not a number", metricNames[m])
		case vals[m] < Plausible[m][0] || vals[m] > Plausible[m][1]:
			return fmt.Errorf("%s %v is outside %v..%v", metricNames[m], vals[m], Plausible[m][0], Plausible[m][1])
		}
	}
	return nil
}

// finite reports whether x is a number (not NaN, not infinite).
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// reading updates st with one vitals reading and raises its alert
// requests. When the reading carries a scored vital it writes its score to
// out, with m as out's Meta (both overwritten), and returns true.
func (p *Processor) reading(ctx goka.Context, st *State, v *pb.VitalsTelemetry, now time.Time, score bool, out *pb.AnomalyScore, m *pb.Meta) bool {
	scored := false
	if t := v.GetMeta().GetTenant(); t != "" {
		st.Tenant = t
	}
	ev := v.GetMeta().GetEventTimeMs()
	var vit Vitals
	vit.V = [nMetrics]float64{v.GetHeartRate(), v.GetSystolicBp(), v.GetSpo2()}
	pr := presenceOf(v)
	vit.Has = [nMetrics]bool{pr.has(fieldHR, vit.V[HR]), pr.has(fieldBP, vit.V[BP]), pr.has(fieldSpO2, vit.V[SpO2])}
	if score && (vit.Has[HR] || vit.Has[BP] || vit.Has[SpO2]) {
		patient := v.GetPatientId()
		subject := patient
		if subject == "" {
			subject = v.GetDeviceId()
		}
		if st.Patients == nil {
			st.Patients = map[string]*Baseline{}
		}
		b := st.Patients[subject]
		if b == nil {
			b = &Baseline{}
			st.Patients[subject] = b
		}
		// The baseline's newest reading is the newest that judged the
		// patient's vitals conditions.
		judged := b.Last
		late := (b.Last != 0 || len(b.LastIDs) > 0) && ev < judged
		learn := b.Admit(ev, v.GetMeta().GetEventId())
		score, rule, z, reasons := b.score(p.cfg.Baseline, vit, learn)
		level := Level(score)
		p.scoredBy(level).Inc()
		p.metaInto(m, st, "anomaly|"+v.GetMeta().GetEventId(), ev, now)
		*out = pb.AnomalyScore{
			Meta:     m,
			DeviceId: v.GetDeviceId(), PatientId: patient, ReadingEventId: v.GetMeta().GetEventId(),
			Score: score, RuleScore: rule, ZScore: z, Reasons: reasons, Level: level,
			HeartRate: v.GetHeartRate(), SystolicBp: v.GetSystolicBp(), Spo2: v.GetSpo2(), Ward: v.GetWard(),
		}
		scored = true
		subjType := alerts.SubjectPatient
		if patient == "" {
			subjType = alerts.SubjectDevice
		}
		// Formatted only when an alert opens or resolves, not per reading.
		msg := func() string { return fmt.Sprintf("anomaly score %.1f (%s)", score, level) }
		p.condition(ctx, st, pb.AlertType_VITALS_EMERGENCY, pb.Priority_CRITICAL, subjType, subject, level == "EMERGENCY", judged, late, ev, now, v, msg)
		p.condition(ctx, st, pb.AlertType_VITALS_WARNING, pb.Priority_HIGH, subjType, subject, level == "WARNING", judged, late, ev, now, v, msg)
	}
	dev := v.GetDeviceId()
	if v.GetSeverity() > 5 {
		pr := pb.Priority_HIGH
		if v.GetSeverity() > 8 {
			pr = pb.Priority_CRITICAL
		}
		p.event(ctx, st, pb.AlertType_DEVICE_SEVERITY, pr, dev, ev, now, v, fmt.Sprintf("device reported severity %d", v.GetSeverity()))
	}
	if v.GetAlertType() == "PUMP_FAILURE" || v.GetAlertType() == "pump_failure" {
		p.event(ctx, st, pb.AlertType_PUMP_FAILURE, pb.Priority_CRITICAL, dev, ev, now, v, "infusion pump failure")
	}
	if pr.has(fieldDose, v.GetMedicationDose()) && finite(v.GetMedicationDose()) && v.GetMedicationDose() < 0 {
		p.event(ctx, st, pb.AlertType_NEGATIVE_DOSE, pb.Priority_HIGH, dev, ev, now, v, "negative medication dose reported")
	}
	if pr.has(fieldBattery, v.GetBatteryLevel()) && finite(v.GetBatteryLevel()) {
		judged, late := st.judge(pb.AlertType_LOW_BATTERY, dev, ev)
		p.condition(ctx, st, pb.AlertType_LOW_BATTERY, pb.Priority_MEDIUM, alerts.SubjectDevice, dev, v.GetBatteryLevel() < p.cfg.BatteryThreshold, judged, late, ev, now, v,
			p.batteryMsg)
	}
	return scored
}

func (p *Processor) onStatus(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	var s pb.DeviceStatus
	if raw == nil {
		p.deadLetter(ctx, nil, "empty", errors.New("status record has no value"))
		return
	}
	if err := proto.Unmarshal(raw, &s); err != nil {
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding device status: %w", err))
		return
	}
	if s.GetDeviceId() == "" {
		p.deadLetter(ctx, raw, "missing_field", errors.New("status lacks deviceId"))
		return
	}
	if s.GetDeviceId() != ctx.Key() {
		p.deadLetter(ctx, raw, "bad_key", fmt.Errorf("status of device %q arrived under key %q (statuses are keyed by device)", s.GetDeviceId(), ctx.Key()))
		return
	}
	now := p.now()
	st := stateOf(ctx)
	if t := s.GetMeta().GetTenant(); t != "" {
		st.Tenant = t
	}
	ev := s.GetMeta().GetEventTimeMs()
	v := &pb.VitalsTelemetry{DeviceId: s.GetDeviceId(), PatientId: s.GetPatientId(), Ward: s.GetWard()}
	judged, late := st.judge(pb.AlertType_DEVICE_OFFLINE, s.GetDeviceId(), ev)
	p.condition(ctx, st, pb.AlertType_DEVICE_OFFLINE, pb.Priority_HIGH, alerts.SubjectDevice, s.GetDeviceId(), !s.GetOnline(), judged, late, ev, now, v, func() string { return "device offline" })
	// A status without a battery reading (0 while online) says nothing
	// about the battery.
	if s.GetBatteryLevel() > 0 || !s.GetOnline() && s.GetBatteryLevel() == 0 && s.GetStatus() == "battery_empty" {
		judged, late := st.judge(pb.AlertType_LOW_BATTERY, s.GetDeviceId(), ev)
		p.condition(ctx, st, pb.AlertType_LOW_BATTERY, pb.Priority_MEDIUM, alerts.SubjectDevice, s.GetDeviceId(), s.GetBatteryLevel() < p.cfg.BatteryThreshold, judged, late, ev, now, v,
			p.batteryMsg)
	}
	ctx.SetValue(st)
}

func (p *Processor) meta(st *State, id string, ev int64, now time.Time) *pb.Meta {
	m := new(pb.Meta)
	p.metaInto(m, st, id, ev, now)
	return m
}

// metaInto overwrites m with the Meta of a record the group emits.
func (p *Processor) metaInto(m *pb.Meta, st *State, id string, ev int64, now time.Time) {
	t := st.Tenant
	if t == "" {
		t = p.cfg.Tenant
	}
	*m = pb.Meta{Tenant: t, EventId: id, EventTimeMs: ev, IngestTimeMs: now.UnixMilli(), Source: Source}
}

// condition opens an episode when on starts and resolves it when on ends.
// Episodes are per alert type and subject, so one patient's reading never
// opens, continues or resolves another's.
//
// judged is the newest event time that judged the condition before this
// one, and late says that it is newer than ev: the subject's baseline's
// newest reading for the vitals conditions, [State.judge] for the
// device's. A late reading that finds the condition on, with no episode
// open or before the open one's start, is part of an episode that the
// readings judged so far did not show: within a closed episode the state
// remembers ([State.Closed]: a redelivery, a late part of a known
// episode) it changes nothing; otherwise it is reported as the episode
// that event order gives it, starting at ev (its alert id), opened and
// resolved at once (the newer reading ended it, or the open episode is
// the next one), and remembered as closed up to the next known reading
// or episode, so that the rest of it, arriving late too, changes nothing.
func (p *Processor) condition(ctx goka.Context, st *State, t pb.AlertType, pr pb.Priority, subjType, subject string, on bool, judged int64, late bool, ev int64, now time.Time, v *pb.VitalsTelemetry, msg func() string) {
	k := EpisodeKey{Type: int32(t), Subject: subject}
	e, open := st.Episodes[k]
	switch {
	case on && (open && ev < e.Start || !open && late):
		// Older than the newest reading that judged the condition (a
		// redelivery after a restart, a device's buffer flushed late).
		if st.closedAt(k, ev) {
			return
		}
		end := judged
		if open {
			end = e.Start
		}
		for _, c := range st.Closed[k] {
			if c.Start > ev && c.Start < end {
				end = c.Start
			}
		}
		st.addClosed(k, Span{Start: ev, Last: end})
		past := Episode{Start: ev, Last: ev, SubjectType: subjType}
		m := msg()
		p.request(ctx, st, t, pr, pb.AlertState_OPEN, k, past, now, v, m)
		p.request(ctx, st, t, pr, pb.AlertState_RESOLVED, k, past, now, v, m)
	case on && !open:
		if st.Episodes == nil {
			st.Episodes = map[EpisodeKey]Episode{}
		}
		e = Episode{Start: ev, Last: ev, SubjectType: subjType}
		st.Episodes[k] = e
		p.request(ctx, st, t, pr, pb.AlertState_OPEN, k, e, now, v, msg())
	case !on && open && ev < e.Last:
		// A reading older than the episode's latest (flushed from a
		// device's buffer) does not end it: event time decides.
	case !on && open:
		delete(st.Episodes, k)
		st.addClosed(k, Span{Start: e.Start, Last: ev})
		p.request(ctx, st, t, pr, pb.AlertState_RESOLVED, k, e, now, v, msg())
	case on && open:
		e.Last = max(e.Last, ev)
		st.Episodes[k] = e
	}
}

// event continues or starts a discrete device-alert episode. An event
// within EpisodeQuiet of the open episode continues it, also one that
// arrives late (buffered by the device) with an event time before the
// episode's start: one failure keeps one alert id whatever the arrival
// order. So does a late event within EpisodeQuiet of one of the earlier
// episodes kept (the latest [MaxPrevEpisodes]). A late event further than
// EpisodeQuiet from all of them starts an earlier episode of its own,
// kept with the others; the open episode stays the one later events
// continue.
func (p *Processor) event(ctx goka.Context, st *State, t pb.AlertType, pr pb.Priority, device string, ev int64, now time.Time, v *pb.VitalsTelemetry, msg string) {
	if st.Episodes == nil {
		st.Episodes = map[EpisodeKey]Episode{}
	}
	k := EpisodeKey{Type: int32(t), Subject: device}
	quiet := p.cfg.EpisodeQuiet.Milliseconds()
	e, open := st.Episodes[k]
	within := func(start, last int64) bool { return ev-last <= quiet && start-ev <= quiet }
	switch {
	case open && within(e.Start, e.Last):
		e.Last = max(e.Last, ev)
		st.Episodes[k] = e
		// Repeat while open: the alerts group suppresses it (or raises
		// its priority), and counts it.
	case open:
		for i, pv := range e.Prev {
			if within(pv.Start, pv.Last) {
				// A late report of an earlier episode continues it.
				e.Prev[i].Last = max(pv.Last, ev)
				st.Episodes[k] = e
				p.request(ctx, st, t, pr, pb.AlertState_OPEN, k, Episode{Start: pv.Start, Last: e.Prev[i].Last, SubjectType: alerts.SubjectDevice}, now, v, msg)
				return
			}
		}
		if e.Start-ev > quiet {
			// A late report of an earlier episode not seen before.
			e.Prev = addPrev(e.Prev, Span{Start: ev, Last: ev})
			st.Episodes[k] = e
			p.request(ctx, st, t, pr, pb.AlertState_OPEN, k, Episode{Start: ev, Last: ev, SubjectType: alerts.SubjectDevice}, now, v, msg)
			return
		}
		// A new episode after the open one: that one becomes earlier.
		e = Episode{Start: ev, Last: ev, SubjectType: alerts.SubjectDevice, Prev: addPrev(e.Prev, Span{Start: e.Start, Last: e.Last})}
		st.Episodes[k] = e
	default:
		e = Episode{Start: ev, Last: ev, SubjectType: alerts.SubjectDevice}
		st.Episodes[k] = e
	}
	p.request(ctx, st, t, pr, pb.AlertState_OPEN, k, e, now, v, msg)
}

// addPrev adds span to prev, newest first, keeping the latest
// MaxPrevEpisodes (a fresh slice: the decoded state's is not shared).
func addPrev(prev []Span, span Span) []Span {
	out := make([]Span, 0, min(len(prev)+1, MaxPrevEpisodes))
	out = append(out, prev...)
	out = append(out, span)
	slices.SortFunc(out, func(a, b Span) int { return cmp.Compare(b.Start, a.Start) })
	return out[:min(len(out), MaxPrevEpisodes)]
}

// subjectType is the subject type of episode k: the one it was opened
// with, or for an episode stored before the subject type was kept (state
// format 1), the device when the subject is the device, else the patient.
func subjectType(k EpisodeKey, e Episode, device string) string {
	switch {
	case e.SubjectType != "":
		return e.SubjectType
	case k.Subject == device:
		return alerts.SubjectDevice
	}
	return alerts.SubjectPatient
}

func (p *Processor) request(ctx goka.Context, st *State, t pb.AlertType, pr pb.Priority, state pb.AlertState, k EpisodeKey, e Episode, now time.Time, v *pb.VitalsTelemetry, msg string) {
	tenant := st.Tenant
	if tenant == "" {
		tenant = p.cfg.Tenant
	}
	a := alerts.Request(tenant, t, pr, state, subjectType(k, e, v.GetDeviceId()), k.Subject, strconv.FormatInt(e.Start, 10), time.UnixMilli(e.Start), now)
	if state == pb.AlertState_RESOLVED {
		a.Meta.EventTimeMs = now.UnixMilli()
	}
	// An episode's id is its own: its OPEN is request 1 and its RESOLVED
	// request 2, so a replayed OPEN never re-opens the resolved alert.
	a.RequestVersion = 1
	if state == pb.AlertState_RESOLVED {
		a.RequestVersion = 2
	}
	a.DeviceId, a.Ward, a.Message = v.GetDeviceId(), v.GetWard(), msg
	if v.GetPatientId() != "" {
		a.PatientId = v.GetPatientId()
	}
	p.alertReqs.WithLabelValues(t.String(), state.String()).Inc()
	ctx.Emit(goka.Stream(p.cfg.Topics.AlertRequests), a.AlertId, a)
}
