package shadow_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Contract: devices flush offline buffers after reconnect, old event times
// are normal; the shadow's reported state comes from status messages. A
// buffered status that the device recorded an hour ago and flushes after
// its fresh status overwrites the newer reported state (onStatus merges
// every status's reported fields whatever its event time), and
// reported_updated_ms goes back an hour.
func TestBufferedOldStatusDoesNotRegressReported(t *testing.T) {
	h := newHarness(t)
	at := func(ev, ingest time.Time, fw string) {
		rep, _ := structpb.NewStruct(map[string]any{"firmwareVersion": fw})
		h.tt.Consume(topics.DeviceStatus, "d1", &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventTimeMs: ev.UnixMilli(), IngestTimeMs: ingest.UnixMilli()},
			DeviceId: "d1", Online: true, Reported: rep})
	}
	t0 := h.clock()
	// The device's current state, sent on reconnect and received 20 ms
	// later (event time = ingest time is what the connector gives a status
	// without a device time: TestJSONWillWithoutTimestamp).
	at(t0, t0.Add(20*time.Millisecond), "2.2.0")
	at(t0.Add(-time.Hour), t0.Add(time.Second), "2.1.0") // from its offline buffer, recorded an hour earlier
	v := h.tt.TableValue(goka.GroupTable("g"), "d1").(*pb.DeviceShadow)
	fw := v.GetReported().GetFields()["firmwareVersion"].GetStringValue()
	if fw != "2.2.0" || v.ReportedUpdatedMs != t0.UnixMilli() {
		t.Errorf("after the fresh status (t0, 2.2.0) and a buffered one (t0-1h, 2.1.0): reported firmwareVersion %q, reported_updated_ms t0%+v; want 2.2.0 at t0",
			fw, time.Duration(v.ReportedUpdatedMs-t0.UnixMilli())*time.Millisecond)
	}
}
