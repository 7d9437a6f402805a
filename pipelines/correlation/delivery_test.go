package correlation_test

import (
	"testing"

	"github.com/wardstream/wardstream/pipelines/correlation"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// allVerified drains the intake tracker and returns every verified record
// (event id, verification) in order, duplicates included.
func (h *harness) allVerified() [][2]string {
	var out [][2]string
	for {
		_, v, ok := h.intakes.Next()
		if !ok {
			return out
		}
		in := &pb.MedicationIntake{}
		if err := codec.Unmarshal(v.([]byte), in); err != nil {
			continue
		}
		if in.Verification != "" {
			out = append(out, [2]string{in.Meta.EventId, in.Verification})
		}
	}
}

// TestDuplicateIntakeVerifiedOnce: goka is at least once (a restart
// re-reads uncommitted intakes after the table already holds them as
// pending) and pillcases retry; the same intake (same event id) delivered
// twice while its window is open must be decided once, not re-emitted per
// copy, and must not sit twice in the zone's pending list.
func TestDuplicateIntakeVerifiedOnce(t *testing.T) {
	h := newHarness(t)
	h.intake("i1", "Room 1", t0)
	h.intake("i1", "Room 1", t0) // redelivered
	h.person("cam-1", "ward-1/room-1", t0+30_000, 0.9)
	h.tt.Catchup()
	got := h.allVerified()
	if len(got) != 1 {
		t.Fatalf("intake i1 re-emitted %d times: %v; want one verified record", len(got), got)
	}
}

// TestBacklogAfterRestart: after a restart (or any consumer lag) the
// group reads a few minutes of backlog. The verdict of an intake must not
// depend on how late the group processes it: the same records processed
// live confirm the intake.
func TestBacklogAfterRestart(t *testing.T) {
	const min = int64(60_000)
	t.Run("live", func(t *testing.T) {
		h := newHarness(t)
		h.now.Store(t0 - min)
		h.person("cam-1", "ward-1/room-1", t0-min, 0.9)
		h.now.Store(t0)
		h.intake("i1", "Room 1", t0)
		h.now.Store(t0 + 150_000)
		h.person("cam-1", "ward-1/room-1", t0+150_000, 0.9)
		h.tt.Catchup()
		if got := h.verified(); got["i1"] != correlation.CameraConfirmed {
			t.Fatalf("live: %v", got)
		}
	})
	t.Run("sightings first, processed 5 minutes late", func(t *testing.T) {
		h := newHarness(t)
		h.now.Store(t0 + 5*min) // the group catches up after a restart
		h.person("cam-1", "ward-1/room-1", t0-min, 0.9)
		h.person("cam-1", "ward-1/room-1", t0+150_000, 0.9)
		h.intake("i1", "Room 1", t0)
		h.tt.Catchup()
		if got := h.verified(); got["i1"] != correlation.CameraConfirmed {
			t.Fatalf("backlog: %v, want i1 CAMERA_CONFIRMED (a person was seen 1 min before it)", got)
		}
	})
	t.Run("intake first, processed 5 minutes late", func(t *testing.T) {
		h := newHarness(t)
		h.now.Store(t0 + 5*min)
		h.intake("i1", "Room 1", t0)
		h.person("cam-1", "ward-1/room-1", t0-min, 0.9) // detections topic read right after
		h.tt.Catchup()
		if got := h.verified(); got["i1"] != correlation.CameraConfirmed {
			t.Fatalf("backlog: %v, want i1 CAMERA_CONFIRMED (a person was seen 1 min before it)", got)
		}
	})
}

// TestRedeliveredIntakeKeepsItsVerdict: an intake confirmed live and
// delivered again later (pillcase retry, replay from an older offset) must
// not be re-emitted with a contradicting verification under the same event
// id: downstream "keeps the one with a verification" and now has two.
func TestRedeliveredIntakeKeepsItsVerdict(t *testing.T) {
	h := newHarness(t)
	h.person("cam-1", "ward-1/room-1", t0, 0.9)
	h.intake("i1", "Room 1", t0)
	h.now.Store(t0 + 10*60_000)
	h.person("cam-1", "ward-1/room-1", t0+10*60_000, 0.9) // the room stays busy; old sightings trimmed
	h.intake("i1", "Room 1", t0)                          // redelivered
	h.tt.Catchup()
	got := h.allVerified()
	for _, g := range got {
		if g[1] != correlation.CameraConfirmed {
			t.Fatalf("intake i1 emitted as %v: contradicting verdicts for one event id", got)
		}
	}
}

// TestFutureIntakeKeepsVerdicts: an intake stamped by a pillcase clock days
// ahead must not wipe the zone's remembered verdicts, so a redelivery of
// an earlier intake keeps its verdict.
func TestFutureIntakeKeepsVerdicts(t *testing.T) {
	h := newHarness(t)
	h.person("cam-1", "ward-1/room-1", t0, 0.9)
	h.intake("i1", "Room 1", t0)
	h.intake("far", "Room 1", t0+10*24*3600_000) // a clock ten days ahead
	h.sweep(t0 + 11*60_000)                      // max_wait passed: "far" is decided UNVERIFIED
	h.person("cam-1", "ward-1/room-1", t0+11*60_000, 0.9)
	h.intake("i1", "Room 1", t0) // redelivered
	h.tt.Catchup()
	for _, g := range h.allVerified() {
		if g[0] == "i1" && g[1] != correlation.CameraConfirmed {
			t.Fatalf("intake i1 emitted as %v after a far-future intake: %v", g[1], h.allVerified())
		}
	}
}
