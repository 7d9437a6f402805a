package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Kind says what a simulated message is.
type Kind int

// Kinds of simulated messages.
const (
	// KindVitals is a vital-sign monitor reading (table vitals).
	KindVitals Kind = iota
	// KindPump is an infusion pump reading (table vitals, kind readings).
	KindPump
	// KindPumpFailure is a pump's PUMP_FAILURE alert (table vitals, kind alerts).
	KindPumpFailure
	// KindIntake is a pillcase's intake report (table intakes).
	KindIntake
	// KindSchedule is a dose schedule (table schedules).
	KindSchedule
	// KindMalformed is deliberately invalid input (table dead_letters).
	KindMalformed
)

// Device types used in MQTT topics and records.
const (
	TypeMonitor  = "vitals-monitor"
	TypePump     = "infusion-pump"
	TypePillcase = "pillcase"
)

// Reading is one logical simulated message: one row is expected for it in
// ClickHouse (or one dead letter for KindMalformed).
type Reading struct {
	Kind       Kind
	DeviceID   string
	DeviceType string
	PatientID  string
	// EventID is the message id the device sends ("messageId"); stable
	// across duplicate sends.
	EventID string
	// EventTime is the device's clock when the reading happened.
	EventTime time.Time
	// Probe marks readings whose visibility the harness times.
	Probe bool

	// Vitals / pump values.
	HeartRate, SystolicBP, DiastolicBP, SpO2, Temperature, RespiratoryRate float64
	MedicationDose, AdministrationRate, BatteryLevel                       float64
	Severity                                                               int32
	AlertType                                                              string

	// Intake fields.
	MedicationID string
	IntakeTime   time.Time
	Status       string

	// Schedule is set for KindSchedule.
	Schedule *pb.DoseSchedule

	// Malformed says how a KindMalformed message is broken.
	Malformed string
}

// Fleet is the simulated hospital of one run: every device, patient,
// schedule and planned intake, with the outcomes the pipeline must compute.
type Fleet struct {
	RunID    string
	Tenant   string
	Ward     string
	Start    time.Time
	SendEnd  time.Time
	Monitors []Device
	Pumps    []Device
	Patients []*Patient
	Loc      *time.Location
	sc       *Scenario
}

// Device is one telemetry device.
type Device struct {
	ID, PatientID, Type string
	// FailAt is when a failing pump reports PUMP_FAILURE (zero: never).
	FailAt time.Time
}

// Patient is one pillcase user.
type Patient struct {
	ID, DeviceID, Profile string
	Meds                  []*Medication
}

// Medication is one scheduled medication of a patient.
type Medication struct {
	ID       string
	Schedule *pb.DoseSchedule
	Doses    []*Dose
}

// Dose is one scheduled dose instance and what the simulated patient did.
type Dose struct {
	Scheduled time.Time
	// Intake is when the patient took it (zero: skipped).
	Intake time.Time
	// SendAt is when the device reports the intake (after an offline
	// period, hours after Intake).
	SendAt time.Time
	// Duplicate sends the report twice, byte-identical.
	Duplicate bool
	// Live is true for doses scheduled after the start (the harness times
	// their MISSED alerts).
	Live bool
	// Expected is the final outcome the pipeline must compute.
	Expected pb.Outcome
	// EventID is the intake's message id.
	EventID string
}

// PillEvent is a time-ordered pillcase message.
type PillEvent struct {
	At      time.Time
	Reading Reading
	Copies  int
}

