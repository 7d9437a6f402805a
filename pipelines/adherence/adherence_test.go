package adherence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/pipelines/adherence"
	"github.com/wardstream/wardstream/pipelines/internal/gokalog"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

type harness struct {
	t     *testing.T
	tt    *tester.Tester
	proc  *goka.Processor
	cfg   adherence.Config
	mu    sync.Mutex
	now   time.Time
	outQ  *tester.QueueTracker
	adhQ  *tester.QueueTracker
	alQ   *tester.QueueTracker
	dlqQ  *tester.QueueTracker
	outs  []*pb.DoseOutcome
	wins  []*pb.AdherenceWindow
	alert []*pb.Alert
	dlq   []*pb.DeadLetter
}

func newHarness(t *testing.T, start time.Time) *harness {
	t.Helper()
	h := &harness{t: t, now: start}
	h.cfg = adherence.DefaultConfig()
	h.cfg.CorrectionHorizon = 40 * 24 * time.Hour
	p, err := adherence.New(h.cfg, adherence.WithClock(h.clock), adherence.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	h.tt = tester.New(t)
	// Nil values reach the callbacks, as pipelines/processors runs the group.
	h.proc, err = goka.NewProcessor(nil, p.Graph(), goka.WithTester(h.tt), goka.WithLogger(gokalog.New(nil)), goka.WithNilHandling(goka.NilProcess))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.proc.Run(ctx) }()
	// A visit (the clock) before every partition table runs fails with
	// "error creating storage iterator": wait for the processor first.
	if err := h.proc.WaitForReady(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	h.outQ = h.tt.NewQueueTracker(h.cfg.Topics.DoseOutcomes)
	h.adhQ = h.tt.NewQueueTracker(h.cfg.Topics.Adherence)
	h.alQ = h.tt.NewQueueTracker(h.cfg.Topics.AlertRequests)
	h.dlqQ = h.tt.NewQueueTracker(h.cfg.Topics.DeadLetters)
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) setNow(t time.Time) {
	h.mu.Lock()
	h.now = t
	h.mu.Unlock()
}

func (h *harness) schedule(s *pb.DoseSchedule) {
	b, err := codec.Marshal(s)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(h.cfg.Topics.Schedules, s.GetPatientId()+"|"+s.GetMedicationId(), b)
	h.collect()
}

func (h *harness) intake(in *pb.MedicationIntake) {
	b, err := codec.Marshal(in)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(h.cfg.Topics.Intake, in.GetPatientId(), b)
	h.collect()
}

// tick moves processing time to at and runs the clock visitor.
func (h *harness) tick(at time.Time) {
	h.setNow(at)
	if err := h.proc.VisitAll(context.Background(), adherence.VisitClock, at.UnixMilli()); err != nil {
		h.t.Fatal(err)
	}
	h.tt.Catchup()
	h.collect()
}

func (h *harness) collect() {
	for {
		_, v, ok := h.outQ.Next()
		if !ok {
			break
		}
		h.outs = append(h.outs, v.(*pb.DoseOutcome))
	}
	for {
		_, v, ok := h.adhQ.Next()
		if !ok {
			break
		}
		h.wins = append(h.wins, v.(*pb.AdherenceWindow))
	}
	for {
		_, v, ok := h.alQ.Next()
		if !ok {
			break
		}
		h.alert = append(h.alert, v.(*pb.Alert))
	}
	for {
		_, v, ok := h.dlqQ.Next()
		if !ok {
			break
		}
		h.dlq = append(h.dlq, v.(*pb.DeadLetter))
	}
}

// final returns the highest-version outcome per dose id, checking that
// versions only grow and that a repeated version repeats the same outcome.
func (h *harness) final() map[string]*pb.DoseOutcome {
	h.t.Helper()
	m := map[string]*pb.DoseOutcome{}
	for _, o := range h.outs {
		cur := m[o.DoseId]
		if cur != nil && o.Version <= cur.Version {
			h.t.Fatalf("dose %s: version %d after %d (versions must grow)", o.DoseId, o.Version, cur.Version)
		}
		if o.Meta.GetEventId() != fmt.Sprintf("%s@%d", o.DoseId, o.Version) {
			h.t.Fatalf("event id %q is not dose@version", o.Meta.GetEventId())
		}
		m[o.DoseId] = o
	}
	for k, o := range m {
		if o.Outcome == pb.Outcome_OUTCOME_UNSPECIFIED {
			delete(m, k)
		}
	}
	return m
}

func (h *harness) finalWindows() map[string]*pb.AdherenceWindow {
	m := map[string]*pb.AdherenceWindow{}
	for _, w := range h.wins {
		k := w.PatientId + "|" + w.MedicationId + "|" + w.Day
		if cur := m[k]; cur == nil || w.Version > cur.Version {
			m[k] = w
		}
	}
	return m
}

// openAlerts replays alert requests: id -> open.
func (h *harness) openAlerts(t pb.AlertType) map[string]bool {
	m := map[string]bool{}
	for _, a := range h.alert {
		if a.AlertType != t {
			continue
		}
		m[a.AlertId] = a.State == pb.AlertState_OPEN
	}
	for k, v := range m {
		if !v {
			delete(m, k)
		}
	}
	return m
}

var berlin, _ = time.LoadLocation("Europe/Berlin")

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
	if err != nil {
		panic(err)
	}
	return t
}

