package bench

import (
	"testing"
	"time"
)

// The load phase takes exactly the messages due at the fleet's start:
// every schedule and the intakes reported then; offline pillcases'
// buffer flushes and live intakes stay in the timed phase, each part in
// send order.
func TestSplitAtStart(t *testing.T) {
	sc, err := LoadScenario("scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f, err := NewFleet(sc, "run1", "tenant-x", start, start.Add(15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	all := f.PillEvents()
	atStart, later := splitAtStart(all, start)
	if len(atStart)+len(later) != len(all) {
		t.Fatalf("split %d + %d of %d events", len(atStart), len(later), len(all))
	}
	for i, e := range atStart {
		if e != all[i] {
			t.Fatalf("load phase event %d is not the plan's event %d", i, i)
		}
	}
	for i, e := range later {
		if e != all[len(atStart)+i] {
			t.Fatalf("timed phase event %d is not the plan's event %d", i, len(atStart)+i)
		}
	}
	kinds := map[string]int{}
	for _, e := range atStart {
		if !e.At.Equal(start) {
			t.Errorf("load phase event %s due at %s, not at the start", e.Reading.EventID, e.At)
		}
		switch {
		case e.Reading.Kind == KindSchedule:
			kinds["schedule"]++
		case e.Reading.EventTime.Before(start):
			kinds["history intake"]++
		}
	}
	offline := map[string]bool{}
	for _, p := range f.Patients {
		if p.Profile == ProfileOffline {
			offline[p.ID] = true
		}
	}
	for _, e := range later {
		if !e.At.After(start) {
			t.Errorf("timed phase event %s due at %s, not after the start", e.Reading.EventID, e.At)
		}
		switch {
		case e.Reading.Kind == KindSchedule:
			t.Errorf("schedule %s left for the timed phase", e.Reading.EventID)
		case offline[e.Reading.PatientID] && e.Reading.EventTime.Before(start):
			kinds["offline flush"]++
		case !e.Reading.EventTime.Before(start):
			kinds["live intake"]++
		}
	}
	schedules := 0
	for _, p := range f.Patients {
		schedules += len(p.Meds)
	}
	if kinds["schedule"] != schedules {
		t.Errorf("load phase has %d schedules, the fleet %d", kinds["schedule"], schedules)
	}
	for _, k := range []string{"history intake", "offline flush", "live intake"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the split (%v): the smoke fleet has every profile", k, kinds)
		}
	}
}