// NewFleet builds the fleet of sc for a run starting at start whose
// sending phase ends at sendEnd. It is deterministic in sc.Seed, runID and
// the two times.
func NewFleet(sc *Scenario, runID, tenant string, start, sendEnd time.Time) (*Fleet, error) {
	loc, err := time.LoadLocation(sc.Pillcases.Timezone)
	if err != nil {
		return nil, fmt.Errorf("pillcases.timezone %q: %w", sc.Pillcases.Timezone, err)
	}
	f := &Fleet{RunID: runID, Tenant: tenant, Ward: "ward-1", Start: start, SendEnd: sendEnd, Loc: loc, sc: sc}
	rng := rand.New(rand.NewPCG(uint64(sc.Seed), 0x5eed))
	for i := range sc.Monitors.Count {
		f.Monitors = append(f.Monitors, Device{ID: fmt.Sprintf("%s-mon-%05d", runID, i), PatientID: fmt.Sprintf("%s-pat-m%05d", runID, i), Type: TypeMonitor})
	}
	nFail := int(math.Round(float64(sc.Pumps.Count) * sc.Pumps.FailureShare))
	for i := range sc.Pumps.Count {
		d := Device{ID: fmt.Sprintf("%s-pump-%05d", runID, i), PatientID: fmt.Sprintf("%s-pat-p%05d", runID, i), Type: TypePump}
		if i < nFail {
			// Failures happen in the first half of the sending phase.
			d.FailAt = start.Add(time.Duration(rng.Float64() * float64(sendEnd.Sub(start)) / 2))
		}
		f.Pumps = append(f.Pumps, d)
	}
	profiles := profileList(sc.Pillcases.Profiles, sc.Pillcases.Count)
	for i := range sc.Pillcases.Count {
		p := &Patient{ID: fmt.Sprintf("%s-pat-%05d", runID, i), DeviceID: fmt.Sprintf("%s-pill-%05d", runID, i), Profile: profiles[i]}
		for m := range sc.Pillcases.Medications {
			p.Meds = append(p.Meds, f.planMedication(p, m, rng))
		}
		f.Patients = append(f.Patients, p)
	}
	return f, nil
}

// profileList deals profiles to n patients in proportion to shares,
// deterministically (largest remainder).
func profileList(shares map[string]float64, n int) []string {
	var sum float64
	for _, v := range shares {
		sum += v
	}
	out := make([]string, 0, n)
	type rem struct {
		name string
		frac float64
	}
	var rems []rem
	for _, name := range knownProfiles {
		v := shares[name]
		if v <= 0 {
			continue
		}
		exact := float64(n) * v / sum
		k := int(exact)
		for range k {
			out = append(out, name)
		}
		rems = append(rems, rem{name, exact - float64(k)})
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].frac > rems[j].frac })
	for i := 0; len(out) < n && len(rems) > 0; i++ {
		out = append(out, rems[i%len(rems)].name)
	}
	// Interleave so that a prefix of the patients holds every profile.
	r := rand.New(rand.NewPCG(uint64(n), 7))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// planMedication builds one medication's schedule and dose plan. Doses lie
