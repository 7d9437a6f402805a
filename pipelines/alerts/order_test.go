package alerts_test

import (
	"strings"
	"testing"

	"github.com/lovoo/goka"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestResolvedBeforeOpen: a detector's numbered RESOLVED can reach the
// group before the OPEN it follows (a zombie producer's OPEN delivered
// after the new owner's RESOLVED, or another detector instance), and
// arrival order must not change the final result: the alert must not be
// left open by an OPEN numbered below the RESOLVED already seen.
func TestResolvedBeforeOpen(t *testing.T) {
	O, R, H := pb.AlertState_OPEN, pb.AlertState_RESOLVED, pb.Priority_HIGH
	type req struct {
		st pb.AlertState
		rv int64
	}
	for _, tc := range []struct {
		name string
		reqs []req
		want pb.AlertState // final state in the table and downstream
	}{
		{"in order", []req{{O, 2}, {R, 3}}, R},
		{"resolved first", []req{{R, 3}, {O, 2}}, R},
		{"resolved first, open redelivered", []req{{R, 3}, {O, 2}, {O, 2}, {R, 3}}, R},
		{"resolved first, newer open re-opens", []req{{R, 3}, {O, 2}, {O, 4}}, O},
		{"newer open after an early resolve", []req{{R, 3}, {O, 4}}, O},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, r := range tc.reqs {
				h.numbered(r.st, H, r.rv)
			}
			got := h.drain()
			id := "MISSED_DOSE|patient|p1|w"
			v, _ := h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), id).(*pb.Alert)
			if v == nil || v.State != tc.want {
				t.Fatalf("table: %v, want state %s (emitted %v)", v, tc.want, got)
			}
			if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], tc.want.String()+" ") {
				t.Fatalf("emitted %v, want the last record %s", got, tc.want)
			}
		})
	}
}
