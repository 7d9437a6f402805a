package alerts_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/internal/gokalog"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func TestIDIsDeterministic(t *testing.T) {
	a := alerts.ID(pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, "p1", "m1|1000|0")
	if a != "MISSED_DOSE|patient|p1|m1|1000|0" || a != alerts.ID(pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, "p1", "m1|1000|0") {
		t.Fatalf("id %q", a)
	}
	if a == alerts.ID(pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, "p1", "m1|1000|1") {
		t.Fatal("different windows share an id")
	}
}

type harness struct {
	t    *testing.T
	tt   *tester.Tester
	proc *goka.Processor
	cfg  alerts.Config
	now  atomic.Int64
	out  *tester.QueueTracker
	dlq  *tester.QueueTracker
	// first is the first version emitted per alert id (see [harness.v]).
	first map[string]int64
}

// v returns a's version counted from the first version the harness saw
// emitted for its id (1 for it): a new alert's first version is the time
// it was raised in ms, and the tests compare the changes.
func (h *harness) v(a *pb.Alert) int64 {
	if h.first == nil {
		h.first = map[string]int64{}
	}
	f, ok := h.first[a.AlertId]
	if !ok {
		f = a.Version
		h.first[a.AlertId] = f
	}
	return a.Version - f + 1
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, cfg: alerts.DefaultConfig()}
	h.now.Store(1_000_000)
	p, err := alerts.New(h.cfg, alerts.WithClock(func() time.Time { return time.UnixMilli(h.now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	h.tt = tester.New(t)
	h.proc, err = goka.NewProcessor(nil, p.Graph(), goka.WithTester(h.tt), goka.WithLogger(gokalog.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.proc.Run(ctx) }()
	// A visit (the clock) before every partition table runs fails with
	// "error creating storage iterator": wait for the processor first.
	if err := h.proc.WaitForReady(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	h.out = h.tt.NewQueueTracker(h.cfg.Topics.Alerts)
	h.dlq = h.tt.NewQueueTracker(h.cfg.Topics.DeadLetters)
	return h
}

func (h *harness) request(state pb.AlertState, window string, pr pb.Priority) string {
	a := alerts.Request("t1", pb.AlertType_MISSED_DOSE, pr, state, alerts.SubjectPatient, "p1", window, time.UnixMilli(0), time.UnixMilli(h.now.Load()))
	b, _ := codec.Marshal(a)
	h.tt.Consume(h.cfg.Topics.Requests, a.AlertId, b)
	return a.AlertId
}

func (h *harness) ack(id string) {
	b, _ := codec.Marshal(&pb.AlertAck{Meta: &pb.Meta{EventId: "ack-" + id, EventTimeMs: h.now.Load()}, AlertId: id, User: "nurse-1"})
	h.tt.Consume(h.cfg.Topics.Acks, id, b)
}

func (h *harness) tick(ms int64) {
	h.now.Store(ms)
	if err := h.proc.VisitAll(context.Background(), alerts.VisitEscalate, ms); err != nil {
		h.t.Fatal(err)
	}
	h.tt.Catchup()
}

func (h *harness) drain() []string {
	var out []string
	for {
		k, v, ok := h.out.Next()
		if !ok {
			return out
		}
		a := v.(*pb.Alert)
		if a.Meta.EventId != fmt.Sprintf("%s@%d", a.AlertId, a.Version) || k != a.SubjectId {
			h.t.Fatalf("alert record id/key: %s %v", k, a.Meta)
		}
		out = append(out, fmt.Sprintf("%s v%d L%d", a.State, h.v(a), a.EscalationLevel))
	}
}

func TestLifecycle(t *testing.T) {
	min := int64(60_000)
	cases := []struct {
		name  string
		steps func(h *harness)
		want  string
	}{
		{"open then suppressed while open", func(h *harness) {
			h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH)
			h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH)
			h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH)
		}, "[OPEN v1 L0]"},
		{"resolve and reopen", func(h *harness) {
			h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH)
			h.request(pb.AlertState_RESOLVED, "w", pb.Priority_HIGH)
			h.request(pb.AlertState_RESOLVED, "w", pb.Priority_HIGH)
			h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH)
		}, "[OPEN v1 L0 RESOLVED v2 L0 OPEN v3 L0]"},
		{"escalates after SLA, again after each SLA, up to the max", func(h *harness) {
			h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH) // opened at 1_000_000
			h.tick(1_000_000 + 15*min - 1)
			h.tick(1_000_000 + 15*min)
			h.tick(1_000_000 + 20*min)
			h.tick(1_000_000 + 30*min)
			h.tick(1_000_000 + 45*min)
			h.tick(1_000_000 + 600*min)
		}, "[OPEN v1 L0 ESCALATED v2 L1 ESCALATED v3 L2 ESCALATED v4 L3]"},
		{"ack stops escalation", func(h *harness) {
			id := h.request(pb.AlertState_OPEN, "w", pb.Priority_CRITICAL)
			h.tick(1_000_000 + 4*min)
			h.ack(id)
			h.tick(1_000_000 + 60*min)
			h.ack(id)
			h.request(pb.AlertState_OPEN, "w", pb.Priority_CRITICAL) // still suppressed while acknowledged
		}, "[OPEN v1 L0 ACKNOWLEDGED v2 L0]"},
		{"ack after escalation", func(h *harness) {
			id := h.request(pb.AlertState_OPEN, "w", pb.Priority_CRITICAL)
			h.tick(1_000_000 + 5*min)
			h.ack(id)
			h.request(pb.AlertState_RESOLVED, "w", pb.Priority_CRITICAL)
		}, "[OPEN v1 L0 ESCALATED v2 L1 ACKNOWLEDGED v3 L1 RESOLVED v4 L1]"},
		{"resolved alerts do not escalate", func(h *harness) {
			h.request(pb.AlertState_OPEN, "w", pb.Priority_LOW)
			h.request(pb.AlertState_RESOLVED, "w", pb.Priority_LOW)
			h.tick(1_000_000 + 600*min)
		}, "[OPEN v1 L0 RESOLVED v2 L0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			c.steps(h)
			if got := fmt.Sprint(h.drain()); got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestUnknownAckDeadLettered(t *testing.T) {
	h := newHarness(t)
	h.ack("nope")
	if _, v, ok := h.dlq.Next(); !ok || v.(*pb.DeadLetter).Reason != "unknown_alert" {
		t.Fatalf("want unknown_alert dead letter, got %v", v)
	}
}

func TestResolvedAlertsArePrunedAfterRetention(t *testing.T) {
	h := newHarness(t)
	id := h.request(pb.AlertState_OPEN, "w", pb.Priority_HIGH)
	h.request(pb.AlertState_RESOLVED, "w", pb.Priority_HIGH)
	h.tick(1_000_000 + int64(6*24*time.Hour/time.Millisecond))
	if h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), id) == nil {
		t.Fatal("resolved alert pruned before its retention")
	}
	h.tick(1_000_000 + int64(8*24*time.Hour/time.Millisecond))
	if v := h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), id); v != nil {
		t.Fatalf("resolved alert kept after its retention: %v", v)
	}
}