func schedFor(patient, med string, times ...string) *pb.DoseSchedule {
	return &pb.DoseSchedule{Meta: &pb.Meta{Tenant: "t1", EventId: "s-" + patient + med, EventTimeMs: at("2024-07-01 00:00").UnixMilli()},
		PatientId: patient, MedicationId: med, Timezone: "Europe/Berlin", Times: times, StartDate: "2024-07-01", EndDate: "2024-07-03", Version: 1}
}

func intake(id, patient, med string, t time.Time, status string) *pb.MedicationIntake {
	return &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: t.UnixMilli()}, DeviceId: "pc-" + patient,
		PatientId: patient, MedicationId: med, IntakeTimeMs: t.UnixMilli(), Status: status}
}

func doseID(patient, med, local string) string {
	return fmt.Sprintf("%s|%s|%d|0", patient, med, at(local).UnixMilli())
}

func TestOutcomesTable(t *testing.T) {
	type step struct {
		intake *pb.MedicationIntake
		tick   string // local processing time
	}
	cases := []struct {
		name  string
		steps []step
		want  map[string]pb.Outcome // local dose time -> final outcome (dose 2024-07-01 08:00 unless named)
		extra int
	}{
		{"on time", []step{{intake: intake("i1", "p", "m", at("2024-07-01 08:10"), "taken")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_ON_TIME}, 0},
		{"grace boundary on time", []step{{intake: intake("i1", "p", "m", at("2024-07-01 08:15"), "taken")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_ON_TIME}, 0},
		{"early", []step{{intake: intake("i1", "p", "m", at("2024-07-01 07:00"), "taken")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_EARLY}, 0},
		{"too early is extra", []step{{intake: intake("i1", "p", "m", at("2024-07-01 06:59"), "taken")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_MISSED}, 1},
		{"late", []step{{intake: intake("i1", "p", "m", at("2024-07-01 12:00"), "taken")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_LATE}, 0},
		{"too late is extra", []step{{intake: intake("i1", "p", "m", at("2024-07-01 12:01"), "taken")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_MISSED}, 1},
		{"skipped takes nothing", []step{{intake: intake("i1", "p", "m", at("2024-07-01 08:00"), "skipped")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_MISSED}, 0},
		{"refused takes nothing", []step{{intake: intake("i1", "p", "m", at("2024-07-01 08:00"), "refused")}}, map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_MISSED}, 0},
		{"missed then corrected late", []step{{tick: "2024-07-01 08:16"}, {intake: intake("i1", "p", "m", at("2024-07-01 09:00"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_LATE}, 0},
		{"missed then offline flush says on time", []step{{tick: "2024-07-01 20:00"}, {intake: intake("i1", "p", "m", at("2024-07-01 08:05"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_ON_TIME}, 0},
		{"duplicate counts once", []step{{intake: intake("i1", "p", "m", at("2024-07-01 08:00"), "taken")}, {intake: intake("i1", "p", "m", at("2024-07-01 08:00"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_ON_TIME}, 0},
		{"second intake is extra", []step{{intake: intake("i1", "p", "m", at("2024-07-01 08:00"), "taken")}, {intake: intake("i2", "p", "m", at("2024-07-01 08:01"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_ON_TIME}, 1},
		// Doses at 08:00 and 10:00 (see below): an intake at 09:30 is in
		// both windows (late for 08:00, early for 10:00) and takes the
		// nearest, 10:00.
		{"nearest unmatched", []step{{intake: intake("i1", "p", "m", at("2024-07-01 09:30"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_MISSED, "2024-07-01 10:00": pb.Outcome_TAKEN_EARLY}, 0},
		// The earlier intake (event time) goes first and takes 10:00; the
		// one at 09:40 then takes the nearest unmatched: 08:00, late.
		{"nearest unmatched, second intake", []step{{intake: intake("i2", "p", "m", at("2024-07-01 09:40"), "taken")}, {intake: intake("i1", "p", "m", at("2024-07-01 09:30"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_LATE, "2024-07-01 10:00": pb.Outcome_TAKEN_EARLY}, 0},
		{"tie goes to the earlier dose", []step{{intake: intake("i1", "p", "m", at("2024-07-01 09:00"), "taken")}},
			map[string]pb.Outcome{"2024-07-01 08:00": pb.Outcome_TAKEN_LATE, "2024-07-01 10:00": pb.Outcome_MISSED}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, at("2024-07-01 06:00"))
			s := schedFor("p", "m", "08:00")
			s.EndDate = "2024-07-01"
			for k := range c.want {
				if k == "2024-07-01 10:00" {
					s.Times = []string{"08:00", "10:00"}
				}
			}
			h.schedule(s)
			for _, st := range c.steps {
				if st.tick != "" {
					h.tick(at(st.tick))
				}
				if st.intake != nil {
					h.intake(st.intake)
				}
			}
			h.tick(at("2024-07-02 06:00"))
			fin := h.final()
			for local, want := range c.want {
				o := fin[doseID("p", "m", local)]
				if o == nil || o.Outcome != want {
					t.Fatalf("dose %s: got %v, want %s (all: %v)", local, o, want, fin)
				}
			}
			extras := 0
			for _, o := range fin {
				if o.Outcome == pb.Outcome_EXTRA {
					extras++
				}
			}
			if extras != c.extra {
				t.Fatalf("%d EXTRA outcomes, want %d", extras, c.extra)
			}
		})
	}
}

func TestMissedWithin60sAndAlertResolved(t *testing.T) {
	h := newHarness(t, at("2024-07-01 06:00"))
	s := schedFor("p", "m", "08:00")
	h.schedule(s)
	h.tick(at("2024-07-01 08:14"))
	if len(h.outs) != 0 {
		t.Fatalf("outcome before grace ended: %v", h.outs)
	}
	// At scheduled+grace exactly an intake is still on time: nothing yet.
	h.tick(at("2024-07-01 08:15"))
	if len(h.outs) != 0 {
		t.Fatalf("outcome at scheduled+grace, while an intake would still be on time: %v", h.outs)
	}
	// The next tick (15 s later by default) declares it.
	h.tick(at("2024-07-01 08:15").Add(15 * time.Second))
	id := doseID("p", "m", "2024-07-01 08:00")
	fin := h.final()
	if fin[id].GetOutcome() != pb.Outcome_MISSED || fin[id].GetVersion() != 1 {
		t.Fatalf("want MISSED v1 within 60 s after scheduled+grace, got %v", fin[id])
	}
	if open := h.openAlerts(pb.AlertType_MISSED_DOSE); len(open) != 1 {
		t.Fatalf("want one open MISSED_DOSE alert, got %v", open)
	}
	for _, a := range h.alert {
		if a.AlertType == pb.AlertType_MISSED_DOSE && a.Priority != pb.Priority_HIGH {
			t.Fatalf("MISSED_DOSE priority %s, want HIGH", a.Priority)
		}
	}
	// Repeated ticks do not emit again.
	n := len(h.outs)
	h.tick(at("2024-07-01 08:16"))
	h.tick(at("2024-07-01 08:17"))
	if len(h.outs) != n {
		t.Fatalf("ticks re-emitted outcomes: %v", h.outs[n:])
	}
	// The device flushes its buffer hours later: corrected with a higher version.
	h.setNow(at("2024-07-01 13:00"))
	h.intake(intake("i1", "p", "m", at("2024-07-01 08:20"), "taken"))
	fin = h.final()
	if fin[id].GetOutcome() != pb.Outcome_TAKEN_LATE || fin[id].GetVersion() != 2 || fin[id].GetIntakeEventId() != "i1" {
		t.Fatalf("want TAKEN_LATE v2, got %v", fin[id])
	}
	if fin[id].GetDelayMinutes() != 20 {
		t.Fatalf("delay %v, want 20", fin[id].GetDelayMinutes())
	}
	if open := h.openAlerts(pb.AlertType_MISSED_DOSE); len(open) != 0 {
		t.Fatalf("alert not resolved: %v", open)
	}
}

func TestAdherenceWindowsAndLowAdherenceOncePerCrossing(t *testing.T) {
	h := newHarness(t, at("2024-07-01 00:00"))
	s := schedFor("p", "m", "08:00", "20:00")
	s.EndDate = "2024-07-20"
	h.schedule(s)
	// Days 1-5 fully taken; day 6 and 7 both missed; day 8 on: taken.
	n := 0
	for day := 1; day <= 12; day++ {
		for _, hm := range []string{"08:00", "20:00"} {
			local := fmt.Sprintf("2024-07-%02d %s", day, hm)
			if day != 6 && day != 7 {
				n++
				h.setNow(at(local))
				h.intake(intake(fmt.Sprintf("i%d", n), "p", "m", at(local), "taken"))
			}
			h.tick(at(local).Add(16 * time.Minute))
		}
	}
	h.tick(at("2024-07-13 00:00"))
	w := h.finalWindows()
	check := func(day string, dd, dt, d7, t7, d30, t30 int32, pdc float64) {
		t.Helper()
		got := w["p|m|"+day]
		if got == nil {
			t.Fatalf("no window for %s", day)
		}
		if got.DailyDue != dd || got.DailyTaken != dt || got.Due_7D != d7 || got.Taken_7D != t7 || got.Due_30D != d30 || got.Taken_30D != t30 || got.Pdc_30D != pdc {
			t.Fatalf("%s: got daily %d/%d 7d %d/%d 30d %d/%d pdc %v", day, got.DailyTaken, got.DailyDue, got.Taken_7D, got.Due_7D, got.Taken_30D, got.Due_30D, got.Pdc_30D)
		}
	}
	check("2024-07-05", 2, 2, 10, 10, 10, 10, 1)
	check("2024-07-06", 2, 0, 12, 10, 12, 10, 0.833333)
	check("2024-07-07", 2, 0, 14, 10, 14, 10, 0.714286) // 7d ratio 0.714 < 0.8
	check("2024-07-12", 2, 2, 14, 10, 24, 20, 0.833333)
	if w["p|m|2024-07-13"] != nil {
		t.Fatal("window emitted for a day with nothing due")
	}
	if got := w["p|m|2024-07-07"].Ratio_7D; got != 0.714286 {
		t.Fatalf("7d ratio %v", got)
	}
	var low []*pb.Alert
	for _, a := range h.alert {
		if a.AlertType == pb.AlertType_LOW_ADHERENCE {
			low = append(low, a)
		}
	}
	// Crossing below on day 7 (10/14 on day 7, 12 at day 6: 10/12 = 0.83 still above),
	// back above on day 14? 7d of day 12 = days 6..12 = 10/14: still low. So one open, no resolve.
	if len(low) != 1 || low[0].State != pb.AlertState_OPEN {
		t.Fatalf("want one LOW_ADHERENCE open, got %v", low)
	}
}

func TestExtraWithoutSchedule(t *testing.T) {
	h := newHarness(t, at("2024-07-02 00:40"))
	h.intake(intake("i1", "p", "m", at("2024-07-02 00:30"), "taken")) // 2024-07-01 22:30 UTC
	id := "p|m|extra|i1"
	if f := h.final()[id]; f != nil {
		t.Fatalf("EXTRA declared while the schedule may still be on its way: %v", f)
	}
	// The schedule arrives: no dose's window holds 00:30, so EXTRA, dated in
	// the patient's zone.
	s := schedFor("p", "m", "08:00")
	s.Meta.EventTimeMs = at("2024-07-01 00:00").UnixMilli()
	h.schedule(s)
	if f := h.final()[id]; f.GetOutcome() != pb.Outcome_EXTRA || f.GetLocalDate() != "2024-07-02" || f.GetVersion() != 1 ||
		f.GetScheduledTimeMs() != at("2024-07-02 00:30").UnixMilli() {
		t.Fatalf("EXTRA after the schedule: %v", f)
	}
	// A medication that never gets a schedule: EXTRA once the late window
	// of any dose that could have held it has passed, dated in UTC.
	h.intake(intake("i2", "p", "other", at("2024-07-02 00:30"), "taken"))
	h.tick(at("2024-07-02 04:29"))
	if f := h.final()["p|other|extra|i2"]; f != nil {
		t.Fatalf("EXTRA before the late window passed: %v", f)
	}
	h.tick(at("2024-07-02 04:31"))
	if f := h.final()["p|other|extra|i2"]; f.GetOutcome() != pb.Outcome_EXTRA || f.GetLocalDate() != "2024-07-01" {
		t.Fatalf("unscheduled intake: %v", f)
	}
}

// TestVerificationReachesOutcome: the correlation group re-emits an intake
// with the same event id and a verification; the outcome it decided is
// re-emitted with a higher version carrying the verification, and nothing
// else changes. A plain duplicate changes nothing.
func TestVerificationReachesOutcome(t *testing.T) {
	h := newHarness(t, at("2024-07-01 06:00"))
	h.schedule(schedFor("p", "m", "08:00"))
	h.setNow(at("2024-07-01 08:05"))
	in := intake("i1", "p", "m", at("2024-07-01 08:03"), "taken")
	h.intake(in)
	id := doseID("p", "m", "2024-07-01 08:00")
	fin := h.final()
	if fin[id].GetOutcome() != pb.Outcome_TAKEN_ON_TIME || fin[id].GetVerification() != "" {
		t.Fatalf("want unverified TAKEN_ON_TIME, got %v", fin[id])
	}
	v1 := fin[id].GetVersion()
	n := len(h.outs)
	h.intake(in) // plain duplicate
	if len(h.outs) != n {
		t.Fatalf("duplicate intake emitted %v", h.outs[n:])
	}
	verified := intake("i1", "p", "m", at("2024-07-01 08:03"), "taken")
	verified.Verification = "CAMERA_CONFIRMED"
	h.intake(verified)
	fin = h.final()
	if fin[id].GetOutcome() != pb.Outcome_TAKEN_ON_TIME || fin[id].GetVerification() != "CAMERA_CONFIRMED" || fin[id].GetVersion() != v1+1 {
		t.Fatalf("want verified TAKEN_ON_TIME v%d, got %v", v1+1, fin[id])
	}
	n = len(h.outs)
	h.intake(verified) // the verified copy again: nothing new
	if len(h.outs) != n {
		t.Fatalf("repeated verified intake emitted %v", h.outs[n:])
	}
}

// TestScheduleVersionsApplyFromTheirTime: a new version changes the doses
// from its event time on, not before; a deleted version retracts the doses
// it removes, and a version bringing one back continues its versions.
func TestScheduleVersionsApplyFromTheirTime(t *testing.T) {
	h := newHarness(t, at("2024-07-01 00:00"))
	v1 := schedFor("p", "m", "08:00", "20:00")
	h.schedule(v1)
	h.setNow(at("2024-07-01 08:05"))
	h.intake(intake("i1", "p", "m", at("2024-07-01 08:05"), "taken"))
	h.tick(at("2024-07-01 08:30"))
	// v2, written at 12:00: 09:00 and 21:00 from then on.
	v2 := schedFor("p", "m", "09:00", "21:00")
	v2.Version, v2.Meta = 2, &pb.Meta{Tenant: "t1", EventId: "s2", EventTimeMs: at("2024-07-01 12:00").UnixMilli()}
	h.setNow(at("2024-07-01 12:00"))
	h.schedule(v2)
	// v3 deletes the schedule from 2 July 07:00, arriving after that day's
	// 09:00 dose was missed; v4 (written 07:30, arriving later) restores it.
	h.tick(at("2024-07-02 09:30"))
	v3 := schedFor("p", "m", "09:00", "21:00")
	v3.Version, v3.Deleted, v3.Meta = 3, true, &pb.Meta{Tenant: "t1", EventId: "s3", EventTimeMs: at("2024-07-02 07:00").UnixMilli()}
	h.setNow(at("2024-07-02 09:40"))
	h.schedule(v3)
	v4 := schedFor("p", "m", "09:00", "21:00")
	v4.Version, v4.Meta = 4, &pb.Meta{Tenant: "t1", EventId: "s4", EventTimeMs: at("2024-07-02 07:30").UnixMilli()}
	h.setNow(at("2024-07-02 10:00"))
	h.schedule(v4)
	h.tick(at("2024-07-04 00:00"))

	got := h.final()
	for _, c := range []struct {
		local string
		want  pb.Outcome
	}{
		{"2024-07-01 08:00", pb.Outcome_TAKEN_ON_TIME}, // before v2: v1's dose, kept
		{"2024-07-01 21:00", pb.Outcome_MISSED},        // after v2
		{"2024-07-02 09:00", pb.Outcome_MISSED},        // retracted by v3, back with v4
		{"2024-07-02 21:00", pb.Outcome_MISSED},
	} {
		o := got[doseID("p", "m", c.local)]
		if o == nil || o.Outcome != c.want {
			t.Errorf("dose at %s: %v, want %s", c.local, o, c.want)
		}
	}
	for _, gone := range []string{"2024-07-01 20:00", "2024-07-01 09:00", "2024-07-02 08:00"} {
		if o := got[doseID("p", "m", gone)]; o != nil {
			t.Errorf("dose at %s exists: %v", gone, o)
		}
	}
	var versions []int64
	for _, o := range h.outs {
		if o.DoseId == doseID("p", "m", "2024-07-02 09:00") {
			versions = append(versions, o.Version)
		}
	}
	if fmt.Sprint(versions) != "[1 2 3]" {
		t.Errorf("versions of the retracted and restored dose: %v, want [1 2 3] (missed, retracted, missed again)", versions)
	}
}
