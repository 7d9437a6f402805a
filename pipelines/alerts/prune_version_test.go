package alerts_test

import (
	"testing"

	"github.com/lovoo/goka"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestVersionsGrowAcrossPruning: a resolved alert leaves the table after
// the retention; a later request for the same deterministic id (a late
// report of an earlier device episode, a newer numbered request, an
// unnumbered detector) raises it again. Downstream keeps the highest
// version of an alert id (ReplacingMergeTree(version), argMax in
// bi_alerts, the API), so the new alert's versions must be above every
// version the pruned one was emitted with, or the old RESOLVED row hides
// the new OPEN.
func TestVersionsGrowAcrossPruning(t *testing.T) {
	O, R, H := pb.AlertState_OPEN, pb.AlertState_RESOLVED, pb.Priority_HIGH
	for _, tc := range []struct {
		name   string
		before []int64 // request versions before the pruning: odd OPEN, even RESOLVED
		after  int64   // the OPEN after it
	}{
		{"numbered", []int64{1, 2}, 3},
		{"re-opened before", []int64{1, 2, 3, 4}, 5},
		{"unnumbered", []int64{0, 0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var last int64
			emitted := func() {
				for {
					_, v, ok := h.out.Next()
					if !ok {
						return
					}
					a := v.(*pb.Alert)
					if a.Version <= last {
						t.Fatalf("%s emitted with version %d after version %d of the same id", a.State, a.Version, last)
					}
					last = a.Version
				}
			}
			for i, rv := range tc.before {
				st := O
				if i%2 == 1 {
					st = R
				}
				h.numbered(st, H, rv)
				h.now.Add(60_000)
			}
			emitted()
			h.tick(h.now.Load() + h.cfg.ResolvedRetention.Milliseconds() + 3_600_000)
			table := goka.GroupTable(goka.Group(h.cfg.Group))
			if v := h.tt.TableValue(table, "MISSED_DOSE|patient|p1|w"); v != nil {
				t.Fatalf("resolved alert not pruned: %v", v)
			}
			h.numbered(O, H, tc.after)
			before := last
			emitted()
			if last == before {
				t.Fatal("the OPEN after the pruning emitted nothing")
			}
		})
	}
}
