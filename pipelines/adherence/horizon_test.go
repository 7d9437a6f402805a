package adherence_test

import (
	"context"
	"testing"
	"time"

	"github.com/wardstream/wardstream/pipelines/adherence"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// visit runs the clock visitor at meta time at, leaving processing time
// (the clock messages read) where it is: the role's ticks and a message
// handled after a rebalance on another instance do not share one clock.
func (h *harness) visit(at time.Time) {
	if err := h.proc.VisitAll(context.Background(), adherence.VisitClock, at.UnixMilli()); err != nil {
		h.t.Fatal(err)
	}
	h.tt.Catchup()
	h.collect()
}

// TestPrunedDosesStayPruned: a visit whose clock runs ahead of the next
// message's (another instance after a rebalance, a tick ahead) prunes the
// doses just past the horizon: folded into the day counts, final. A
// schedule version written before them and arriving afterwards must not
// bring them back: a pruned dose materialized again starts over at
// version 1 (below what downstream holds) and counts twice in its day's
// windows.
func TestPrunedDosesStayPruned(t *testing.T) {
	h := newHarness(t, at("2024-06-30 12:00"))
	horizon := h.cfg.CorrectionHorizon
	s1 := schedFor("p", "m", "08:00")
	s1.EndDate = "2024-07-05"
	h.schedule(s1)
	for d := 1; d <= 5; d++ {
		h.tick(at("2024-07-01 09:00").AddDate(0, 0, d-1))
	}
	d1 := doseID("p", "m", "2024-07-01 08:00")
	if o := h.final()[d1]; o.GetOutcome() != pb.Outcome_MISSED || o.GetVersion() != 1 {
		t.Fatalf("setup: 1 July 08:00 %v, want MISSED v1", o)
	}
	// Processing time 1 July 06:00 + horizon: the 08:00 dose is 2 h
	// inside it. A visit 8 h ahead prunes it.
	now := at("2024-07-01 06:00").Add(horizon)
	h.setNow(now)
	h.visit(now.Add(8 * time.Hour))
	n := len(h.outs)
	// Version 2, written on 30 June (grace 20 min), arrives now.
	s2 := schedFor("p", "m", "08:00")
	s2.EndDate, s2.Version, s2.GraceMinutes = "2024-07-05", 2, 20
	s2.Meta = &pb.Meta{Tenant: "t1", EventId: "s2", EventTimeMs: at("2024-06-30 13:00").UnixMilli()}
	h.schedule(s2)
	for _, o := range h.outs[n:] {
		if o.DoseId == d1 {
			t.Errorf("pruned dose emitted again: %s v%d", o.Outcome, o.Version)
		}
	}
	h.tick(now.Add(9 * time.Hour))
	for k, w := range h.finalWindows() {
		if w.DailyDue > 1 || w.Due_7D > 5 {
			t.Errorf("window %s: daily due %d, 7-day due %d (one dose a day, five days)", k, w.DailyDue, w.Due_7D)
		}
	}
	h.final() // versions only grow
}

// TestIntakeForPrunedDoseIsDeadLettered: an intake that could only match
// a dose older than the correction horizon (pruned, its MISSED final) is
// dead-lettered (beyond_correction_horizon): it must neither correct the
// dose nor become an EXTRA intake, which it is not.
func TestIntakeForPrunedDoseIsDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		intake string // local intake time, in the 08:00 dose's window
	}{
		{"late", "2024-07-01 09:00"},
		{"on time", "2024-07-01 08:10"},
		{"early", "2024-07-01 07:30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, at("2024-06-30 12:00"))
			s1 := schedFor("p", "m", "08:00")
			s1.EndDate = "2024-07-05"
			h.schedule(s1)
			h.tick(at("2024-07-01 09:00"))
			// Just past the horizon of the 08:00 dose: pruned.
			h.tick(at("2024-07-01 08:01").Add(h.cfg.CorrectionHorizon))
			h.intake(intake("late", "p", "m", at(tc.intake), "taken"))
			h.tick(at("2024-07-01 08:02").Add(h.cfg.CorrectionHorizon))
			for id, o := range h.final() {
				if o.Outcome == pb.Outcome_EXTRA || o.IntakeEventId == "late" {
					t.Errorf("intake for a pruned dose: %s %s (intake %s)", id, o.Outcome, o.IntakeEventId)
				}
			}
			if len(h.dlq) != 1 || h.dlq[0].Reason != "beyond_correction_horizon" {
				t.Errorf("dead letters %v, want the intake (beyond_correction_horizon)", h.dlq)
			}
		})
	}
}
