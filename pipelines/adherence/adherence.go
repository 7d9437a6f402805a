// Package adherence provides the adherence goka group of wardstream: it
// turns dose schedules and medication intakes into one final outcome per
// scheduled dose (TAKEN_ON_TIME, TAKEN_EARLY, TAKEN_LATE, MISSED; EXTRA for
// intakes that match no dose), adherence windows (daily, rolling 7 and 30
// days, 30-day PDC) and alert requests (MISSED_DOSE, LOW_ADHERENCE).
//
// The group table is keyed by patient. Intakes arrive keyed by patient;
// schedules arrive keyed by "patient|medication" on their compacted topic
// and are re-keyed through the group's loopback. The definitions are those
// of pipelines/schedule (windows, DST) and the package reference (matching,
// ratios); every change of a dose's outcome is emitted with a higher
// version, so downstream keeps the highest version as the final truth, and
// the final results do not depend on arrival order.
//
// # Clock
//
// Goka has no timers. MISSED needs processing time: the role calls the
// group's visitor [VisitClock] every tick (default 15 s) through
// goka.Processor.VisitAll, which runs inside each partition's goroutine over
// every key of the partition's table, in order with its messages. A visit
// finalizes the doses whose grace has passed, materializes upcoming doses
// and prunes old state; keys with nothing due are not rewritten. Because the
// visit is driven by each instance over the partitions it currently owns,
// restarts and rebalances need no timer hand-over: the new owner's next
// visit finds the overdue doses in the restored table. Outputs carry
// deterministic ids and per-dose versions, so a visit repeated after a crash
// (before the table write was committed) re-emits identical records.
//
// It does not compute anomaly scores or manage alert lifecycles (see
// pipelines/anomaly and pipelines/alerts).
package adherence

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/reference"
	"github.com/wardstream/wardstream/pipelines/schedule"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// defaultLateMs is the default late window: an intake for a medication
// without a schedule waits this long before it is declared EXTRA.
const defaultLateMs = int64(schedule.DefaultLateMinutes) * 60_000

// VisitClock is the name of the group's clock visitor; its meta argument is
// the current time in Unix ms (int64).
const VisitClock = "clock"

// Source is the Meta.Source of every record the group emits.
const Source = "pipelines/adherence"

// Topics names the Kafka topics the group reads and writes.
type Topics struct {
	Intake, Schedules, DoseOutcomes, Adherence, AlertRequests, DeadLetters string
}

// Config configures the group. The processors role fills it from its
// topology section.
type Config struct {
	// Group is the goka group (and so table and loopback topic) name.
	Group  string
	Topics Topics
	// Tenant is used for records that do not name one.
	Tenant string
	// CorrectionHorizon is how long doses stay correctable (default 72h):
	// intakes that could only match older doses go to the dead-letter
	// topic with reason beyond_correction_horizon.
	CorrectionHorizon time.Duration
	// LowThreshold is the 7-day ratio below which LOW_ADHERENCE is raised
	// (default 0.8, the seed's compliance threshold).
	LowThreshold float64
}

// DefaultConfig returns the defaults with the catalog's topic names.
func DefaultConfig() Config {
	return Config{
		Group: topics.GroupAdherence,
		Topics: Topics{Intake: topics.Intake, Schedules: topics.Schedules, DoseOutcomes: topics.DoseOutcomes,
			Adherence: topics.Adherence, AlertRequests: topics.GroupAlerts + "-requests", DeadLetters: topics.DeadLetters},
		Tenant: "default", CorrectionHorizon: 72 * time.Hour, LowThreshold: 0.8,
	}
}

// Validate returns every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("group: must not be empty"))
	}
	for name, v := range map[string]string{"intake": c.Topics.Intake, "schedules": c.Topics.Schedules, "dose_outcomes": c.Topics.DoseOutcomes,
		"adherence": c.Topics.Adherence, "alert_requests": c.Topics.AlertRequests, "dead_letters": c.Topics.DeadLetters} {
		if v == "" {
			errs = append(errs, fmt.Errorf("topics.%s: must not be empty", name))
		}
	}
	if c.CorrectionHorizon < 24*time.Hour {
		errs = append(errs, fmt.Errorf("correction_horizon: %v is shorter than 24h", c.CorrectionHorizon))
	}
	if c.LowThreshold <= 0 || c.LowThreshold > 1 {
		errs = append(errs, fmt.Errorf("low_adherence_threshold: %v is not in (0,1]", c.LowThreshold))
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

// Processor is the adherence group's logic. It is safe for concurrent use
// by goka's partition goroutines (it holds no per-key state).
type Processor struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
	now func() time.Time

	outcomes    *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	alertReqs   *prometheus.CounterVec
	windows     prometheus.Counter
}