// TestAcknowledgedDiscreteAlertsResolveAfterRetention: discrete device
// alerts are acknowledged, never resolved by their detector; the clock
// resolves them the retention after their ack (a new version, so
// downstream sees them closed), and prunes them the retention after that.
// An acknowledged condition alert is left to its detector.
func TestAcknowledgedDiscreteAlertsResolveAfterRetention(t *testing.T) {
	for _, c := range []struct {
		typ               pb.AlertType
		subjType, subject string
	}{
		{pb.AlertType_PUMP_FAILURE, alerts.SubjectDevice, "pump-1"},
		// The correlation group raises it per camera event; nothing
		// resolves it either.
		{pb.AlertType_UNAUTHORIZED_ACCESS_ALERT, "camera", "cam-2"},
		// Resolved by the adherence group only while a late intake can
		// still correct its dose; afterwards nothing would, and every
		// finally missed dose would stay in the table.
		{pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, "p-7"},
	} {
		t.Run(c.typ.String(), func(t *testing.T) { discreteRetention(t, c.typ, c.subjType, c.subject) })
	}
}

func discreteRetention(t *testing.T, typ pb.AlertType, subjType, subject string) {
	h := newHarness(t)
	a := alerts.Request("t1", typ, pb.Priority_CRITICAL, pb.AlertState_OPEN, subjType, subject, "1000", time.UnixMilli(1000), time.UnixMilli(h.now.Load()))
	b, _ := codec.Marshal(a)
	h.tt.Consume(h.cfg.Topics.Requests, a.AlertId, b)
	h.ack(a.AlertId)
	c := alerts.Request("t1", pb.AlertType_LOW_ADHERENCE, pb.Priority_MEDIUM, pb.AlertState_OPEN, alerts.SubjectPatient, "p1", "m1|2024-03-01", time.UnixMilli(0), time.UnixMilli(h.now.Load()))
	cb, _ := codec.Marshal(c)
	h.tt.Consume(h.cfg.Topics.Requests, c.AlertId, cb)
	cond := c.AlertId
	h.ack(cond)
	table := goka.GroupTable(goka.Group(h.cfg.Group))
	h.tick(1_000_000 + int64(6*24*time.Hour/time.Millisecond))
	if v, ok := h.tt.TableValue(table, a.AlertId).(*pb.Alert); !ok || v.State != pb.AlertState_ACKNOWLEDGED {
		t.Fatalf("acknowledged discrete alert before its retention: %v", h.tt.TableValue(table, a.AlertId))
	}
	h.tick(1_000_000 + int64(8*24*time.Hour/time.Millisecond))
	h.drain()
	if v, ok := h.tt.TableValue(table, a.AlertId).(*pb.Alert); !ok || v.State != pb.AlertState_RESOLVED || h.v(v) != 3 {
		t.Fatalf("acknowledged discrete alert after its retention: %v, want RESOLVED v3", h.tt.TableValue(table, a.AlertId))
	}
	if v, ok := h.tt.TableValue(table, cond).(*pb.Alert); !ok || v.State != pb.AlertState_ACKNOWLEDGED {
		t.Fatalf("acknowledged condition alert changed by the clock: %v", h.tt.TableValue(table, cond))
	}
	h.tick(1_000_000 + int64(16*24*time.Hour/time.Millisecond))
	if v := h.tt.TableValue(table, a.AlertId); v != nil {
		t.Fatalf("resolved discrete alert kept after the retention: %v", v)
	}
}
