package adherence_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardstream/wardstream/pipelines/reference"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestDSTGapDosesKeepDistinctOutcomes: Europe/London springs forward
// on 2024-03-31 at 01:00 GMT -> 02:00 BST. A schedule with 01:00 and 02:00
// has two doses that day; 01:00 does not exist and moves forward by the gap
// to 02:00 BST. Each dose must get exactly one final outcome. One intake at
// 02:00 BST takes one of them; the other is MISSED.
func TestDSTGapDosesKeepDistinctOutcomes(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	lt := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, london)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	h := newHarness(t, lt("2024-03-30 12:00"))
	s := &pb.DoseSchedule{Meta: &pb.Meta{Tenant: "t1", EventId: "s1", EventTimeMs: lt("2024-03-30 00:00").UnixMilli()},
		PatientId: "p", MedicationId: "m", Timezone: "Europe/London", Times: []string{"01:00", "02:00"},
		StartDate: "2024-03-31", EndDate: "2024-03-31", Version: 1}
	h.schedule(s)
	h.setNow(lt("2024-03-31 02:05"))
	h.intake(intake("i1", "p", "m", lt("2024-03-31 02:00"), "taken"))
	h.tick(lt("2024-03-31 03:00"))
	h.tick(lt("2024-04-01 12:00"))

	// Per dose id and version there must be one record.
	seen := map[string]pb.Outcome{}
	for _, o := range h.outs {
		k := fmt.Sprintf("%s@%d", o.DoseId, o.Version)
		if prev, ok := seen[k]; ok {
			t.Errorf("two outcome records %s: %s and %s (two scheduled doses share one dose id)", k, prev, o.Outcome)
		}
		seen[k] = o.Outcome
	}
	ref, err := reference.Compute(reference.Input{Schedules: []*pb.DoseSchedule{s},
		Intakes: []*pb.MedicationIntake{intake("i1", "p", "m", lt("2024-03-31 02:00"), "taken")},
		From:    lt("2024-03-30 00:00"), To: lt("2024-04-02 00:00")})
	if err != nil {
		t.Fatal(err)
	}
	w := ref.Windows["p|m|2024-03-31"]
	if len(ref.Outcomes) != w.DailyDue {
		t.Errorf("reference: %d dose outcomes for %d due doses on 2024-03-31 (%v)", len(ref.Outcomes), w.DailyDue, ref.Outcomes)
	}
}

// TestRetractedDayLeavesNoStaleWindowOrLowAlert: a schedule version
// written at 07:00 on 2 July ends the medication on 1 July; it reaches the
// group at 09:00 (within the 3 h the reference test allows), after the
// 2 July 08:00 dose was declared MISSED (and LOW_ADHERENCE opened on the
// 7-day ratio 1/2). The dose is retracted, so 2 July has no due dose: the
// final windows must equal the reference's (only 1 July, ratio 1; 2 July's
// last window says nothing is due, superseding the earlier one), and
// LOW_ADHERENCE must not stay open.
func TestRetractedDayLeavesNoStaleWindowOrLowAlert(t *testing.T) {
	h := newHarness(t, at("2024-07-01 00:00"))
	s1 := schedFor("p", "m", "08:00")
	s1.EndDate = "2024-07-10"
	h.schedule(s1)
	in := intake("i1", "p", "m", at("2024-07-01 08:00"), "taken")
	h.setNow(at("2024-07-01 08:01"))
	h.intake(in)
	h.tick(at("2024-07-02 08:16"))
	if open := h.openAlerts(pb.AlertType_LOW_ADHERENCE); len(open) != 1 {
		t.Fatalf("setup: want LOW_ADHERENCE open after the 2 July miss, got %v", open)
	}
	s2 := schedFor("p", "m", "08:00")
	s2.Version, s2.EndDate = 2, "2024-07-01"
	s2.Meta = &pb.Meta{Tenant: "t1", EventId: "s2", EventTimeMs: at("2024-07-02 07:00").UnixMilli()}
	h.setNow(at("2024-07-02 09:00"))
	h.schedule(s2)
	h.tick(at("2024-07-03 12:00"))

	ref, err := reference.Compute(reference.Input{Schedules: []*pb.DoseSchedule{s1, s2}, Intakes: []*pb.MedicationIntake{in},
		From: at("2024-07-01 00:00"), To: at("2024-07-04 00:00")})
	if err != nil {
		t.Fatal(err)
	}
	wins := h.finalWindows()
	for k, w := range wins {
		if w.DailyDue == 0 {
			continue // a retracted day: its window says nothing is due
		}
		if _, ok := ref.Windows[k]; !ok {
			t.Errorf("window %s (due %d, taken %d, 7d %v) has no due dose in the reference", k, w.DailyDue, w.DailyTaken, w.Ratio_7D)
		}
	}
	if open := h.openAlerts(pb.AlertType_LOW_ADHERENCE); len(open) != 0 {
		t.Errorf("LOW_ADHERENCE still open %v, but the only due dose (1 July) was taken (7-day ratio 1)", open)
	}
}

