package adherence_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/pipelines/reference"
	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// scenario is a random set of schedules and intakes around the spring DST
// change in Berlin, with on-time, early, late, missed, skipped, extra and
// duplicated intakes.
type scenario struct {
	schedules []*pb.DoseSchedule
	intakes   []*pb.MedicationIntake
	from, to  time.Time
}

func newScenario(rng *rand.Rand) scenario {
	var sc scenario
	sc.from = at("2024-03-29 00:00")
	sc.to = at("2024-04-02 00:00")
	n := 0
	for p := 0; p < 3; p++ {
		for m := 0; m < 2; m++ {
			pid, mid := fmt.Sprintf("p%d", p), fmt.Sprintf("m%d", m)
			s := &pb.DoseSchedule{Meta: &pb.Meta{Tenant: "t1", EventId: "s" + pid + mid, EventTimeMs: sc.from.UnixMilli()},
				PatientId: pid, MedicationId: mid, Timezone: "Europe/Berlin", Times: []string{"02:30", "08:00", "09:30", "20:00"},
				StartDate: "2024-03-29", EndDate: "2024-04-01", Version: 1, DosesPerTime: int32(1 + m)}
			sc.schedules = append(sc.schedules, s)
			// A second version (same doses, later write) must not change anything.
			v2 := proto.Clone(s).(*pb.DoseSchedule)
			v2.Version = 2
			v2.Meta = &pb.Meta{Tenant: "t1", EventId: "s2" + pid + mid, EventTimeMs: sc.from.Add(time.Hour).UnixMilli()}
			sc.schedules = append(sc.schedules, v2)
			times := append([]string(nil), s.Times...)
			switch p {
			case 1:
				// A change of times from 30 March noon on: the doses before
				// stay those of the versions before.
				v3 := proto.Clone(s).(*pb.DoseSchedule)
				v3.Version, v3.Times = 3, []string{"03:00", "08:00", "10:30", "21:00"}
				v3.Meta = &pb.Meta{Tenant: "t1", EventId: "s3" + pid + mid, EventTimeMs: at("2024-03-30 12:00").UnixMilli()}
				sc.schedules = append(sc.schedules, v3)
				times = append(times, "03:00", "10:30", "21:00")
			case 2:
				// Deleted on 31 March 06:00, written again an hour later:
				// doses removed (and retracted) may come back, and their
				// versions must keep growing.
				v3 := proto.Clone(s).(*pb.DoseSchedule)
				v3.Version, v3.Deleted = 3, true
				v3.Meta = &pb.Meta{Tenant: "t1", EventId: "s3" + pid + mid, EventTimeMs: at("2024-03-31 06:00").UnixMilli()}
				v4 := proto.Clone(s).(*pb.DoseSchedule)
				v4.Version = 4
				v4.Meta = &pb.Meta{Tenant: "t1", EventId: "s4" + pid + mid, EventTimeMs: at("2024-03-31 07:00").UnixMilli()}
				sc.schedules = append(sc.schedules, v3, v4)
			}
			for d := 29; d <= 32; d++ {
				for _, hm := range times {
					day := time.Date(2024, 3, d, 0, 0, 0, 0, time.UTC)
					local := fmt.Sprintf("%s %s", day.Format("2006-01-02"), hm)
					base, err := time.ParseInLocation("2006-01-02 15:04", local, berlin)
					if err != nil {
						panic(err)
					}
					for slot := 0; slot < int(s.DosesPerTime); slot++ {
						var off time.Duration
						status := "taken"
						switch rng.IntN(8) {
						case 0:
							continue // missed
						case 1:
							off = -time.Duration(16+rng.IntN(44)) * time.Minute // early
						case 2:
							off = time.Duration(16+rng.IntN(224)) * time.Minute // late
						case 3:
							status = []string{"skipped", "refused"}[rng.IntN(2)]
						case 4:
							off = time.Duration(rng.IntN(600)-300) * time.Minute // anywhere: maybe extra
						default:
							off = time.Duration(rng.IntN(31)-15) * time.Minute // on time
						}
						n++
						it := intake(fmt.Sprintf("i%d", n), pid, mid, base.Add(off), status)
						sc.intakes = append(sc.intakes, it)
						if rng.IntN(10) == 0 {
							sc.intakes = append(sc.intakes, it) // duplicate delivery
						}
					}
				}
			}
		}
	}
	return sc
}

type arrival struct {
	t  time.Time
	s  *pb.DoseSchedule
	in *pb.MedicationIntake
}

// run feeds the scenario to a processor: every record arrives after its
// event time with a random delay (mostly seconds, sometimes a device
// buffer flushed 2-30 h later), schedules possibly after some intakes,
// with clock ticks every 15 minutes of processing time.
func run(t *testing.T, rng *rand.Rand, sc scenario) *harness {
	var arr []arrival
	for _, s := range sc.schedules {
		// A version arrives within 3 h of when it was written.
		base := sc.from
		if ev := time.UnixMilli(s.GetMeta().GetEventTimeMs()); ev.After(base) {
			base = ev
		}
		arr = append(arr, arrival{t: base.Add(time.Duration(rng.IntN(int(3 * time.Hour)))), s: s})
	}
	for _, in := range sc.intakes {
		d := time.Duration(rng.IntN(60)) * time.Second
		if rng.IntN(5) == 0 {
			d = time.Duration(2+rng.IntN(28)) * time.Hour
		}
		arr = append(arr, arrival{t: time.UnixMilli(in.IntakeTimeMs).Add(d), in: in})
	}
	sort.SliceStable(arr, func(i, j int) bool { return arr[i].t.Before(arr[j].t) })
	h := newHarness(t, sc.from)
	next := sc.from
	for _, a := range arr {
		for !next.After(a.t) {
			h.tick(next)
			next = next.Add(15 * time.Minute)
		}
		h.setNow(a.t)
		if a.s != nil {
			h.schedule(a.s)
		} else {
			h.intake(a.in)
		}
	}
	h.tick(sc.to.Add(48 * time.Hour))
	return h
}