// on one local day (the start's) so the schedule's times never repeat on
// another date: history doses in [start-history, start), live doses from
// first_dose_after until the late window still fits before sendEnd. On a
// DST fall-back day no dose is planned in the repeated hour's second
// occurrence (dueAtWallTime): the schedule lists wall times, whose doses
// the pipeline puts at their first occurrence.
func (f *Fleet) planMedication(p *Patient, m int, rng *rand.Rand) *Medication {
	pc := f.sc.Pillcases
	grace := time.Duration(pc.GraceMinutes) * time.Minute
	early := time.Duration(pc.EarlyWindowMinutes) * time.Minute
	late := time.Duration(pc.LateWindowMinutes) * time.Minute
	every := pc.DoseEvery.D()
	startLocal := f.Start.In(f.Loc)
	midnight := time.Date(startLocal.Year(), startLocal.Month(), startLocal.Day(), 0, 0, 0, 0, f.Loc)
	nextMidnight := midnight.AddDate(0, 0, 1)

	// Medications of one patient are staggered by a minute each.
	stagger := time.Duration(m) * time.Minute
	var times []time.Time
	// Live doses.
	first := f.Start.Add(pc.FirstDoseAfter.D()).Truncate(time.Minute)
	if first.Before(f.Start.Add(pc.FirstDoseAfter.D())) {
		first = first.Add(time.Minute)
	}
	// A live dose is planned only if what the patient does about it fits
	// in the sending phase: a late intake needs the late window, the
	// others at most the grace period.
	need := grace + 10*time.Second
	if p.Profile == ProfileLate {
		need = late + 10*time.Second
	}
	for t := first.Add(stagger); !t.Add(need).After(f.SendEnd); t = t.Add(every) {
		if !t.Before(nextMidnight) {
			break
		}
		if !f.dueAtWallTime(t) {
			continue
		}
		times = append(times, t)
	}
	// History doses: an hour back for everyone (their intakes are reported
	// at the start), OfflineFor back for offline pillcases.
	history := time.Hour
	if p.Profile == ProfileOffline {
		history = pc.OfflineFor.D()
	}
	var hist []time.Time
	for t := first.Add(stagger).Add(-every); !t.Before(f.Start.Add(-history)); t = t.Add(-every) {
		// The late window of a history dose must have passed at the start
		// (its intake is reported then) and it must be on the start's day.
		if t.Before(midnight) {
			break
		}
		if t.Add(late).After(f.Start) || !f.dueAtWallTime(t) {
			continue
		}
		hist = append(hist, t)
	}
	for i, j := 0, len(hist)-1; i < j; i, j = i+1, j-1 {
		hist[i], hist[j] = hist[j], hist[i]
	}
	all := append(hist, times...)

	med := &Medication{ID: fmt.Sprintf("med-%02d", m)}
	for _, t := range all {
		d := &Dose{Scheduled: t, Live: !t.Before(f.Start)}
		d.EventID = fmt.Sprintf("%s-in-%s-%s-%d", f.RunID, p.ID[len(f.RunID)+1:], med.ID, t.Unix()/60)
		f.behave(p.Profile, d, grace, early, late, rng)
		med.Doses = append(med.Doses, d)
	}
	// The schedule takes effect from its event time (the processors
	// materialize no dose before it): it was set a minute before its first
	// dose, as a care team would have set it before the history began.
	effective := f.Start
	if len(all) > 0 && all[0].Add(-time.Minute).Before(effective) {
		effective = all[0].Add(-time.Minute)
	}
	hhmm := make([]string, 0, len(all))
	for _, t := range all {
		hhmm = append(hhmm, t.In(f.Loc).Format("15:04"))
	}
	med.Schedule = &pb.DoseSchedule{
		Meta:               &pb.Meta{Tenant: f.Tenant, EventId: fmt.Sprintf("%s-sched-%s-%s", f.RunID, p.ID[len(f.RunID)+1:], med.ID), EventTimeMs: effective.UnixMilli(), Source: "bench"},
		PatientId:          p.ID,
		MedicationId:       med.ID,
		DeviceId:           p.DeviceID,
		MedicationName:     fmt.Sprintf("Medication %d", m),
		Timezone:           f.Loc.String(),
		Times:              hhmm,
		StartDate:          startLocal.Format("2006-01-02"),
		EndDate:            startLocal.Format("2006-01-02"),
		DosesPerTime:       1,
		GraceMinutes:       int32(pc.GraceMinutes),
		LateWindowMinutes:  int32(pc.LateWindowMinutes),
		EarlyWindowMinutes: int32(pc.EarlyWindowMinutes),
		Version:            1,
		Ward:               f.Ward,
	}
	return med
}

// dueAtWallTime reports whether a schedule listing t's local wall time
// ("HH:MM", all the schedule can say) makes the pipeline's dose due at t
// itself (pipelines/schedule.LocalInstant): not so for the second
// occurrence of a wall time repeated by a DST fall-back, which the
// pipeline resolves to the first. The simulator plans no dose there, so
// its doses are exactly the pipeline's instances of the schedule it sends.
func (f *Fleet) dueAtWallTime(t time.Time) bool {
	l := t.In(f.Loc)
	return schedule.LocalInstant(l, l.Hour()*60+l.Minute(), f.Loc).Equal(t)
}