// New builds the group logic; it does no I/O.
func New(cfg Config, opts ...Option) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("adherence config: %w", err)
	}
	p := &Processor{cfg: cfg, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	p.log = telemetry.OrDiscard(p.log).With("component", Source)
	p.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_dose_outcomes_total",
		Help: "Dose outcome records emitted (corrections included), by outcome."}, []string{"outcome"})
	p.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_adherence_dead_letters_total",
		Help: "Adherence inputs sent to the dead-letter topic, by reason."}, []string{"reason"})
	p.alertReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_processors_adherence_alert_requests_total",
		Help: "Alert requests sent by the adherence group, by type and state."}, []string{"type", "state"})
	p.windows = prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_processors_adherence_windows_total",
		Help: "Adherence window records emitted."})
	if p.reg != nil {
		for _, c := range []prometheus.Collector{p.outcomes, p.deadLetters, p.alertReqs, p.windows} {
			if err := p.reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering adherence metrics: %w", err)
			}
		}
	}
	return p, nil
}

var (
	scheduleCodec = codec.NewGoka(func() *pb.DoseSchedule { return &pb.DoseSchedule{} })
	outcomeCodec  = codec.NewGoka(func() *pb.DoseOutcome { return &pb.DoseOutcome{} })
	windowCodec   = codec.NewGoka(func() *pb.AdherenceWindow { return &pb.AdherenceWindow{} })
	alertCodec    = codec.NewGoka(func() *pb.Alert { return &pb.Alert{} })
	dlqCodec      = codec.NewGoka(func() *pb.DeadLetter { return &pb.DeadLetter{} })
)

// Graph returns the goka group graph. Inputs are read as raw bytes so that
// undecodable records go to the dead-letter topic instead of stopping the
// group.
func (p *Processor) Graph() *goka.GroupGraph {
	t := p.cfg.Topics
	return goka.DefineGroup(goka.Group(p.cfg.Group),
		goka.Input(goka.Stream(t.Intake), new(gcodec.Bytes), p.onIntake),
		goka.Input(goka.Stream(t.Schedules), new(gcodec.Bytes), p.onSchedule),
		goka.Loop(scheduleCodec, p.onLoopSchedule),
		goka.Visitor(VisitClock, p.onClock),
		goka.Persist(StateCodec{}),
		goka.Output(goka.Stream(t.DoseOutcomes), outcomeCodec),
		goka.Output(goka.Stream(t.Adherence), windowCodec),
		goka.Output(goka.Stream(t.AlertRequests), alertCodec),
		goka.Output(goka.Stream(t.DeadLetters), dlqCodec),
	)
}

// emit is one output record.
type emit struct {
	topic string
	key   string
	msg   proto.Message
}

