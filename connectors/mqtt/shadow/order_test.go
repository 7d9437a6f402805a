package shadow_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// The connector's sessions share the subscription and produce on their
// own, so a device's last will and the "online" it publishes on reconnect
// can reach Kafka in the other order than the broker received them. Both
// are bare words stamped with their arrival time. The will received first
// (t0) but consumed after the online word (t0+2s) took the device offline
// although its latest word says online.
func TestLateWillDoesNotTakeDeviceOffline(t *testing.T) {
	h := newHarness(t)
	word := func(online bool, w string, at time.Time) {
		h.tt.Consume(topics.DeviceStatus, "d1", &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: at.UnixMilli(), IngestTimeMs: at.UnixMilli()},
			DeviceId: "d1", Online: online, Status: w})
	}
	t0 := h.clock()
	word(true, "online", t0.Add(-time.Minute))
	word(true, "online", t0.Add(2*time.Second)) // the reconnect, received after the will
	word(false, "offline", t0)                  // the will, received first, consumed last
	if v := h.tt.TableValue(goka.GroupTable("g"), "d1").(*pb.DeviceShadow); !v.Online {
		t.Errorf("after online (t0+2s) and a late will (t0): offline; want online")
	}
	// And the other way round: the will received last is not undone by an
	// online word received before it.
	word(false, "offline", t0.Add(10*time.Second))
	word(true, "online", t0.Add(5*time.Second))
	if v := h.tt.TableValue(goka.GroupTable("g"), "d1").(*pb.DeviceShadow); v.Online {
		t.Errorf("after a will (t0+10s) and a late online (t0+5s): online; want offline")
	}
}

// A last will marks the device offline at once (README). It is a bare word
// stamped with its arrival time, the connector's clock, while the reported
// state's time is the device's: a device whose clock runs two minutes ahead
// (within max_clock_skew) had its will taken for an old status and stayed
// online until the silence check, five minutes later.
func TestWillWithDeviceClockAhead(t *testing.T) {
	h := newHarness(t)
	t0 := h.clock()
	rep, _ := structpb.NewStruct(map[string]any{"online": true, "firmwareVersion": "2.2.0"})
	h.tt.Consume(topics.DeviceStatus, "d1", &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: t0.Add(2 * time.Minute).UnixMilli(), IngestTimeMs: t0.UnixMilli()},
		DeviceId: "d1", Online: true, Reported: rep})
	will := t0.Add(time.Minute)
	h.tt.Consume(topics.DeviceStatus, "d1", &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: will.UnixMilli(), IngestTimeMs: will.UnixMilli()},
		DeviceId: "d1", Online: false, Status: "offline"})
	if v := h.tt.TableValue(goka.GroupTable("g"), "d1").(*pb.DeviceShadow); v.Online {
		t.Errorf("after the device's status (device clock t0+2m, received t0) and its will (received t0+1m): online; want offline")
	}
}