// behave decides what the patient does for dose d. Offsets keep >= 10 s
// away from every window boundary, so the expected outcome does not depend
// on inclusive/exclusive edges or on second-resolution timestamps.
func (f *Fleet) behave(profile string, d *Dose, grace, early, late time.Duration, rng *rand.Rand) {
	between := func(lo, hi time.Duration) time.Duration {
		lo, hi = lo+10*time.Second, hi-10*time.Second
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	take := func(off time.Duration, o pb.Outcome) {
		d.Intake = d.Scheduled.Add(off)
		d.Expected = o
	}
	switch profile {
	case ProfileForgetful:
		if rng.Float64() < f.sc.Pillcases.ForgetShare {
			d.Expected = pb.Outcome_MISSED
		} else {
			take(between(-grace, grace), pb.Outcome_TAKEN_ON_TIME)
		}
	case ProfileLate:
		// Mostly late, sometimes early: both windows get exercised.
		if rng.IntN(4) == 0 {
			take(-between(grace, early), pb.Outcome_TAKEN_EARLY)
		} else {
			take(between(grace, late), pb.Outcome_TAKEN_LATE)
		}
	default: // adherent, offline, duplicate
		take(between(-grace, grace), pb.Outcome_TAKEN_ON_TIME)
		d.Duplicate = profile == ProfileDuplicate
	}
	if d.Expected == pb.Outcome_MISSED {
		return
	}
	switch {
	case !d.Live && profile == ProfileOffline:
		// The buffer flushes 20-40 s after the start: after the
		// processors have seen the schedule and declared these doses
		// missed, so the correction path runs.
		d.SendAt = f.Start.Add(20*time.Second + time.Duration(rng.Int64N(int64(20*time.Second))))
	case !d.Live:
		d.SendAt = f.Start
	default:
		d.SendAt = d.Intake
	}
	if d.SendAt.Before(f.Start) {
		// An early intake of the first live dose happened before the run:
		// the device reports it at the start, after its schedule.
		d.SendAt = f.Start
	}
}

// PillEvents returns every pillcase message in send order: schedules at
// the start, then intakes when their devices report them.
func (f *Fleet) PillEvents() []PillEvent {
	var out []PillEvent
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			out = append(out, PillEvent{At: f.Start, Copies: 1, Reading: Reading{
				Kind: KindSchedule, DeviceID: p.DeviceID, DeviceType: TypePillcase, PatientID: p.ID,
				EventID: m.Schedule.GetMeta().GetEventId(), EventTime: time.UnixMilli(m.Schedule.GetMeta().GetEventTimeMs()), MedicationID: m.ID, Schedule: m.Schedule,
			}})
			for _, d := range m.Doses {
				if d.Intake.IsZero() {
					continue
				}
				copies := 1
				if d.Duplicate {
					copies = 2
				}
				out = append(out, PillEvent{At: d.SendAt, Copies: copies, Reading: Reading{
					Kind: KindIntake, DeviceID: p.DeviceID, DeviceType: TypePillcase, PatientID: p.ID,
					EventID: d.EventID, EventTime: d.Intake, MedicationID: m.ID, IntakeTime: d.Intake, Status: "taken",
				}})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		// Schedules first at equal times: an intake must not race its schedule.
		if out[i].At.Equal(out[j].At) {
			return out[i].Reading.Kind == KindSchedule && out[j].Reading.Kind != KindSchedule
		}
		return out[i].At.Before(out[j].At)
	})
	return out
}

// NewTelemetry returns the telemetry generator of f.
func (f *Fleet) NewTelemetry() *TelemetryGen {
	mw := float64(len(f.Monitors)) * math.Max(f.sc.Monitors.Hz, 1e-9)
	pw := float64(len(f.Pumps)) * math.Max(f.sc.Pumps.Hz, 1e-9)
	g := &TelemetryGen{f: f, rng: rand.New(rand.NewPCG(uint64(f.sc.Seed), 0x7e1e)), failed: map[int]bool{}, probe: uint64(f.sc.Transport.ProbeEvery)}
	if mw+pw > 0 {
		g.pumpW = pw / (mw + pw)
	}
	return g
}

// TelemetryGen generates monitor and pump readings, round-robin over the
// devices with count*hz weights. It is not safe for concurrent use.
type TelemetryGen struct {
	f       *Fleet
	rng     *rand.Rand
	seq     uint64
	pumpAcc float64
	pumpW   float64
	mon     int
	pump    int
	failed  map[int]bool
	probe   uint64
}

// Empty reports whether the fleet has no telemetry device.
func (g *TelemetryGen) Empty() bool { return len(g.f.Monitors)+len(g.f.Pumps) == 0 }

