package alerts_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestAnomalySeverityRaiseReachesAlert runs the anomaly group in front of
// the alerts group: a device severity of 7 (HIGH) then one of 9
// (CRITICAL) in the same episode must raise the open alert's priority
// (the example the alerts package documents). The anomaly group numbers
// every OPEN of an episode 1, so the alerts group judges the second one
// stale and the priority raise never happens.
func TestAnomalySeverityRaiseReachesAlert(t *testing.T) {
	// The anomaly group, in its own tester: its alert requests are
	// collected and then fed to the alerts group as they would arrive.
	tt := tester.New(t)
	an, err := anomaly.New(anomaly.DefaultConfig(), anomaly.WithClock(func() time.Time { return time.UnixMilli(1e12) }))
	if err != nil {
		t.Fatal(err)
	}
	proc, err := goka.NewProcessor(nil, an.Graph(), goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	// A visit (the clock) before every partition table runs fails with
	// "error creating storage iterator": wait for the processor first.
	if err := proc.WaitForReady(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	reqs := tt.NewQueueTracker(anomaly.DefaultConfig().Topics.AlertRequests)
	sev := func(id string, ev int64, s int32) {
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: ev},
			DeviceId: "pump-1", Kind: "alerts", Severity: s}
		b, _ := codec.Marshal(v)
		tt.Consume(anomaly.DefaultConfig().Topics.Vitals, "pump-1", b)
	}
	sev("a", 60_000, 7)  // HIGH alert opens
	sev("b", 120_000, 9) // same episode, CRITICAL: the alert must become CRITICAL

	h := newHarness(t)
	var sent []string
	for {
		k, v, ok := reqs.Next()
		if !ok {
			break
		}
		a := v.(*pb.Alert)
		sent = append(sent, fmt.Sprintf("%s %s rv%d", a.State, a.Priority, a.RequestVersion))
		b, _ := codec.Marshal(a)
		h.tt.Consume(h.cfg.Topics.Requests, k, b)
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
	if want := "[OPEN HIGH v1 OPEN CRITICAL v2]"; fmt.Sprint(got) != want {
		t.Fatalf("severity 7 then 9 in one episode (requests %v):\n got %v\nwant %s", sent, got, want)
	}
}

// TestAcknowledgedConditionAlertResolvesAfterRetention: a condition alert
// (here LOW_ADHERENCE; likewise DEVICE_OFFLINE, LOW_BATTERY, VITALS_*)
// acknowledged and still ongoing more than ResolvedRetention after the
// ack is pruned from the table, so the detector's RESOLVED request, when
// the condition finally ends, finds nothing and is dropped: the alert
// stays ACKNOWLEDGED downstream for good.
func TestAcknowledgedConditionAlertResolvesAfterRetention(t *testing.T) {
	h := newHarness(t)
	req := func(state pb.AlertState, rv int64) string {
		a := alerts.Request("t1", pb.AlertType_LOW_ADHERENCE, pb.Priority_MEDIUM, state, alerts.SubjectPatient, "p1", "m1|2024-03-01", time.UnixMilli(0), time.UnixMilli(h.now.Load()))
		a.RequestVersion = rv
		b, _ := codec.Marshal(a)
		h.tt.Consume(h.cfg.Topics.Requests, a.AlertId, b)
		return a.AlertId
	}
	id := req(pb.AlertState_OPEN, 5)
	h.ack(id)
	h.tick(h.now.Load() + h.cfg.ResolvedRetention.Milliseconds() + 3_600_000) // still low 7 days after the ack
	req(pb.AlertState_RESOLVED, 9)                                            // adherence recovers
	if got := fmt.Sprint(h.drain()); got != "[OPEN v1 L0 ACKNOWLEDGED v2 L0 RESOLVED v3 L0]" {
		t.Fatalf("acknowledged LOW_ADHERENCE resolved after the retention:\n got %s\nwant [OPEN v1 L0 ACKNOWLEDGED v2 L0 RESOLVED v3 L0]", got)
	}
}

// TestPrunedAcknowledgedAlertVersionsGoBack: a discrete device alert
// acknowledged and pruned ResolvedRetention after the ack, whose episode
// goes on (the detector repeats its OPEN, numbered 1 like every OPEN of
// the episode), is raised again from version 1: downstream, where the
// highest version of an alert id wins (argMax(state, version) in
// bi_alerts, the API), the new OPEN v1 is hidden behind the old
// ACKNOWLEDGED v2.
func TestPrunedAcknowledgedAlertVersionsGoBack(t *testing.T) {
	h := newHarness(t)
	req := h.pumpFailure
	id := req()
	h.ack(id)
	h.tick(h.now.Load() + h.cfg.ResolvedRetention.Milliseconds() + 3_600_000)
	req()
	got := h.drain()
	if len(got) == 3 && got[2] == "OPEN v1 L0" {
		t.Fatalf("alert %s after its pruning: %v (version 1 after version 2 of the same id)", id, got)
	}
}

// TestRepeatedRequestsKeepResolvedAlert: a discrete device alert whose
// episode goes on (the pump keeps reporting its failure, each report an
// OPEN numbered 1) is acknowledged, then resolved by the clock the
// retention after the ack. While the reports keep coming it must stay in
// the table, so they are recognized as the applied request: pruned the
// retention after its resolution, the next report raised the alert again
// from version 1 (v1 after v3 of the same id: hidden downstream, and
// escalated and notified again for one failure). Once the reports stop, it
// is pruned the retention after the last one.
func TestRepeatedRequestsKeepResolvedAlert(t *testing.T) {
	h := newHarness(t)
	day := int64(24 * time.Hour / time.Millisecond)
	req := h.pumpFailure
	id := req()
	h.ack(id)
	start := h.now.Load()
	for d := int64(1); d <= 20; d++ {
		h.tick(start + d*day)
		req()
	}
	if got := fmt.Sprint(h.drain()); got != "[OPEN v1 L0 ACKNOWLEDGED v2 L0 RESOLVED v3 L0]" {
		t.Fatalf("pump failure reported daily for 20 days after its ack:\n got %s\nwant [OPEN v1 L0 ACKNOWLEDGED v2 L0 RESOLVED v3 L0]", got)
	}
	table := goka.GroupTable(goka.Group(h.cfg.Group))
	h.tick(start + 26*day)
	if h.tt.TableValue(table, id) == nil {
		t.Fatal("resolved alert pruned within the retention of its last request")
	}
	h.tick(start + 28*day)
	if v := h.tt.TableValue(table, id); v != nil {
		t.Fatalf("resolved alert kept the retention after its last request: %v", v)
	}
}

// pumpFailure requests pump-1's failure alert of the episode at 60 s, OPEN
// and numbered 1 as the anomaly group numbers every OPEN of an episode,
// and returns its id.
func (h *harness) pumpFailure() string {
	a := alerts.Request("t1", pb.AlertType_PUMP_FAILURE, pb.Priority_CRITICAL, pb.AlertState_OPEN, alerts.SubjectDevice, "pump-1", "60000", time.UnixMilli(60_000), time.UnixMilli(h.now.Load()))
	a.RequestVersion = 1
	b, _ := codec.Marshal(a)
	h.tt.Consume(h.cfg.Topics.Requests, a.AlertId, b)
	return a.AlertId
}
