// Package schedule provides the pure dose-instance computation of
// wardstream: it turns a [pb.DoseSchedule] (times of day in the patient's
// IANA time zone, days of week, start and end date, doses per time) into the
// concrete instants at which doses are due, DST-correct, and classifies an
// intake against a dose (on time, early, late, outside the window). It also
// parses the schedule file that `wardstream schedules apply` publishes.
//
// It does no I/O and keeps no state; the adherence processor and the batch
// reference implementation both build on it.
//
// # Definitions
//
// A dose is due at each listed local time of day, on each local date from
// StartDate to EndDate (inclusive; EndDate empty means open-ended) whose
// weekday is in DaysOfWeek (0=Sunday..6=Saturday; empty means every day).
// With DosesPerTime = n, n doses (slots 0..n-1) are due at that time, each
// needing its own intake.
//
// DST: a local time that does not exist on a DST day (spring forward) moves
// forward by the gap (02:30 in America/New_York on 2024-03-10 is due at
// 03:30 EDT); an ambiguous time (fall back) happens once, at its first
// occurrence (01:30 in America/New_York on 2024-11-03 is due at 01:30 EDT,
// 05:30 UTC).
//
// Windows, relative to the scheduled instant s and an intake at t (d = t-s):
//
//	TAKEN_ON_TIME  -grace <= d <= +grace            (grace default 15 min)
//	TAKEN_EARLY    -early <= d <  -grace            (early default 60 min)
//	TAKEN_LATE     +grace <  d <= +late             (late default 4 h)
//	outside        d < -early or d > +late
//
// # Schedule file
//
// The file `wardstream schedules apply FILE.yaml` reads is YAML:
//
//	tenant: hospital-a              # optional; default the topology's tenant
//	schedules:
//	  - patient_id: p-1001           # required
//	    medication_id: metformin-500 # required
//	    medication_name: Metformin 500 mg
//	    device_id: pillcase-17       # optional
//	    ward: icu-3                  # optional
//	    timezone: Europe/Berlin      # required IANA zone
//	    times: ["08:00", "20:00"]    # required local "HH:MM"
//	    days_of_week: [1,2,3,4,5]    # optional, 0=Sunday..6=Saturday
//	    start_date: 2026-01-01       # required local date
//	    end_date: 2026-03-31         # optional, inclusive
//	    doses_per_time: 1            # default 1
//	    grace_minutes: 15            # default 15
//	    early_window_minutes: 60     # default 60
//	    late_window_minutes: 240     # default 240
//	    version: 3                   # required, > 0; the highest wins
//	    deleted: false               # true removes the schedule
//
// See deploy/local/schedules.example.yaml for a commented example.
package schedule

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardstream/wardstream/schemas/dose"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Defaults of the dose windows (the seed's 15-minute rule for grace),
// fixed by the schedule contract (schemas/dose).
const (
	DefaultGraceMinutes = dose.DefaultGraceMinutes
	DefaultEarlyMinutes = dose.DefaultEarlyMinutes
	DefaultLateMinutes  = dose.DefaultLateMinutes
)

// DateLayout is the layout of local dates ("YYYY-MM-DD").
const DateLayout = "2006-01-02"

// Spec is a validated, parsed schedule. Build it with [Parse].
type Spec struct {
	PatientID, MedicationID string
	Loc                     *time.Location
	// Times are minutes after local midnight, sorted, unique.
	Times []int
	// Days is a bit set of allowed weekdays (bit 0 = Sunday); 0x7f is every day.
	Days uint8
	// Start and End are local dates at midnight UTC (calendar dates); End is
	// zero when open-ended.
	Start, End   time.Time
	DosesPerTime int
	Grace        time.Duration
	Early        time.Duration
	Late         time.Duration
	Version      int64
	Deleted      bool
}

