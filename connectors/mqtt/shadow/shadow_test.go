package shadow_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardstream/wardstream/connectors/mqtt/shadow"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

type harness struct {
	t      *testing.T
	tt     *tester.Tester
	proc   *goka.Processor
	mu     sync.Mutex
	now    time.Time
	pushed []map[string]any
	shQ    *tester.QueueTracker
	stQ    *tester.QueueTracker
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	p, err := shadow.New(shadow.Config{Group: "g", OfflineAfter: 5 * time.Minute, CheckInterval: time.Second, Tenant: "t0", Now: h.clock},
		func(_ context.Context, dev string, body []byte) error {
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("delta body: %v", err)
			}
			m["device"] = dev
			h.mu.Lock()
			h.pushed = append(h.pushed, m)
			h.mu.Unlock()
			return nil
		}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h.tt = tester.New(t)
	h.proc, err = goka.NewProcessor(nil, p.Graph(), goka.WithTester(h.tt), goka.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	h.shQ = h.tt.NewQueueTracker(topics.Shadows)
	h.stQ = h.tt.NewQueueTracker(topics.DeviceStatus)
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

func (h *harness) status(dev string, online bool, reported map[string]any) {
	st := &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: h.clock().UnixMilli(), IngestTimeMs: h.clock().UnixMilli()}, DeviceId: dev, Online: online}
	if reported != nil {
		st.Reported, _ = structpb.NewStruct(reported)
	}
	h.tt.Consume(topics.DeviceStatus, dev, st)
}

func (h *harness) desired(dev string, args ...string) {
	d, err := shadow.ParseDesired(args)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(topics.ShadowDesired, dev, &pb.DeviceShadow{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: h.clock().UnixMilli()}, DeviceId: dev, Desired: d})
}

func (h *harness) shadows() []*pb.DeviceShadow {
	var out []*pb.DeviceShadow
	for {
		_, v, ok := h.shQ.Next()
		if !ok {
			return out
		}
		out = append(out, v.(*pb.DeviceShadow))
	}
}

func TestShadowLifecycle(t *testing.T) {
	h := newHarness(t)
	h.status("d1", true, map[string]any{"reminderEnabled": false, "firmwareVersion": "2.1.0"})
	sh := h.shadows()
	if len(sh) != 1 || sh[0].Version != 1 || !sh[0].Online || len(sh[0].Delta.GetFields()) != 0 {
		t.Fatalf("after first status: %v", sh)
	}
	if len(h.pushed) != 0 {
		t.Fatalf("no desired state yet, but pushed %v", h.pushed)
	}

	h.desired("d1", "reminderEnabled=true", "firmwareVersion=\"2.1.0\"", "batteryThreshold=20")
	sh = h.shadows()
	if len(sh) != 1 || sh[0].Version != 2 || len(sh[0].Delta.Fields) != 2 || sh[0].Delta.Fields["reminderEnabled"] == nil || sh[0].Meta.Tenant != "t1" {
		t.Fatalf("after desired: %v", sh)
	}
	if len(h.pushed) != 1 || h.pushed[0]["version"].(float64) != 2 || h.pushed[0]["device"] != "d1" {
		t.Fatalf("pushed %v", h.pushed)
	}

	// A heartbeat changes only last seen: stored, not emitted, no push.
	h.advance(time.Minute)
	h.status("d1", true, nil)
	if sh := h.shadows(); len(sh) != 0 {
		t.Fatalf("heartbeat emitted %v", sh)
	}
	if v := h.tt.TableValue(goka.GroupTable("g"), "d1").(*pb.DeviceShadow); v.LastSeenMs != h.clock().UnixMilli() || v.Version != 2 {
		t.Fatalf("table after heartbeat: %v", v)
	}

	// The device applies the state: the delta empties.
	h.status("d1", true, map[string]any{"reminderEnabled": true, "batteryThreshold": 20})
	sh = h.shadows()
	if len(sh) != 1 || len(sh[0].Delta.Fields) != 0 {
		t.Fatalf("after applying: %v", sh)
	}
	if len(h.pushed) != 1 {
		t.Fatalf("an empty delta was pushed: %v", h.pushed)
	}

	// Removing a desired key with null.
	h.desired("d1", "batteryThreshold=null")
	sh = h.shadows()
	if len(sh) != 1 || sh[0].Desired.Fields["batteryThreshold"] != nil {
		t.Fatalf("after null: %v", sh)
	}
}

func TestShadowOffline(t *testing.T) {
	h := newHarness(t)
	h.status("d1", true, nil)
	h.status("d2", true, nil)
	h.shadows()
	h.advance(4 * time.Minute)
	h.status("d2", true, nil) // d2 keeps talking
	h.advance(2 * time.Minute)
	if err := h.proc.VisitAll(context.Background(), shadow.VisitClock, h.clock().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	h.tt.Catchup()
	var offline []string
	for {
		k, v, ok := h.stQ.Next()
		if !ok {
			break
		}
		st := v.(*pb.DeviceStatus)
		if st.Status == shadow.StatusSilent && !st.Online {
			offline = append(offline, k)
		}
	}
	if len(offline) != 1 || offline[0] != "d1" {
		t.Fatalf("offline reports %v, want [d1]", offline)
	}
	sh := h.shadows()
	if len(sh) != 1 || sh[0].DeviceId != "d1" || sh[0].Online {
		t.Fatalf("shadows %v", sh)
	}
	// A second visit does not report again.
	if err := h.proc.VisitAll(context.Background(), shadow.VisitClock, h.clock().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	h.tt.Catchup()
	if sh := h.shadows(); len(sh) != 0 {
		t.Fatalf("second visit emitted %v", sh)
	}
	// It comes back online; a desired state set meanwhile is pushed.
	h.desired("d1", "mode=\"night\"")
	n := len(h.pushed)
	h.status("d1", true, nil)
	if len(h.pushed) != n+1 {
		t.Fatalf("reconnect did not push the pending delta: %v", h.pushed)
	}
}

func TestParseDesired(t *testing.T) {
	s, err := shadow.ParseDesired([]string{"a=1", "b=true", "c=text", `d={"x":1}`, "e=null"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Fields["a"].GetNumberValue() != 1 || !s.Fields["b"].GetBoolValue() || s.Fields["c"].GetStringValue() != "text" ||
		s.Fields["d"].GetStructValue() == nil || s.Fields["e"].GetNullValue() != structpb.NullValue_NULL_VALUE {
		t.Fatalf("parsed %v", s)
	}
	if _, err := shadow.ParseDesired([]string{"novalue"}); err == nil {
		t.Fatal("want an error for an argument without =")
	}
}
