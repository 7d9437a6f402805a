// Package reference is the pure, batch reference implementation of
// wardstream's adherence definitions (issue 4): given every schedule and
// every intake at once, it computes the final outcome of each scheduled dose
// and the adherence windows, with no state, no clock and no Kafka.
//
// It exists to be obviously right, not fast: the streaming processor in
// pipelines/adherence must reach the same final results whatever order,
// lateness or duplication its input arrives in, and tests compare the two.
// It is not used at run time.
package reference

import (
	"math"
	"sort"
	"time"

	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Input is everything the reference computes from.
type Input struct {
	// Schedules may hold several versions per patient and medication. A
	// version applies from its event time (Meta.EventTimeMs; 0: from the
	// beginning): the doses at instant t are those of the highest version
	// written at or before t, judged by that version's windows; a deleted
	// version has no doses. Before the first version there are no doses.
	Schedules []*pb.DoseSchedule
	// Intakes may hold duplicates (same Meta.EventId); each counts once.
	Intakes []*pb.MedicationIntake
	// From and To bound the scheduled instants of the doses considered:
	// every dose due in [From, To) is treated as final.
	From, To time.Time
}

// Outcome is the final outcome of one dose (or an EXTRA intake).
type Outcome struct {
	DoseID, PatientID, MedicationID string
	ScheduledMs                     int64
	Outcome                         pb.Outcome
	IntakeEventID                   string
	IntakeMs                        int64
	LocalDate                       string
}

// Window is the adherence of one patient and medication as of one day.
type Window struct {
	PatientID, MedicationID, Day string
	DailyDue, DailyTaken         int
	Due7d, Taken7d               int
	Due30d, Taken30d             int
	DailyRatio, Ratio7d          float64
	Ratio30d, PDC30d             float64
}

// Result is what the reference computes.
type Result struct {
	// Outcomes by dose id (EXTRA outcomes by schedule.ExtraID).
	Outcomes map[string]Outcome
	// Windows by "patient|medication|day", for every day with a due dose.
	Windows map[string]Window
}

type dose struct {
	inst    schedule.Instance
	sp      *schedule.Spec
	matched bool
	out     Outcome
}

type version struct {
	sp   *schedule.Spec
	from int64
}

// specAt is the version that defines the doses at t (nil: none).
func specAt(vs []version, t int64) *schedule.Spec {
	var best *version
	for i := range vs {
		if vs[i].from <= t && (best == nil || vs[i].sp.Version > best.sp.Version) {
			best = &vs[i]
		}
	}
	if best == nil {
		return nil
	}
	return best.sp
}

// Compute applies the definitions to in.
func Compute(in Input) (Result, error) {
	res := Result{Outcomes: map[string]Outcome{}, Windows: map[string]Window{}}
	specs := map[string]*schedule.Spec{}
	hist := map[string][]version{}
	for _, s := range in.Schedules {
		sp, err := schedule.Parse(s)
		if err != nil {
			return res, err
		}
		k := sp.PatientID + "|" + sp.MedicationID
		if cur, ok := specs[k]; !ok || sp.Version > cur.Version {
			specs[k] = sp
		}
		from := s.GetMeta().GetEventTimeMs()
		if from == 0 {
			from = math.MinInt64
		}
		dup := false
		for _, v := range hist[k] {
			dup = dup || v.sp.Version == sp.Version
		}
		if !dup {
			hist[k] = append(hist[k], version{sp: sp, from: from})
		}
	}
	// Deduplicate intakes by event id; keep taken ones, grouped by
	// patient|medication.
	seen := map[string]bool{}
	intakes := map[string][]*pb.MedicationIntake{}
	for _, it := range in.Intakes {
		id := it.GetMeta().GetEventId()
		if seen[id] {
			continue
		}
		seen[id] = true
		if !schedule.IsTakenStatus(it.GetStatus()) {
			continue
		}
		k := it.GetPatientId() + "|" + it.GetMedicationId()
		intakes[k] = append(intakes[k], it)
	}
	keys := map[string]bool{}
	for k := range specs {
		keys[k] = true
	}
	for k := range intakes {
		keys[k] = true
	}
	for k := range keys {
		sp := specs[k]
		its := intakes[k]
		sort.Slice(its, func(i, j int) bool {
			if its[i].GetIntakeTimeMs() != its[j].GetIntakeTimeMs() {
				return its[i].GetIntakeTimeMs() < its[j].GetIntakeTimeMs()
			}
			return its[i].GetMeta().GetEventId() < its[j].GetMeta().GetEventId()
		})
		var doses []*dose
		for _, v := range hist[k] {
			if v.sp.Deleted {
				continue
			}
			for _, inst := range v.sp.Instances(in.From, in.To) {
				if specAt(hist[k], inst.At.UnixMilli()) == v.sp {
					doses = append(doses, &dose{inst: inst, sp: v.sp})
				}
			}
		}
		sort.Slice(doses, func(i, j int) bool {
			if !doses[i].inst.At.Equal(doses[j].inst.At) {
				return doses[i].inst.At.Before(doses[j].inst.At)
			}
			return doses[i].inst.Slot < doses[j].inst.Slot
		})
		for _, it := range its {
			t := it.GetIntakeTimeMs()
			var best *dose
			var bestDist int64
			var bestOut pb.Outcome
			for _, d := range doses {
				if d.matched {
					continue
				}
				at := d.inst.At.UnixMilli()
				o, ok := d.sp.Classify(at, t)
				if !ok {
					continue
				}
				dist := t - at
				if dist < 0 {
					dist = -dist
				}
				// Doses are sorted by instant then slot, so the first
				// nearest one wins ties.
				if best == nil || dist < bestDist {
					best, bestDist, bestOut = d, dist, o
				}
			}
			if best == nil {
				id := schedule.ExtraID(it.GetPatientId(), it.GetMedicationId(), it.GetMeta().GetEventId())
				res.Outcomes[id] = Outcome{DoseID: id, PatientID: it.GetPatientId(), MedicationID: it.GetMedicationId(), ScheduledMs: t,
					Outcome: pb.Outcome_EXTRA, IntakeEventID: it.GetMeta().GetEventId(), IntakeMs: t, LocalDate: schedule.ExtraDate(sp, t)}
				continue
			}
			best.matched = true
			best.out = Outcome{Outcome: bestOut, IntakeEventID: it.GetMeta().GetEventId(), IntakeMs: t}
		}
		if sp == nil {
			continue
		}
		type day struct{ due, taken int }
		days := map[string]*day{}
		for _, d := range doses {
			at := d.inst.At.UnixMilli()
			id := schedule.DoseID(sp.PatientID, sp.MedicationID, at, d.inst.Slot)
			o := d.out
			if !d.matched {
				o = Outcome{Outcome: pb.Outcome_MISSED}
			}
			o.DoseID, o.PatientID, o.MedicationID, o.ScheduledMs, o.LocalDate = id, sp.PatientID, sp.MedicationID, at, d.inst.LocalDate
			res.Outcomes[id] = o
			dd := days[d.inst.LocalDate]
			if dd == nil {
				dd = &day{}
				days[d.inst.LocalDate] = dd
			}
			dd.due++
			if schedule.Taken(o.Outcome) {
				dd.taken++
			}
		}
		for ds := range days {
			D, _ := time.Parse(schedule.DateLayout, ds)
			w := Window{PatientID: sp.PatientID, MedicationID: sp.MedicationID, Day: ds}
			w.DailyDue, w.DailyTaken = days[ds].due, days[ds].taken
			full, withDue := 0, 0
			for back := 0; back < 30; back++ {
				dd := days[D.AddDate(0, 0, -back).Format(schedule.DateLayout)]
				if dd == nil {
					continue
				}
				if back < 7 {
					w.Due7d += dd.due
					w.Taken7d += dd.taken
				}
				w.Due30d += dd.due
				w.Taken30d += dd.taken
				if dd.due > 0 {
					withDue++
					if dd.taken == dd.due {
						full++
					}
				}
			}
			w.DailyRatio = Ratio(w.DailyTaken, w.DailyDue)
			w.Ratio7d = Ratio(w.Taken7d, w.Due7d)
			w.Ratio30d = Ratio(w.Taken30d, w.Due30d)
			w.PDC30d = Ratio(full, withDue)
			res.Windows[sp.PatientID+"|"+sp.MedicationID+"|"+ds] = w
		}
	}
	return res, nil
}

// Ratio is taken/due rounded to 6 decimals, 0 when nothing is due.
func Ratio(taken, due int) float64 {
	if due == 0 {
		return 0
	}
	return math.Round(float64(taken)/float64(due)*1e6) / 1e6
}
