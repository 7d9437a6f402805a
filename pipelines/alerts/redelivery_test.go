package alerts_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// numbered sends a request numbered rv by its detector.
func (h *harness) numbered(state pb.AlertState, pr pb.Priority, rv int64) {
	a := alerts.Request("t1", pb.AlertType_MISSED_DOSE, pr, state, alerts.SubjectPatient, "p1", "w", time.UnixMilli(0), time.UnixMilli(h.now.Load()))
	a.RequestVersion = rv
	b, _ := codec.Marshal(a)
	h.tt.Consume(h.cfg.Topics.Requests, a.AlertId, b)
}

// TestRedeliveredRequests: goka is at least once; after a crash between
// the table write and the offset commit the requests are read again, and a
// detector replaying its input asks again. Numbered requests at or below
// what the alert applied change nothing, so one episode is not notified
// twice; a newer request re-opens as before, and unnumbered requests keep
// the plain rules.
func TestRedeliveredRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		reqs []int64 // request versions: odd OPEN, even RESOLVED
		want string
	}{
		{"replay after resolve", []int64{1, 2, 1, 2}, "[OPEN v1 L0 RESOLVED v2 L0]"},
		{"replayed open while open", []int64{1, 1}, "[OPEN v1 L0]"},
		{"late duplicate of the open", []int64{1, 2, 1}, "[OPEN v1 L0 RESOLVED v2 L0]"},
		{"newer request re-opens", []int64{1, 2, 1, 3}, "[OPEN v1 L0 RESOLVED v2 L0 OPEN v3 L0]"},
		{"unnumbered re-opens", []int64{0, 0, 0}, "[OPEN v1 L0 RESOLVED v2 L0 OPEN v3 L0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for i, rv := range tc.reqs {
				st := pb.AlertState_OPEN
				if rv%2 == 0 && rv > 0 || rv == 0 && i%2 == 1 {
					st = pb.AlertState_RESOLVED
				}
				h.numbered(st, pb.Priority_HIGH, rv)
			}
			if got := fmt.Sprint(h.drain()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestPriorityRaise: a request for the open alert with a higher priority
// (the anomaly group sends DEVICE_SEVERITY as HIGH for severity 6-8 and
// CRITICAL for 9-10, under one episode id) raises the alert's priority, so
// it escalates at the CRITICAL SLA; a lower priority changes nothing.
func TestPriorityRaise(t *testing.T) {
	h := newHarness(t)
	send := func(pr pb.Priority) {
		a := alerts.Request("t1", pb.AlertType_DEVICE_SEVERITY, pr, pb.AlertState_OPEN, alerts.SubjectDevice, "pump-1", "1000", time.UnixMilli(1000), time.UnixMilli(h.now.Load()))
		b, _ := codec.Marshal(a)
		h.tt.Consume(h.cfg.Topics.Requests, a.AlertId, b)
	}
	send(pb.Priority_HIGH)
	send(pb.Priority_CRITICAL)
	send(pb.Priority_HIGH)
	h.tick(1_000_000 + 5*60_000) // CRITICAL SLA
	if got := fmt.Sprint(h.drain()); got != "[OPEN v1 L0 OPEN v2 L0 ESCALATED v3 L1]" {
		t.Fatalf("CRITICAL request for an open HIGH alert:\n got %s\nwant [OPEN v1 L0 OPEN v2 L0 ESCALATED v3 L1] (priority raised, escalated at the CRITICAL SLA)", got)
	}
}

// TestStaleRequestDoesNotRaisePriority: a numbered request below the
// number the alert applied is a redelivery and changes nothing, also when
// it asks for a higher priority: after a restart, the OPEN that raised an
// earlier opening of the alert must not raise the re-opened alert. A
// raise numbered like the applied request (anomaly numbers every OPEN of
// an episode 1) still raises.
func TestStaleRequestDoesNotRaisePriority(t *testing.T) {
	type req struct {
		st pb.AlertState
		pr pb.Priority
		rv int64
	}
	O, R, H, C := pb.AlertState_OPEN, pb.AlertState_RESOLVED, pb.Priority_HIGH, pb.Priority_CRITICAL
	for _, tc := range []struct {
		name string
		reqs []req
		want string
	}{
		{"raise with the applied number", []req{{O, H, 1}, {O, C, 1}}, "[OPEN HIGH v1 OPEN CRITICAL v2]"},
		{"redelivered raise after re-open", []req{{O, H, 1}, {O, C, 1}, {R, H, 2}, {O, H, 3}, {O, H, 1}, {O, C, 1}, {R, H, 2}},
			"[OPEN HIGH v1 OPEN CRITICAL v2 RESOLVED CRITICAL v3 OPEN HIGH v4]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, r := range tc.reqs {
				h.numbered(r.st, r.pr, r.rv)
			}
			var got []string
			for {
				_, v, ok := h.out.Next()
				if !ok {
					break
				}
				a := v.(*pb.Alert)
				got = append(got, fmt.Sprintf("%s %s v%d", a.State, a.Priority, h.v(a)))
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("got  %v\nwant %s", got, tc.want)
			}
		})
	}
}

// TestRedeliveredAckAfterReopen: an ack is read again after a restart
// (goka is at least once) when the alert has since been resolved and
// re-opened; made before the alert opened again, it acknowledged the
// earlier opening and must not acknowledge the new one (which would then
// never escalate). An ack made after the re-opening acknowledges it.
func TestRedeliveredAckAfterReopen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ackAt int64 // ack event time, relative to the re-opening
		want  string
	}{
		{"ack of the earlier opening redelivered", -2000, "[OPEN v1 L0 ACKNOWLEDGED v2 L0 RESOLVED v3 L0 OPEN v4 L0]"},
		{"ack of the re-opened alert", 1000, "[OPEN v1 L0 ACKNOWLEDGED v2 L0 RESOLVED v3 L0 OPEN v4 L0 ACKNOWLEDGED v5 L0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := alerts.ID(pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, "p1", "w")
			h.numbered(pb.AlertState_OPEN, pb.Priority_HIGH, 1)
			h.now.Add(1000)
			h.ack(id)
			h.now.Add(2000)
			h.numbered(pb.AlertState_RESOLVED, pb.Priority_HIGH, 2)
			h.numbered(pb.AlertState_OPEN, pb.Priority_HIGH, 3)
			reopened := h.now.Load()
			b, _ := codec.Marshal(&pb.AlertAck{Meta: &pb.Meta{EventId: "ack-" + id, EventTimeMs: reopened + tc.ackAt}, AlertId: id, User: "nurse-1"})
			h.tt.Consume(h.cfg.Topics.Acks, id, b)
			if got := fmt.Sprint(h.drain()); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