// TestTombstoneDeletesSchedule: onSchedule documents "A tombstone
// (nil value) deletes the schedule named by its key", but the group is
// built with goka.WithNilHandling(goka.NilProcess) in pipelines/processors:
// with goka's default NilIgnore, nil-valued records were dropped before any
// callback, and a schedule deleted on its compacted topic kept producing
// doses (and MISSED_DOSE alerts) forever.
func TestTombstoneDeletesSchedule(t *testing.T) {
	h := newHarness(t, at("2024-07-01 00:00"))
	s1 := schedFor("p", "m", "08:00")
	s1.EndDate = "2024-07-10"
	h.schedule(s1)
	h.setNow(at("2024-07-01 12:00"))
	h.tt.Consume(h.cfg.Topics.Schedules, "p|m", nil) // tombstone
	h.collect()
	h.tick(at("2024-07-02 09:00"))
	if o := h.final()[doseID("p", "m", "2024-07-02 08:00")]; o != nil {
		t.Fatalf("schedule deleted by a tombstone on 1 July still has a dose on 2 July: %s v%d", o.Outcome, o.Version)
	}
}

// TestReapplyAfterTombstone: with tombstones delivered,
// the group synthesizes the deletion as version latest+1 (2). A schedule
// written again afterwards with version 2 (the next version, "the highest
// wins") is then dropped as "a repeated version", and the patient has no
// doses.
func TestReapplyAfterTombstone(t *testing.T) {
	h := newHarness(t, at("2024-07-01 00:00"))
	s1 := schedFor("p", "m", "08:00")
	s1.EndDate = "2024-07-10"
	h.schedule(s1)
	h.setNow(at("2024-07-01 12:00"))
	h.tt.Consume(h.cfg.Topics.Schedules, "p|m", nil) // tombstone
	h.collect()
	s2 := schedFor("p", "m", "08:00")
	s2.EndDate, s2.Version = "2024-07-10", 2
	s2.Meta = &pb.Meta{Tenant: "t1", EventId: "s2", EventTimeMs: at("2024-07-01 18:00").UnixMilli()}
	h.setNow(at("2024-07-01 18:00"))
	h.schedule(s2)
	h.tick(at("2024-07-02 09:00"))
	if o := h.final()[doseID("p", "m", "2024-07-02 08:00")]; o.GetOutcome() != pb.Outcome_MISSED {
		t.Fatalf("2 July 08:00 under re-applied version 2: got %v, want MISSED", o)
	}
}

// TestFutureDeletionKeepsEarlierDoses: a deletion written ahead (the
// therapy ends on 5 July, announced on 1 July) is the latest version, but
// until its time the earlier version still defines the doses: the clock
// must go on materializing them and declaring the missed ones.
func TestFutureDeletionKeepsEarlierDoses(t *testing.T) {
	h := newHarness(t, at("2024-07-01 00:00"))
	s1 := schedFor("p", "m", "08:00")
	s1.EndDate = "2024-07-10"
	h.schedule(s1)
	del := schedFor("p", "m", "08:00")
	del.EndDate, del.Version, del.Deleted = "2024-07-10", 2, true
	del.Meta = &pb.Meta{Tenant: "t1", EventId: "del", EventTimeMs: at("2024-07-05 00:00").UnixMilli()}
	h.setNow(at("2024-07-01 01:00"))
	h.schedule(del)
	for d := 1; d <= 6; d++ {
		h.tick(at(fmt.Sprintf("2024-07-%02d 09:00", d)))
	}
	fin := h.final()
	for d := 1; d <= 4; d++ {
		if o := fin[doseID("p", "m", fmt.Sprintf("2024-07-%02d 08:00", d))]; o.GetOutcome() != pb.Outcome_MISSED {
			t.Errorf("2024-07-%02d 08:00, before the deletion's time: got %v, want MISSED", d, o)
		}
	}
	if o := fin[doseID("p", "m", "2024-07-05 08:00")]; o != nil {
		t.Errorf("2024-07-05 08:00, after the deletion: got %v, want no dose", o)
	}
}