func TestStreamingEqualsReference(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			sc := newScenario(rng)
			want, err := reference.Compute(reference.Input{Schedules: sc.schedules, Intakes: sc.intakes, From: sc.from, To: sc.to})
			if err != nil {
				t.Fatal(err)
			}
			h := run(t, rng, sc)
			got := h.final()
			kinds := map[pb.Outcome]int{}
			for id, w := range want.Outcomes {
				kinds[w.Outcome]++
				g := got[id]
				if g == nil {
					t.Fatalf("dose %s: no outcome, reference says %s", id, w.Outcome)
				}
				if g.Outcome != w.Outcome || g.IntakeEventId != w.IntakeEventID {
					t.Fatalf("dose %s: got %s (intake %s), reference %s (intake %s)", id, g.Outcome, g.IntakeEventId, w.Outcome, w.IntakeEventID)
				}
				if w.LocalDate != g.LocalDate || w.ScheduledMs != g.ScheduledTimeMs {
					t.Fatalf("dose %s: date/time %s/%d vs reference %s/%d", id, g.LocalDate, g.ScheduledTimeMs, w.LocalDate, w.ScheduledMs)
				}
			}
			if len(got) != len(want.Outcomes) {
				for id, g := range got {
					if _, ok := want.Outcomes[id]; !ok {
						t.Errorf("unexpected outcome %s %s", id, g.Outcome)
					}
				}
				t.Fatalf("%d outcomes, reference has %d", len(got), len(want.Outcomes))
			}
			for _, o := range []pb.Outcome{pb.Outcome_TAKEN_ON_TIME, pb.Outcome_TAKEN_EARLY, pb.Outcome_TAKEN_LATE, pb.Outcome_MISSED, pb.Outcome_EXTRA} {
				if kinds[o] == 0 {
					t.Fatalf("scenario exercises no %s", o)
				}
			}
			// The versions apply from when they were written: p1 keeps its
			// first times before the change and has the new ones after it;
			// p2 has no doses while deleted and its doses again after.
			for _, c := range []struct {
				pat, local string
				want       bool
			}{
				{"p1", "2024-03-29 20:00", true}, {"p1", "2024-03-30 09:30", true}, {"p1", "2024-03-30 20:00", false},
				{"p1", "2024-03-30 21:00", true}, {"p1", "2024-03-31 10:30", true}, {"p1", "2024-03-29 21:00", false},
				{"p2", "2024-03-30 20:00", true}, {"p2", "2024-03-31 02:30", true}, {"p2", "2024-03-31 08:00", true},
			} {
				id := schedule.DoseID(c.pat, "m0", at(c.local).UnixMilli(), 0)
				_, inRef := want.Outcomes[id]
				_, inGot := got[id]
				if inRef != c.want || inGot != c.want {
					t.Fatalf("dose %s at %s: in reference %v, streamed %v, want %v", c.pat, c.local, inRef, inGot, c.want)
				}
			}
			retracted := 0
			for _, o := range h.outs {
				if o.Outcome == pb.Outcome_OUTCOME_UNSPECIFIED {
					retracted++
				}
			}
			t.Logf("%d retractions", retracted)
			wins := h.finalWindows()
			for k, w := range want.Windows {
				g := wins[k]
				if g == nil {
					t.Fatalf("window %s missing", k)
				}
				if int(g.DailyDue) != w.DailyDue || int(g.DailyTaken) != w.DailyTaken || int(g.Due_7D) != w.Due7d || int(g.Taken_7D) != w.Taken7d ||
					int(g.Due_30D) != w.Due30d || int(g.Taken_30D) != w.Taken30d || g.Ratio_7D != w.Ratio7d || g.Ratio_30D != w.Ratio30d ||
					g.DailyRatio != w.DailyRatio || g.Pdc_30D != w.PDC30d {
					t.Fatalf("window %s: got %v, reference %+v", k, g, w)
				}
			}
			if len(wins) != len(want.Windows) {
				t.Fatalf("%d windows, reference has %d", len(wins), len(want.Windows))
			}
			// Every finally missed dose has exactly one open MISSED_DOSE alert.
			open := h.openAlerts(pb.AlertType_MISSED_DOSE)
			missed := kinds[pb.Outcome_MISSED]
			if len(open) != missed {
				t.Fatalf("%d open MISSED_DOSE alerts, %d doses missed", len(open), missed)
			}
			corrected := 0
			for _, o := range got {
				if o.Version > 1 {
					corrected++
				}
			}
			if corrected == 0 {
				t.Fatal("scenario exercises no correction")
			}
			t.Logf("%d outcomes (%v), %d corrected, %d records emitted", len(got), kinds, corrected, len(h.outs))
			if len(h.dlq) != 0 {
				t.Fatalf("dead letters: %v", h.dlq)
			}
		})
	}
}