// Next returns the next device's readings: n readings of one device (n is
// the batch size), stamped now.
func (g *TelemetryGen) Next(now time.Time, n int) []Reading {
	usePump := len(g.f.Monitors) == 0
	if !usePump && len(g.f.Pumps) > 0 {
		g.pumpAcc += g.pumpW
		if g.pumpAcc >= 1 {
			g.pumpAcc--
			usePump = true
		}
	}
	out := make([]Reading, 0, n)
	if usePump {
		i := g.pump % len(g.f.Pumps)
		g.pump++
		d := g.f.Pumps[i]
		for k := range n {
			r := g.base(d, now, k, n)
			if !d.FailAt.IsZero() && !g.failed[i] && !now.Before(d.FailAt) {
				g.failed[i] = true
				r.Kind, r.Severity, r.AlertType = KindPumpFailure, 8, "PUMP_FAILURE"
				r.MedicationDose, r.AdministrationRate = 0, 0
			} else {
				r.Kind = KindPump
				r.MedicationDose = 5 + math.Round(g.rng.NormFloat64()*10)/100
				r.AdministrationRate = 2.5 + math.Round(g.rng.NormFloat64()*10)/100
			}
			r.BatteryLevel = 80
			out = append(out, r)
		}
		return out
	}
	i := g.mon % len(g.f.Monitors)
	g.mon++
	d := g.f.Monitors[i]
	for k := range n {
		r := g.base(d, now, k, n)
		r.Kind = KindVitals
		r.HeartRate = math.Round(75 + g.rng.NormFloat64()*6)
		r.SystolicBP = math.Round(118 + g.rng.NormFloat64()*6)
		r.DiastolicBP = math.Round(78 + g.rng.NormFloat64()*4)
		r.SpO2 = math.Min(100, math.Round((97.5+g.rng.NormFloat64()*0.7)*10)/10)
		r.Temperature = math.Round((36.8+g.rng.NormFloat64()*0.2)*10) / 10
		r.RespiratoryRate = math.Round(16 + g.rng.NormFloat64()*1.5)
		out = append(out, r)
	}
	return out
}

// base is reading k of a batch of n built at now. The device buffered the
// batch's readings before sending: they are a millisecond apart, in order,
// the last one stamped now (never after it, which would understate the
// latency of a probe in the batch).
func (g *TelemetryGen) base(d Device, now time.Time, k, n int) Reading {
	g.seq++
	id := make([]byte, 0, len(g.f.RunID)+12)
	id = append(append(id, g.f.RunID...), "-t"...)
	id = strconv.AppendUint(id, g.seq, 10)
	return Reading{
		DeviceID: d.ID, DeviceType: d.Type, PatientID: d.PatientID,
		EventID:   string(id),
		EventTime: now.Truncate(time.Millisecond).Add(-time.Duration(n-1-k) * time.Millisecond),
		Probe:     g.probe > 0 && g.seq%g.probe == 0,
	}
}

// FailedPumps returns the ids of the pumps whose PUMP_FAILURE reading was
// generated (a pump only fails when its turn comes after its FailAt).
func (g *TelemetryGen) FailedPumps() map[string]bool {
	out := map[string]bool{}
	for i := range g.failed {
		out[g.f.Pumps[i].ID] = true
	}
	return out
}

// Malformed returns a deliberately invalid message, cycling through the
// kinds of breakage the connector must dead-letter.
func (g *TelemetryGen) Malformed(now time.Time) Reading {
	g.seq++
	kinds := []string{"bad_json", "missing_fields", "spoofed_device"}
	var d Device
	if len(g.f.Monitors) > 0 {
		d = g.f.Monitors[int(g.seq)%len(g.f.Monitors)]
	} else if len(g.f.Pumps) > 0 {
		d = g.f.Pumps[int(g.seq)%len(g.f.Pumps)]
	} else {
		d = Device{ID: g.f.RunID + "-ghost", Type: TypeMonitor}
	}
	return Reading{Kind: KindMalformed, DeviceID: d.ID, DeviceType: d.Type, PatientID: d.PatientID,
		EventID: fmt.Sprintf("%s-bad%d", g.f.RunID, g.seq), EventTime: now, Malformed: kinds[int(g.seq)%len(kinds)]}
}

