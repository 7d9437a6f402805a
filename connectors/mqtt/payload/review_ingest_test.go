package payload_test

import (
	"testing"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// The topic mapping routes medical/{tenant}/{deviceType}/{deviceId}/status
// (the {kind} status) as telemetry, and telemetry was decoded as a vitals
// reading: a device's last will "offline" there was dead-lettered as
// malformed_json, a JSON status without a timestamp as missing_field, and a
// status with one became a vitals row with no values; none reached the
// device-status topic, so the shadow never saw those devices go on- or
// offline. A status on the tenant layout is a status like
// medical/devices/{deviceId}/status (and like a batch part of type status),
// with the tenant and device type its topic names.
func TestTenantLayoutStatusIsDeviceStatus(t *testing.T) {
	src := payload.Source{Topic: "medical/h1/med-pump/d1/status", Tenant: "h1", DeviceType: "med-pump", DeviceID: "d1", Kind: "status"}
	for _, c := range []struct {
		body   string
		online bool
	}{
		{"offline", false},
		{`{"deviceId":"d1","online":false}`, false},
		{`{"deviceId":"d1","status":"online","batteryLevel":80}`, true},
	} {
		outs := payload.Decode(payload.Telemetry, src, []byte(c.body), opts())
		if len(outs) != 1 || outs[0].Topic != topics.DeviceStatus {
			t.Errorf("%s on %s: %d outputs, first to %q (%s); want one device-status record", c.body, src.Topic, len(outs), outs[0].Topic, outs[0].Reason)
			continue
		}
		st := outs[0].Msg.(*pb.DeviceStatus)
		if st.DeviceId != "d1" || st.Online != c.online || st.Meta.Tenant != "h1" || st.DeviceType != "med-pump" || outs[0].Key != "d1" {
			t.Errorf("%s: status %v key %q; want device d1 online %v tenant h1 type med-pump", c.body, st, outs[0].Key, c.online)
		}
	}
}