// Parse validates s and returns its Spec. Errors name the field.
func Parse(s *pb.DoseSchedule) (*Spec, error) {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	sp := &Spec{PatientID: s.GetPatientId(), MedicationID: s.GetMedicationId(), Version: s.GetVersion(), Deleted: s.GetDeleted()}
	if sp.PatientID == "" {
		bad("patient_id", "must not be empty")
	}
	if sp.MedicationID == "" {
		bad("medication_id", "must not be empty")
	}
	if strings.Contains(sp.PatientID, "|") || strings.Contains(sp.MedicationID, "|") {
		bad("patient_id/medication_id", "must not contain '|'")
	}
	if s.GetTimezone() == "" {
		bad("timezone", "must name an IANA zone such as Europe/Berlin")
	} else if loc, err := loadLocation(s.GetTimezone()); err != nil {
		bad("timezone", "%q is not an IANA zone: %v", s.GetTimezone(), err)
	} else {
		sp.Loc = loc
	}
	if len(s.GetTimes()) == 0 && !sp.Deleted {
		bad("times", "must list at least one local time HH:MM")
	}
	seen := map[int]bool{}
	for i, t := range s.GetTimes() {
		m, err := ParseClock(t)
		if err != nil {
			bad(fmt.Sprintf("times[%d]", i), "%v", err)
			continue
		}
		if !seen[m] {
			seen[m] = true
			sp.Times = append(sp.Times, m)
		}
	}
	sort.Ints(sp.Times)
	if len(s.GetDaysOfWeek()) == 0 {
		sp.Days = 0x7f
	}
	for i, d := range s.GetDaysOfWeek() {
		if d < 0 || d > 6 {
			bad(fmt.Sprintf("days_of_week[%d]", i), "%d is not 0 (Sunday) .. 6 (Saturday)", d)
			continue
		}
		sp.Days |= 1 << uint(d)
	}
	var err error
	if sp.Start, err = time.Parse(DateLayout, s.GetStartDate()); err != nil {
		bad("start_date", "%q is not a date YYYY-MM-DD", s.GetStartDate())
	}
	if s.GetEndDate() != "" {
		if sp.End, err = time.Parse(DateLayout, s.GetEndDate()); err != nil {
			bad("end_date", "%q is not a date YYYY-MM-DD", s.GetEndDate())
		} else if !sp.Start.IsZero() && sp.End.Before(sp.Start) {
			bad("end_date", "%s is before start_date %s", s.GetEndDate(), s.GetStartDate())
		}
	}
	sp.DosesPerTime = int(s.GetDosesPerTime())
	if sp.DosesPerTime == 0 {
		sp.DosesPerTime = 1
	}
	if sp.DosesPerTime < 0 || sp.DosesPerTime > 20 {
		bad("doses_per_time", "%d is not 1..20", s.GetDosesPerTime())
	}
	mins := func(field string, v int32, def int) time.Duration {
		if v == 0 {
			v = int32(def)
		}
		if v < 0 || v > 24*60 {
			bad(field, "%d is not 0..1440 minutes", v)
		}
		return time.Duration(v) * time.Minute
	}
	sp.Grace = mins("grace_minutes", s.GetGraceMinutes(), DefaultGraceMinutes)
	sp.Early = mins("early_window_minutes", s.GetEarlyWindowMinutes(), DefaultEarlyMinutes)
	sp.Late = mins("late_window_minutes", s.GetLateWindowMinutes(), DefaultLateMinutes)
	for _, err := range dose.CheckWindows(s.GetGraceMinutes(), s.GetEarlyWindowMinutes(), s.GetLateWindowMinutes()) {
		bad("early_window_minutes/late_window_minutes", "%v", err)
	}
	if sp.Version <= 0 {
		bad("version", "must be > 0 (the highest version wins)")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("schedule %s|%s: %w", s.GetPatientId(), s.GetMedicationId(), err)
	}
	return sp, nil
}

var locations sync.Map // zone name -> *time.Location

// loadLocation caches time.LoadLocation, which reads the zone database on
// every call.
func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	if name == "Local" {
		// time.LoadLocation's "Local" is the computing host's zone.
		return nil, errors.New(`"Local" is the host's zone, not a fixed one`)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// ParseClock parses "HH:MM" (00:00..23:59) into minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not a local time HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not a local time HH:MM", s)
	}
	return hh*60 + mm, nil
}

// Instance is one due dose.
type Instance struct {
	// At is the scheduled instant.
	At time.Time
	// Slot is 0..DosesPerTime-1, counted on when two listed times fall
	// on one instant (a time moved forward by a DST gap onto the next).
	Slot int
	// LocalDate is the patient's local date of the dose ("YYYY-MM-DD"), the
	// calendar date the schedule generated it for.
	LocalDate string
}

// DoseID is the deterministic id of a dose: patient, medication, scheduled
// time in Unix ms, slot.
func DoseID(patient, med string, atMs int64, slot int) string {
	return patient + "|" + med + "|" + strconv.FormatInt(atMs, 10) + "|" + strconv.Itoa(slot)
}

// ExtraID is the deterministic id of the EXTRA outcome of an intake that
// matched no dose.
func ExtraID(patient, med, intakeEventID string) string {
	return patient + "|" + med + "|extra|" + intakeEventID
}

// ExtraDate is the local date of an EXTRA intake at ms: in the schedule's
// zone when there is a schedule (sp may be nil), else in UTC.
func ExtraDate(sp *Spec, ms int64) string {
	t := time.UnixMilli(ms).UTC()
	if sp != nil && sp.Loc != nil {
		t = t.In(sp.Loc)
	}
	return t.Format(DateLayout)
}