// Expectations are the outcomes the pipeline must produce for the fleet,
// counted over doses whose outcome is final by cutoff.
type Expectations struct {
	// Doses maps patient|medication|scheduled-unix-seconds to the outcome.
	Doses map[string]pb.Outcome
	// Adherence maps patient|medication to the day's due and taken counts.
	Adherence map[string][2]int
	// MissedAlerts maps patient|medication to the number of doses finally
	// missed (each must have a MISSED_DOSE alert that is not resolved).
	MissedAlerts map[string]int
	// MissedAlertIDs is the set of the MISSED_DOSE alert ids (less their
	// slot, see MissedAlertKey) of the doses finally missed: the checker
	// matches alerts to doses by id, not by their number.
	MissedAlertIDs map[string]bool
	// PumpFailures is the set of pumps that reported PUMP_FAILURE.
	PumpFailures map[string]bool
	// LiveMissed are the live doses finally missed: their MISSED alerts are
	// timed (scheduled + grace -> alert queryable).
	LiveMissed []LiveMissed
}

// LiveMissed is a live dose the patient skipped.
type LiveMissed struct {
	PatientID, MedicationID string
	// Scheduled is the dose's scheduled time: with the patient and the
	// medication it names the dose's MISSED_DOSE alert (MissedAlertKey).
	Scheduled time.Time
	Due       time.Time // scheduled + grace
}

// MissedAlertKey is the MISSED_DOSE alert id of the dose of patient and
// med scheduled at scheduled, without its trailing "|slot" (the id is
// MISSED_DOSE|patient|<patient>|<med>|<scheduled unix ms>|<slot>, see
// pipelines/adherence). The bench's schedules have one slot per time.
func MissedAlertKey(patient, med string, scheduled time.Time) string {
	return alerts.ID(pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, patient, med+"|"+strconv.FormatInt(scheduled.UnixMilli(), 10))
}

// missedAlertKey is MissedAlertKey of an alert id: the id less its slot.
func missedAlertKey(alertID string) string {
	if i := strings.LastIndexByte(alertID, '|'); i >= 0 {
		return alertID[:i]
	}
	return alertID
}

// DoseKey is the Expectations.Doses key.
func DoseKey(patient, med string, scheduled time.Time) string {
	return fmt.Sprintf("%s|%s|%d", patient, med, scheduled.Unix())
}

// Expect computes the expected outcomes. Only doses whose outcome is
// final at cutoff count (scheduled + late window passed, or missed and
// grace + 60 s passed).
func (f *Fleet) Expect(failedPumps map[string]bool) Expectations {
	pc := f.sc.Pillcases
	grace := time.Duration(pc.GraceMinutes) * time.Minute
	e := Expectations{Doses: map[string]pb.Outcome{}, Adherence: map[string][2]int{}, MissedAlerts: map[string]int{}, MissedAlertIDs: map[string]bool{}, PumpFailures: failedPumps}
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			k := p.ID + "|" + m.ID
			var due, taken int
			for _, d := range m.Doses {
				e.Doses[DoseKey(p.ID, m.ID, d.Scheduled)] = d.Expected
				due++
				if d.Expected != pb.Outcome_MISSED {
					taken++
				} else {
					e.MissedAlerts[k]++
					e.MissedAlertIDs[MissedAlertKey(p.ID, m.ID, d.Scheduled)] = true
					if d.Live {
						e.LiveMissed = append(e.LiveMissed, LiveMissed{PatientID: p.ID, MedicationID: m.ID, Scheduled: d.Scheduled, Due: d.Scheduled.Add(grace)})
					}
				}
			}
			if due > 0 { // nothing due that day: the pipeline writes no window
				e.Adherence[k] = [2]int{due, taken}
			}
		}
	}
	return e
}

// LastDoseFinal is the time by which every planned dose has its final
// outcome (latest scheduled + late window, or + grace + 60 s for missed).
func (f *Fleet) LastDoseFinal() time.Time {
	pc := f.sc.Pillcases
	var last time.Time
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			for _, d := range m.Doses {
				t := d.Scheduled.Add(time.Duration(pc.GraceMinutes)*time.Minute + time.Minute)
				if !d.Intake.IsZero() && d.SendAt.After(t) {
					t = d.SendAt
				}
				if t.After(last) {
					last = t
				}
			}
		}
	}
	return last
}
