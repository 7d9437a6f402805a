package mqtt

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

func TestDeviceBody(t *testing.T) {
	b, err := deviceBody(&pb.DeviceCommand{CommandId: "c1", CommandType: pb.CommandType_UPDATE_SCHEDULE, IssuedBy: "nurse",
		PayloadJson: `{"schedule":{"times":["08:00"]},"type":"ignored"}`}, 42)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["commandId"] != "c1" || m["type"] != "UPDATE_SCHEDULE" || m["issuedAt"].(float64) != 42 || m["issuedBy"] != "nurse" || m["schedule"] == nil {
		t.Errorf("body %s", b)
	}
	if _, err := deviceBody(&pb.DeviceCommand{CommandId: "c2", PayloadJson: `{`}, 1); err == nil {
		t.Error("want an error for broken payload_json")
	}
}

func TestCommandAck(t *testing.T) {
	c, err := New(DefaultConfig(), Shared{Tenant: "t"})
	if err != nil {
		t.Fatal(err)
	}
	o := payload.Options{Tenant: "t", Now: time.UnixMilli(5000)}
	src := payload.Source{Topic: "medical/devices/d1/commands/ack", DeviceID: "d1"}
	for _, tc := range []struct {
		body   string
		state  pb.CommandState
		reason payload.Reason
	}{
		{`{"commandId":"c1","status":"ok"}`, pb.CommandState_COMMAND_ACKED, ""},
		{`{"commandId":"c1","status":"error","error":"busy"}`, pb.CommandState_COMMAND_FAILED, ""},
		{`{"status":"ok"}`, 0, payload.ReasonMissingField},
		{`{`, 0, payload.ReasonMalformedJSON},
	} {
		outs := c.commandAck(src, []byte(tc.body), o)
		if len(outs) != 1 || outs[0].Reason != tc.reason {
			t.Errorf("%s: %v", tc.body, outs)
			continue
		}
		if tc.reason == "" {
			st := outs[0].Msg.(*pb.DeviceCommand)
			if outs[0].Topic != topics.CommandStates || outs[0].Key != "d1" || st.State != tc.state || st.AckTimeMs != 5000 || st.CommandId != "c1" {
				t.Errorf("%s: %v", tc.body, st)
			}
		}
	}
}

// The ack's timestamp takes the forms every device timestamp takes (README:
// ISO-8601, epoch ms or epoch s). An ack stamped in seconds was recorded in
// January 1970, and one stamped in ISO-8601 was dead-lettered as malformed
// JSON, leaving its command to time out.
func TestCommandAckTimestampForms(t *testing.T) {
	c, err := New(DefaultConfig(), Shared{Tenant: "t"})
	if err != nil {
		t.Fatal(err)
	}
	o := payload.Options{Tenant: "t", Now: time.UnixMilli(1773144000000)}
	src := payload.Source{Topic: "medical/devices/d1/commands/ack", DeviceID: "d1"}
	for _, ts := range []string{`1773143990000`, `1773143990`, `"2026-03-10T11:59:50Z"`, `"1773143990000"`} {
		body := `{"commandId":"c1","status":"ok","timestamp":` + ts + `}`
		outs := c.commandAck(src, []byte(body), o)
		if len(outs) != 1 || outs[0].Reason != "" {
			t.Errorf("%s: %v", body, outs)
			continue
		}
		st := outs[0].Msg.(*pb.DeviceCommand)
		if st.State != pb.CommandState_COMMAND_ACKED || st.Meta.EventTimeMs != 1773143990000 {
			t.Errorf("%s: state %v event time %d, want COMMAND_ACKED at 1773143990000", body, st.State, st.Meta.EventTimeMs)
		}
	}
}