// LocalInstant returns the instant of the local wall time date+minutes in
// loc, DST-correct: a nonexistent time moves forward by the gap, an
// ambiguous time resolves to its first occurrence.
func LocalInstant(date time.Time, minutes int, loc *time.Location) time.Time {
	naive := time.Date(date.Year(), date.Month(), date.Day(), minutes/60, minutes%60, 0, 0, time.UTC)
	// The offsets in effect a day before and a day after bracket any
	// transition on this date.
	_, before := time.Unix(naive.Unix()-86400, 0).In(loc).Zone()
	_, after := time.Unix(naive.Unix()+86400, 0).In(loc).Zone()
	var best time.Time
	for _, off := range []int{before, after} {
		t := naive.Add(-time.Duration(off) * time.Second).In(loc)
		if t.Year() == naive.Year() && t.YearDay() == naive.YearDay() && t.Hour()*60+t.Minute() == minutes {
			if best.IsZero() || t.Before(best) {
				best = t
			}
		}
	}
	if !best.IsZero() {
		return best
	}
	// Nonexistent (spring forward): read the wall time with the offset in
	// effect before the gap, which lands the gap's length later.
	return naive.Add(-time.Duration(before) * time.Second).In(loc)
}

// Instances returns the doses due in [from, to), sorted by instant then slot.
// A deleted schedule has none.
func (s *Spec) Instances(from, to time.Time) []Instance {
	if s.Deleted || !from.Before(to) {
		return nil
	}
	// Local dates that can hold instants in [from, to): one day of slack on
	// each side covers any UTC offset.
	lf := from.In(s.Loc)
	lt := to.In(s.Loc)
	d := time.Date(lf.Year(), lf.Month(), lf.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	last := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	if d.Before(s.Start) {
		d = s.Start
	}
	if !s.End.IsZero() && last.After(s.End) {
		last = s.End
	}
	var out []Instance
	// A time that does not exist on its date moves forward by the gap and
	// can land on another listed time (01:00 and 02:00 on a spring forward
	// day in London), also one of the next date when the gap spans
	// midnight (23:30 on the day America/Nuuk springs forward at 23:00 is
	// Sunday's 00:30): both are due at that instant, the one of the
	// earlier date and listed time in the lower slots, so that every dose
	// keeps its own id. A gap is at most a day, so the previous date's
	// instants are all a date's can meet.
	var bufPrev, bufCur [8]time.Time
	prevDay, seen := bufPrev[:0], bufCur[:0]
	for ; !d.After(last); d = d.AddDate(0, 0, 1) {
		prevDay, seen = seen, prevDay[:0]
		if s.Days&(1<<uint(d.Weekday())) == 0 {
			continue
		}
		ds := d.Format(DateLayout)
		for _, m := range s.Times {
			at := LocalInstant(d, m, s.Loc)
			base := 0
			for _, prev := range prevDay {
				if prev.Equal(at) {
					base += s.DosesPerTime
				}
			}
			for _, prev := range seen {
				if prev.Equal(at) {
					base += s.DosesPerTime
				}
			}
			seen = append(seen, at)
			if at.Before(from) || !at.Before(to) {
				continue
			}
			for slot := base; slot < base+s.DosesPerTime; slot++ {
				out = append(out, Instance{At: at, Slot: slot, LocalDate: ds})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Slot < out[j].Slot
	})
	return out
}

// Classify returns the outcome of an intake at intakeMs for a dose due at
// atMs under s's windows, and whether the intake lies in the dose's window
// at all (see the package doc for the boundaries).
func (s *Spec) Classify(atMs, intakeMs int64) (pb.Outcome, bool) {
	return ClassifyWindows(atMs, intakeMs, s.Grace, s.Early, s.Late)
}

// ClassifyWindows is [Spec.Classify] with explicit windows.
func ClassifyWindows(atMs, intakeMs int64, grace, early, late time.Duration) (pb.Outcome, bool) {
	d := intakeMs - atMs
	g, e, l := grace.Milliseconds(), early.Milliseconds(), late.Milliseconds()
	switch {
	case d >= -g && d <= g:
		return pb.Outcome_TAKEN_ON_TIME, true
	case d >= -e && d < -g:
		return pb.Outcome_TAKEN_EARLY, true
	case d > g && d <= l:
		return pb.Outcome_TAKEN_LATE, true
	}
	return pb.Outcome_OUTCOME_UNSPECIFIED, false
}

// Taken reports whether o counts as taken (on time, early or late).
func Taken(o pb.Outcome) bool {
	return o == pb.Outcome_TAKEN_ON_TIME || o == pb.Outcome_TAKEN_EARLY || o == pb.Outcome_TAKEN_LATE
}

// IsTakenStatus reports whether an intake status takes a dose: only
// "taken" (case-insensitive) does; skipped and refused take nothing.
func IsTakenStatus(status string) bool { return strings.EqualFold(status, "taken") }
