package schedule

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestLocalInstantBruteForce checks LocalInstant against a brute-force
// scan on every transition day of 2024-2026 in several zones: an existing
// wall time is due at its first occurrence, a nonexistent one moves forward
// by the gap.
func TestLocalInstantBruteForce(t *testing.T) {
	zones := []string{"America/New_York", "Europe/London", "Europe/Berlin", "Australia/Lord_Howe", "Australia/Sydney",
		"Pacific/Auckland", "America/Santiago", "America/Havana", "Asia/Tehran", "Africa/Casablanca", "Pacific/Chatham", "America/St_Johns"}
	for _, zn := range zones {
		loc, err := time.LoadLocation(zn)
		if err != nil {
			t.Fatal(err)
		}
		for d := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2027; d = d.AddDate(0, 0, 1) {
			// transition day? compare offsets at 00:00 and 23:59 wall (approx) via UTC scan
			_, o1 := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc).Add(-2 * time.Hour).Zone()
			_, o2 := time.Date(d.Year(), d.Month(), d.Day(), 23, 59, 0, 0, loc).Add(2 * time.Hour).Zone()
			if o1 == o2 {
				continue
			}
			first := map[int]time.Time{}
			start := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).Add(-16 * time.Hour)
			for u := start; u.Before(start.Add(56 * time.Hour)); u = u.Add(time.Minute) {
				l := u.In(loc)
				if l.Year() == d.Year() && l.YearDay() == d.YearDay() {
					m := l.Hour()*60 + l.Minute()
					if _, ok := first[m]; !ok {
						first[m] = u
					}
				}
			}
			for m := 0; m < 1440; m++ {
				got := LocalInstant(d, m, loc)
				if want, ok := first[m]; ok {
					if !got.Equal(want) {
						t.Errorf("%s %s %02d:%02d: got %v, want first occurrence %v", zn, d.Format(DateLayout), m/60, m%60, got.UTC(), want.UTC())
					}
					continue
				}
				// gap: wall time must be m + gap, where gap = o2-o1 (seconds)
				l := got.In(loc)
				gm := l.Hour()*60 + l.Minute()
				gap := (o2 - o1) / 60
				if gm != m+gap {
					t.Errorf("%s %s %02d:%02d (nonexistent): got wall %02d:%02d, want moved forward by %d min", zn, d.Format(DateLayout), m/60, m%60, gm/60, gm%60, gap)
				}
			}
		}
	}
}

// TestGapDoseCollidesWithNextTime: on a spring-forward day a
// nonexistent listed time moves forward by the gap onto another listed
// time. Both are scheduled doses (the contract: each gets its own final
// outcome), but Instances returns two instances with the same instant and
// slot, i.e. the same DoseID, so only one outcome can survive downstream.
func TestGapDoseCollidesWithNextTime(t *testing.T) {
	for _, c := range []struct {
		zone, date string
		times      []string
	}{
		{"Europe/London", "2024-03-31", []string{"01:00", "02:00"}},
		{"America/New_York", "2024-03-10", []string{"02:00", "03:00"}},
		{"Australia/Lord_Howe", "2024-10-06", []string{"02:00", "02:30"}},
	} {
		t.Run(c.zone, func(t *testing.T) {
			sp, err := Parse(&pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: c.zone, Times: c.times,
				StartDate: c.date, EndDate: c.date, Version: 1})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := time.Parse(DateLayout, c.date)
			ins := sp.Instances(d.Add(-24*time.Hour), d.Add(48*time.Hour))
			if len(ins) != len(c.times) {
				t.Fatalf("%d instances, want %d", len(ins), len(c.times))
			}
			ids := map[string]bool{}
			for _, in := range ins {
				id := DoseID("p", "m", in.At.UnixMilli(), in.Slot)
				if ids[id] {
					t.Fatalf("two scheduled doses (%v) share dose id %s: instances %v", c.times, id, fmt.Sprint(ins))
				}
				ids[id] = true
			}
		})
	}
}

// TestGapAcrossMidnightKeepsDoseIDs: America/Nuuk springs forward at
// 23:00 local on the last Saturday of March (01:00 UTC), so Saturday's
// 23:30 dose moves forward by the gap to Sunday 00:30, the instant of
// Sunday's own 00:30 dose. Both are due there, each with its own dose id
// (the earlier date's in the lower slots), whichever range is asked for.
func TestGapAcrossMidnightKeepsDoseIDs(t *testing.T) {
	for _, c := range []struct {
		zone, sat string
		times     []string
	}{
		{"America/Nuuk", "2024-03-30", []string{"00:30", "23:30"}},
		{"Asia/Pyongyang", "2018-05-04", []string{"00:00", "23:30"}},
		{"Pacific/Apia", "2011-12-29", []string{"08:00"}}, // 2011-12-30 did not exist
	} {
		t.Run(c.zone, func(t *testing.T) {
			sp, err := Parse(&pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: c.zone, Times: c.times,
				StartDate: c.sat, DosesPerTime: 2, Version: 1})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := time.Parse(DateLayout, c.sat)
			from, to := d.Add(-24*time.Hour), d.Add(96*time.Hour)
			ins := sp.Instances(from, to)
			ids := map[string]Instance{}
			for _, in := range ins {
				id := DoseID("p", "m", in.At.UnixMilli(), in.Slot)
				if prev, dup := ids[id]; dup {
					t.Fatalf("doses of %s and %s share dose id %s", prev.LocalDate, in.LocalDate, id)
				}
				ids[id] = in
			}
			// Any range gives a dose the same id.
			for cut := from; cut.Before(to); cut = cut.Add(30 * time.Minute) {
				for _, in := range sp.Instances(cut, to) {
					id := DoseID("p", "m", in.At.UnixMilli(), in.Slot)
					if got, ok := ids[id]; !ok || got.LocalDate != in.LocalDate {
						t.Fatalf("from %v: dose %s (%s) is not the full range's (%+v)", cut, id, in.LocalDate, got)
					}
				}
			}
		})
	}
}