func (p *Processor) flush(ctx goka.Context, out []emit) {
	for _, e := range out {
		ctx.Emit(goka.Stream(e.topic), e.key, e.msg)
	}
}

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string, err error) {
	p.deadLetters.WithLabelValues(reason).Inc()
	now := p.now()
	src := string(ctx.Topic())
	dl := &pb.DeadLetter{
		Meta: &pb.Meta{Tenant: p.cfg.Tenant, EventId: src + "/" + strconv.Itoa(int(ctx.Partition())) + "/" + strconv.FormatInt(ctx.Offset(), 10),
			EventTimeMs: now.UnixMilli(), IngestTimeMs: now.UnixMilli(), Source: Source},
		Stage: Source, SourceTopic: src, SourcePartition: ctx.Partition(), SourceOffset: ctx.Offset(),
		Key: []byte(ctx.Key()), Raw: raw, Reason: reason, Error: err.Error(),
	}
	p.log.Warn("input dead-lettered", "topic", src, "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	ctx.Emit(goka.Stream(p.cfg.Topics.DeadLetters), ctx.Key(), dl)
}

func (p *Processor) state(ctx goka.Context) *State {
	if v := ctx.Value(); v != nil {
		return v.(*State)
	}
	return &State{}
}

func (s *State) med(id string) *MedState {
	if s.Meds == nil {
		s.Meds = map[string]*MedState{}
	}
	m := s.Meds[id]
	if m == nil {
		m = &MedState{}
		s.Meds[id] = m
	}
	return m
}

// onSchedule re-keys a schedule by patient through the loopback. A
// tombstone (nil value) deletes the schedule named by its key.
func (p *Processor) onSchedule(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if raw == nil {
		pat, med, ok := patientOf(ctx.Key())
		if !ok {
			p.deadLetter(ctx, nil, "bad_key", fmt.Errorf("schedule tombstone key %q is not patientId|medicationId", ctx.Key()))
			return
		}
		ctx.Loopback(pat, &pb.DoseSchedule{PatientId: pat, MedicationId: med, Deleted: true})
		return
	}
	var s pb.DoseSchedule
	if err := proto.Unmarshal(raw, &s); err != nil {
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding schedule: %w", err))
		return
	}
	if _, err := schedule.Parse(&s); err != nil {
		p.deadLetter(ctx, raw, "invalid_schedule", err)
		return
	}
	ctx.Loopback(s.GetPatientId(), &s)
}

// onLoopSchedule applies a (re-keyed) schedule to the patient's state.
func (p *Processor) onLoopSchedule(ctx goka.Context, msg any) {
	s, ok := msg.(*pb.DoseSchedule)
	if !ok || s == nil {
		return
	}
	now := p.now()
	st := p.state(ctx)
	m := st.med(s.GetMedicationId())
	cur := m.schedProto()
	tombstone := s.GetDeleted() && s.GetVersion() == 0
	if tombstone {
		// The schedule was deleted (compacted away): a version after the
		// latest, from now on.
		if m.Sched == nil || cur.GetDeleted() {
			return
		}
		s = proto.Clone(cur).(*pb.DoseSchedule)
		s.Deleted = true
		s.Version = cur.GetVersion() + 1
		s.Meta = &pb.Meta{Tenant: cur.GetMeta().GetTenant(), EventTimeMs: now.UnixMilli(), Source: TombstoneSource}
	}
	sp, err := schedule.Parse(s)
	if err != nil {
		p.log.Warn("stored schedule invalid", "err", err)
		return
	}
	from := s.GetMeta().GetEventTimeMs()
	if from == 0 {
		from = now.UnixMilli()
	}
	b, err := codec.Marshal(s)
	if err != nil {
		ctx.Fail(err)
	}
	since, ok := m.addVersion(s.GetVersion(), from, b, sp)
	if !ok {
		return // a repeated version
	}
	if t := s.GetMeta().GetTenant(); t != "" {
		st.Tenant = t
	}
	if s.GetWard() != "" {
		m.Ward = s.GetWard()
	}
	if s.GetDeviceId() != "" {
		m.Device = s.GetDeviceId()
	}
	var out []emit
	gone := m.regenerate(now.UnixMilli()-p.cfg.CorrectionHorizon.Milliseconds(), since)
	changedDays := map[string]bool{}
	for _, d := range gone {
		if d.Ver > 0 && d.Out != pb.Outcome_OUTCOME_UNSPECIFIED {
			d.Ver++
			out = append(out, p.outcome(st, ctx.Key(), s.GetMedicationId(), m, d, pb.Outcome_OUTCOME_UNSPECIFIED, nil, now))
			changedDays[d.Date] = true
		}
		if d.Ver > 0 {
			m.Gone = append(m.Gone, &DoseRec{At: d.At, Slot: d.Slot, Ver: d.Ver})
		}
		if d.Alert {
			out = append(out, p.missedAlert(st, ctx.Key(), s.GetMedicationId(), d, pb.AlertState_RESOLVED, now))
		}
	}
	out = append(out, p.reconcile(st, ctx.Key(), s.GetMedicationId(), m, now, changedDays)...)
	ctx.SetValue(st)
	p.flush(ctx, out)
}

// onIntake records an intake and re-runs the matching.
func (p *Processor) onIntake(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if raw == nil {
		p.deadLetter(ctx, nil, "empty", errors.New("intake record has no value"))
		return
	}
	var in pb.MedicationIntake
	if err := proto.Unmarshal(raw, &in); err != nil {
		p.deadLetter(ctx, raw, "undecodable", fmt.Errorf("decoding intake: %w", err))
		return
	}
	switch {
	case in.GetPatientId() == "" || in.GetMedicationId() == "":
		p.deadLetter(ctx, raw, "missing_field", errors.New("intake lacks patientId or medicationId"))
		return
	case in.GetMeta().GetEventId() == "":
		p.deadLetter(ctx, raw, "missing_field", errors.New("intake lacks meta.eventId"))
		return
	case in.GetIntakeTimeMs() <= 0:
		p.deadLetter(ctx, raw, "missing_field", errors.New("intake lacks intakeTimeMs"))
		return
	case in.GetPatientId() != ctx.Key():
		p.deadLetter(ctx, raw, "bad_key", fmt.Errorf("intake of patient %q arrived under key %q (intakes are keyed by patient)", in.GetPatientId(), ctx.Key()))
		return
	}
	now := p.now()
	st := p.state(ctx)
	if t := in.GetMeta().GetTenant(); t != "" {
		st.Tenant = t
	}
	m := st.med(in.GetMedicationId())
	for _, it := range m.Intakes {
		if it.ID != in.GetMeta().GetEventId() {
			continue
		}
		// A duplicate delivery changes nothing, except that the correlation
		// group re-emits an intake with the same event id once a camera has
		// verified it (or not): the verification must reach the outcome.
		if v := in.GetVerification(); v != "" && v != it.Verif {
			it.Verif = v
			out := p.reverify(st, ctx.Key(), in.GetMedicationId(), m, it, p.now())
			ctx.SetValue(st)
			p.flush(ctx, out)
		}
		return
	}
	// The latest dose an intake can match is due its early window after it
	// (the widest of the versions); without a schedule yet, any within the
	// default late window may still come.
	reach := defaultLateMs
	if hs := m.versions(); len(hs) > 0 {
		reach = 0
		for _, h := range hs {
			reach = max(reach, h.spec.Early.Milliseconds())
		}
	}
	if in.GetIntakeTimeMs()+reach < now.UnixMilli()-p.cfg.CorrectionHorizon.Milliseconds() {
		p.deadLetter(ctx, raw, "beyond_correction_horizon",
			fmt.Errorf("intake at %s is older than the correction horizon %s", time.UnixMilli(in.GetIntakeTimeMs()).UTC().Format(time.RFC3339), p.cfg.CorrectionHorizon))
		return
	}
	it := &Intake{ID: in.GetMeta().GetEventId(), T: in.GetIntakeTimeMs(), Taken: schedule.IsTakenStatus(in.GetStatus()),
		Dev: in.GetDeviceId(), Ward: in.GetWard(), Verif: in.GetVerification()}
	i := sort.Search(len(m.Intakes), func(i int) bool { return intakeLess(it, m.Intakes[i]) })
	m.Intakes = append(m.Intakes, nil)
	copy(m.Intakes[i+1:], m.Intakes[i:])
	m.Intakes[i] = it
	if p.onlyPruned(m, it, now) {
		// Nothing is stored: the state read from the table is dropped.
		p.deadLetter(ctx, raw, "beyond_correction_horizon",
			fmt.Errorf("intake at %s matches no dose but one older than the correction horizon %s", time.UnixMilli(in.GetIntakeTimeMs()).UTC().Format(time.RFC3339), p.cfg.CorrectionHorizon))
		return
	}
	if it.Ward != "" && m.Ward == "" {
		m.Ward = it.Ward
	}
	out := p.reconcile(st, ctx.Key(), in.GetMedicationId(), m, now, nil)
	ctx.SetValue(st)
	p.flush(ctx, out)
}

// onlyPruned reports whether the taken intake it, just added to m, could
// only match doses older than the correction horizon: it matches no dose
// kept in the state, but its window holds a dose due before the floor
// (pruned, or about to be, its outcome final). Such an intake is no EXTRA
// intake (the reference would have it take that dose), and it cannot
// correct the dose any more. The check on arrival only looks at the
// intake's time against the floor; this one covers the intakes whose time
// is within the horizon but whose dose is not.
func (p *Processor) onlyPruned(m *MedState, it *Intake, now time.Time) bool {
	floor := max(m.Pruned, now.UnixMilli()-p.cfg.CorrectionHorizon.Milliseconds())
	hs := m.versions()
	if !it.Taken || len(hs) == 0 {
		return false
	}
	var late int64
	for _, h := range hs {
		late = max(late, h.spec.Late.Milliseconds())
	}
	if it.T-late >= floor {
		return false
	}
	// The doses the matching sees, as reconcile materializes them.
	if sp, err := m.specOf(); err == nil && sp != nil {
		m.materialize(max(now.UnixMilli(), it.T) + sp.Early.Milliseconds() + 1)
	}
	if _, _, extra := m.match(); !extra[it] {
		return false
	}
	for _, d := range m.instances(it.T-late, floor) {
		if sp := m.specAt(d.At); sp != nil {
			if _, ok := sp.Classify(d.At, it.T); ok {
				return true
			}
		}
	}
	return false
}

// reverify re-emits, with a higher version, the outcome that intake it
// decided (a matched dose, or its EXTRA outcome) now that its verification
// changed. Nothing else about the outcome changes.
func (p *Processor) reverify(st *State, patient, medID string, m *MedState, it *Intake, now time.Time) []emit {
	var out []emit
	for _, d := range m.Doses {
		if d.IntakeID == it.ID && d.Out != pb.Outcome_OUTCOME_UNSPECIFIED {
			d.Ver++
			out = append(out, p.outcome(st, patient, medID, m, d, d.Out, it, now))
		}
	}
	if it.Extra {
		it.ExtraVer++
		id := schedule.ExtraID(patient, medID, it.ID)
		out = append(out, emit{p.cfg.Topics.DoseOutcomes, patient, &pb.DoseOutcome{
			Meta:   p.meta(st, id+"@"+strconv.FormatInt(it.ExtraVer, 10), it.T, now),
			DoseId: id, PatientId: patient, MedicationId: medID, ScheduledTimeMs: it.T, Outcome: pb.Outcome_EXTRA, IntakeEventId: it.ID, IntakeTimeMs: it.T,
			Version: it.ExtraVer, DeviceId: it.Dev, Ward: it.Ward, Verification: it.Verif, LocalDate: it.XDate,
		}})
	}
	return out
}

// onClock is the clock visitor: meta is now in Unix ms.
func (p *Processor) onClock(ctx goka.Context, meta any) {
	v := ctx.Value()
	if v == nil {
		return
	}
	st := v.(*State)
	nowMs, ok := meta.(int64)
	if !ok {
		nowMs = p.now().UnixMilli()
	}
	now := time.UnixMilli(nowMs)
	meds := make([]string, 0, len(st.Meds))
	for id := range st.Meds {
		meds = append(meds, id)
	}
	sort.Strings(meds)
	var out []emit
	changed := false
	for _, id := range meds {
		m := st.Meds[id]
		if !p.due(m, nowMs) {
			continue
		}
		changed = true
		out = append(out, p.reconcile(st, ctx.Key(), id, m, now, nil)...)
	}
	if changed {
		ctx.SetValue(st)
		p.flush(ctx, out)
	}
}

// due reports whether a clock visit at nowMs has anything to do for m: a
// dose whose grace passed without an outcome, doses to materialize, or
// state to prune. It is cheap, so idle keys are not rewritten.
func (p *Processor) due(m *MedState, nowMs int64) bool {
	sp, err := m.specOf()
	if err != nil {
		return false
	}
	// Doses to materialize: the latest version may be a deletion written
	// ahead (a therapy's announced end), with an earlier version defining
	// the doses until its time.
	if sp != nil && nowMs+sp.Early.Milliseconds() >= m.Through && m.dosesFrom(m.Through) {
		return true
	}
	minGrace := int64(schedule.DefaultGraceMinutes) * 60_000
	for i, h := range m.versions() {
		if g := h.spec.Grace.Milliseconds(); i == 0 || g < minGrace {
			minGrace = g
		}
	}
	for _, d := range m.Doses {
		if d.Out == pb.Outcome_OUTCOME_UNSPECIFIED && nowMs > d.At+minGrace && nowMs > d.At+m.graceAt(d.At) {
			return true
		}
	}
	if sp == nil {
		for _, it := range m.Intakes {
			if it.Taken && !it.Extra && !it.Used && nowMs >= it.T+defaultLateMs {
				return true
			}
		}
	}
	floor := nowMs - p.cfg.CorrectionHorizon.Milliseconds()
	if len(m.Doses) > 0 && m.Doses[0].At < floor {
		return true
	}
	return len(m.Intakes) > 0 && m.Intakes[0].T < floor-24*3600_000
}

// reconcile brings one medication up to date at now: materializes doses,
// re-runs the matching, emits every changed outcome (with a higher
// version), alert requests and the affected adherence windows, and prunes
// state older than the correction horizon.
func (p *Processor) reconcile(st *State, patient, medID string, m *MedState, now time.Time, changedDays map[string]bool) []emit {
	if changedDays == nil {
		changedDays = map[string]bool{}
	}
	nowMs := now.UnixMilli()
	sp, err := m.specOf()
	if err != nil {
		p.log.Warn("stored schedule unreadable", "err", err)
		sp = nil
	}
	if sp != nil {
		upto := nowMs
		for _, it := range m.Intakes {
			if it.T > upto {
				upto = it.T
			}
		}
		m.materialize(upto + sp.Early.Milliseconds() + 1)
	}
	var out []emit
	byDose, outs, extra := m.match()
	for i, d := range m.Doses {
		want := outs[i]
		var it *Intake
		if byDose[i] != nil {
			it = byDose[i]
		} else if nowMs > d.At+m.graceAt(d.At) { // at +grace exactly an intake is still on time
			want = pb.Outcome_MISSED
		}
		wantID := ""
		if it != nil {
			wantID = it.ID
		}
		if want == d.Out && wantID == d.IntakeID {
			continue
		}
		if d.Ver == 0 && want == pb.Outcome_OUTCOME_UNSPECIFIED {
			continue
		}
		d.Ver++
		d.Out, d.IntakeID = want, wantID
		out = append(out, p.outcome(st, patient, medID, m, d, want, it, now))
		changedDays[d.Date] = true
		if want == pb.Outcome_MISSED && !d.Alert {
			d.Alert = true
			out = append(out, p.missedAlert(st, patient, medID, d, pb.AlertState_OPEN, now))
		} else if want != pb.Outcome_MISSED && d.Alert {
			d.Alert = false
			out = append(out, p.missedAlert(st, patient, medID, d, pb.AlertState_RESOLVED, now))
		}
	}
	for _, it := range m.Intakes {
		if !it.Taken || it.Used {
			continue
		}
		x := extra[it]
		if x && sp == nil && !it.Extra && nowMs < it.T+defaultLateMs {
			// No schedule for the medication yet (it may still be on its
			// way through the loopback): the intake becomes EXTRA only once
			// no dose could have held it, not on arrival.
			x = false
		}
		if !x && !it.Extra {
			continue // neither EXTRA nor retracting one: nothing to emit
		}
		date := schedule.ExtraDate(sp, it.T)
		if x != it.Extra || (x && date != it.XDate) {
			it.Extra, it.XDate = x, date
			it.ExtraVer++
			o := pb.Outcome_OUTCOME_UNSPECIFIED
			if x {
				o = pb.Outcome_EXTRA
			}
			id := schedule.ExtraID(patient, medID, it.ID)
			p.outcomes.WithLabelValues(o.String()).Inc()
			// An EXTRA intake has no scheduled dose: its scheduled time and
			// local date are the intake's own (downstream partitions by them).
			out = append(out, emit{p.cfg.Topics.DoseOutcomes, patient, &pb.DoseOutcome{
				Meta:   p.meta(st, id+"@"+strconv.FormatInt(it.ExtraVer, 10), it.T, now),
				DoseId: id, PatientId: patient, MedicationId: medID, ScheduledTimeMs: it.T, Outcome: o, IntakeEventId: it.ID, IntakeTimeMs: it.T,
				Version: it.ExtraVer, DeviceId: it.Dev, Ward: it.Ward, Verification: it.Verif, LocalDate: date,
			}})
		}
	}
	out = append(out, p.windowsFor(st, patient, medID, m, changedDays, now)...)
	p.prune(m, nowMs)
	return out
}

func (p *Processor) meta(st *State, id string, eventMs int64, now time.Time) *pb.Meta {
	t := st.Tenant
	if t == "" {
		t = p.cfg.Tenant
	}
	return &pb.Meta{Tenant: t, EventId: id, EventTimeMs: eventMs, IngestTimeMs: now.UnixMilli(), Source: Source}
}

func (p *Processor) outcome(st *State, patient, medID string, m *MedState, d *DoseRec, o pb.Outcome, it *Intake, now time.Time) emit {
	id := schedule.DoseID(patient, medID, d.At, d.Slot)
	rec := &pb.DoseOutcome{
		DoseId: id, PatientId: patient, MedicationId: medID, ScheduledTimeMs: d.At, Outcome: o,
		Version: d.Ver, DeviceId: m.Device, Ward: m.Ward, LocalDate: d.Date,
	}
	ev := d.At
	if sp := m.specAt(d.At); sp != nil {
		ev = d.At + sp.Grace.Milliseconds()
	}
	if it != nil {
		ev = it.T
		rec.IntakeEventId, rec.IntakeTimeMs = it.ID, it.T
		rec.DelayMinutes = float64(it.T-d.At) / 60_000
		rec.Verification = it.Verif
		if it.Dev != "" {
			rec.DeviceId = it.Dev
		}
		if it.Ward != "" {
			rec.Ward = it.Ward
		}
	}
	rec.Meta = p.meta(st, id+"@"+strconv.FormatInt(d.Ver, 10), ev, now)
	p.outcomes.WithLabelValues(o.String()).Inc()
	return emit{p.cfg.Topics.DoseOutcomes, patient, rec}
}

func (p *Processor) missedAlert(st *State, patient, medID string, d *DoseRec, state pb.AlertState, now time.Time) emit {
	window := medID + "|" + strconv.FormatInt(d.At, 10) + "|" + strconv.Itoa(d.Slot)
	a := alerts.Request(p.tenant(st), pb.AlertType_MISSED_DOSE, pb.Priority_HIGH, state, alerts.SubjectPatient, patient, window, time.UnixMilli(d.At), now)
	a.MedicationId = medID
	// Each request goes with a new outcome version of its dose.
	a.RequestVersion = d.Ver
	a.Message = "missed dose of " + medID + " scheduled at " + time.UnixMilli(d.At).UTC().Format(time.RFC3339)
	p.alertReqs.WithLabelValues(a.AlertType.String(), state.String()).Inc()
	return emit{p.cfg.Topics.AlertRequests, a.AlertId, a}
}

func (p *Processor) tenant(st *State) string {
	if st.Tenant != "" {
		return st.Tenant
	}
	return p.cfg.Tenant
}

// dayCounts returns due/taken per local date: pruned days plus the doses
// that have an outcome.
func (m *MedState) dayCounts() map[string][2]int {
	days := make(map[string][2]int, len(m.Days)+8)
	for k, v := range m.Days {
		days[k] = v
	}
	for _, d := range m.Doses {
		if d.Out != pb.Outcome_MISSED && !schedule.Taken(d.Out) {
			continue
		}
		c := days[d.Date]
		c[0]++
		if schedule.Taken(d.Out) {
			c[1]++
		}
		days[d.Date] = c
	}
	return days
}

// windowsFor emits the adherence windows of every changed day and of every
// later day with due doses (their rolling windows include the change), and
// raises or resolves LOW_ADHERENCE on the latest day's 7-day ratio.
func (p *Processor) windowsFor(st *State, patient, medID string, m *MedState, changed map[string]bool, now time.Time) []emit {
	if len(changed) == 0 {
		return nil
	}
	minDay := ""
	for d := range changed {
		if minDay == "" || d < minDay {
			minDay = d
		}
	}
	days := m.dayCounts()
	var list []string
	latest := "" // the latest day with due doses: LOW_ADHERENCE follows it
	for d, c := range days {
		if c[0] > 0 {
			if d >= minDay {
				list = append(list, d)
			}
			latest = max(latest, d)
		}
	}
	// A changed day left without due doses (a schedule version retracted
	// them) gets a window too, with nothing due: it supersedes the day's
	// earlier window downstream, where the highest version is kept.
	for d := range changed {
		if days[d][0] == 0 {
			list = append(list, d)
		}
	}
	sort.Strings(list)
	var out []emit
	for _, ds := range list {
		w := Window(days, ds)
		m.AdhVer++
		rec := &pb.AdherenceWindow{
			Meta:      p.meta(st, patient+"|"+medID+"|"+ds+"@"+strconv.FormatInt(m.AdhVer, 10), now.UnixMilli(), now),
			PatientId: patient, MedicationId: medID, Day: ds,
			DailyDue: int32(w.DailyDue), DailyTaken: int32(w.DailyTaken), DailyRatio: w.DailyRatio,
			Due_7D: int32(w.Due7d), Taken_7D: int32(w.Taken7d), Ratio_7D: w.Ratio7d,
			Due_30D: int32(w.Due30d), Taken_30D: int32(w.Taken30d), Ratio_30D: w.Ratio30d, Pdc_30D: w.PDC30d,
			Version: m.AdhVer, Ward: m.Ward,
		}
		p.windows.Inc()
		out = append(out, emit{p.cfg.Topics.Adherence, patient, rec})
	}
	// LOW_ADHERENCE on the 7-day ratio of the latest day with due doses;
	// with none left (every dose retracted), an open alert resolves. Each
	// request takes a new adherence version (its request version).
	var w reference.Window
	if latest != "" {
		w = Window(days, latest)
	}
	low := w.Due7d > 0 && w.Ratio7d < p.cfg.LowThreshold
	switch {
	case low && !m.Low:
		m.AdhVer++
		m.Low, m.LowAlert = true, medID+"|"+latest
		out = append(out, p.lowAlert(st, patient, medID, m.LowAlert, m.AdhVer, pb.AlertState_OPEN, w, now))
	case !low && m.Low:
		m.AdhVer++
		out = append(out, p.lowAlert(st, patient, medID, m.LowAlert, m.AdhVer, pb.AlertState_RESOLVED, w, now))
		m.Low, m.LowAlert = false, ""
	}
	return out
}

func (p *Processor) lowAlert(st *State, patient, medID, window string, version int64, state pb.AlertState, w reference.Window, now time.Time) emit {
	a := alerts.Request(p.tenant(st), pb.AlertType_LOW_ADHERENCE, pb.Priority_MEDIUM, state, alerts.SubjectPatient, patient, window, now, now)
	a.MedicationId = medID
	// Each request goes with a new adherence version of the medication.
	a.RequestVersion = version
	a.Message = fmt.Sprintf("7-day adherence of %s is %d/%d (%.3f), below %.2f", medID, w.Taken7d, w.Due7d, w.Ratio7d, p.cfg.LowThreshold)
	p.alertReqs.WithLabelValues(a.AlertType.String(), state.String()).Inc()
	return emit{p.cfg.Topics.AlertRequests, a.AlertId, a}
}

// Window computes the adherence window of day ds from per-day due/taken
// counts, exactly as the reference does.
func Window(days map[string][2]int, ds string) reference.Window {
	D, _ := time.Parse(schedule.DateLayout, ds)
	// Local dates "YYYY-MM-DD" order like the days they name, so the
	// windows are ranges of keys.
	from7 := D.AddDate(0, 0, -6).Format(schedule.DateLayout)
	from30 := D.AddDate(0, 0, -29).Format(schedule.DateLayout)
	w := reference.Window{Day: ds}
	c := days[ds]
	w.DailyDue, w.DailyTaken = c[0], c[1]
	full, withDue := 0, 0
	for day, c := range days {
		if day > ds || day < from30 {
			continue
		}
		if day >= from7 {
			w.Due7d += c[0]
			w.Taken7d += c[1]
		}
		w.Due30d += c[0]
		w.Taken30d += c[1]
		if c[0] > 0 {
			withDue++
			if c[1] == c[0] {
				full++
			}
		}
	}
	w.DailyRatio = reference.Ratio(w.DailyTaken, w.DailyDue)
	w.Ratio7d = reference.Ratio(w.Taken7d, w.Due7d)
	w.Ratio30d = reference.Ratio(w.Taken30d, w.Due30d)
	w.PDC30d = reference.Ratio(full, withDue)
	return w
}

// prune folds doses older than the correction horizon into per-day counts
// and drops intakes that can no longer match a kept dose.
func (p *Processor) prune(m *MedState, nowMs int64) {
	floor := nowMs - p.cfg.CorrectionHorizon.Milliseconds()
	k := 0
	pruned := map[string]bool{}
	for _, d := range m.Doses {
		if d.At < floor && d.Out != pb.Outcome_OUTCOME_UNSPECIFIED {
			m.Pruned = max(m.Pruned, floor)
			if m.Days == nil {
				m.Days = map[string][2]int{}
			}
			c := m.Days[d.Date]
			c[0]++
			if schedule.Taken(d.Out) {
				c[1]++
			}
			m.Days[d.Date] = c
			if d.IntakeID != "" {
				pruned[d.IntakeID] = true
			}
			continue
		}
		m.Doses[k] = d
		k++
	}
	m.Doses = m.Doses[:k]
	k = 0
	for _, it := range m.Intakes {
		if pruned[it.ID] {
			it.Used = true
		}
		if it.T < floor-24*3600_000 {
			continue
		}
		m.Intakes[k] = it
		k++
	}
	m.Intakes = m.Intakes[:k]
	// Versions are kept two days longer than doses: undecided doses and
	// late windows reach a little before the floor.
	m.pruneVersions(floor - 48*3600_000)
	k = 0
	for _, g := range m.Gone {
		if g.At >= floor-48*3600_000 {
			m.Gone[k] = g
			k++
		}
	}
	m.Gone = m.Gone[:k]
	oldest := time.UnixMilli(floor).UTC().AddDate(0, 0, -32).Format(schedule.DateLayout)
	for d := range m.Days {
		if d < oldest {
			delete(m.Days, d)
		}
	}
}
