package shadow_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestWillWithDeviceClockAhead for a JSON last will: {"status":"offline"}
// carries no device time either, so the connector stamps it with its
// arrival time, but it has fields and so a reported state. The shadow
// compared that arrival time with the reported state's device-clock time:
// with the device's clock two minutes ahead the will was taken for an old
// buffered status, and the device stayed online until the silence check.
// And the other way round: a status without a device time set the reported
// state's time to the connector's clock, so with the device's clock behind,
// the device's next statuses (its reconnect "online") were taken for old
// ones and ignored.
func TestJSONWillWithoutTimestamp(t *testing.T) {
	h := newHarness(t)
	t0 := h.clock()
	st := func(ev, ingest time.Time, online bool, rep map[string]any) {
		r, _ := structpb.NewStruct(rep)
		h.tt.Consume(topics.DeviceStatus, "d1", &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: ev.UnixMilli(), IngestTimeMs: ingest.UnixMilli()},
			DeviceId: "d1", Online: online, Reported: r})
	}
	online := func() bool { return h.tt.TableValue(goka.GroupTable("g"), "d1").(*pb.DeviceShadow).Online }

	// Device clock 2 minutes ahead.
	st(t0.Add(2*time.Minute), t0, true, map[string]any{"status": "online", "firmwareVersion": "2.2.0"})
	will := t0.Add(time.Minute)
	st(will, will, false, map[string]any{"status": "offline"})
	if online() {
		t.Errorf("device clock ahead: after its status and its JSON will (no timestamp, received t0+1m): online; want offline")
	}

	// Device d1 again, its clock now 2 minutes behind: a JSON will without a
	// timestamp, then the reconnect's status stamped by the device.
	t1 := t0.Add(time.Hour)
	st(t1, t1, false, map[string]any{"status": "offline"})
	back := t1.Add(30 * time.Second)
	st(back.Add(-2*time.Minute), back, true, map[string]any{"status": "online"})
	if !online() {
		t.Errorf("device clock behind: after a JSON will (received t1) and the reconnect's status (device clock t1-90s, received t1+30s): offline; want online")
	}
}
