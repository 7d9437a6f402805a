package mqtt

import (
	"testing"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
)

func TestRouterMatch(t *testing.T) {
	r, err := newRouter(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		topic  string
		ok     bool
		typ    string
		ignore bool
		src    payload.Source
	}{
		{"medical/devices/pc-1/medication_intake", true, "intake", false, payload.Source{DeviceID: "pc-1"}},
		{"medical/devices/pc-1/status", true, "status", false, payload.Source{DeviceID: "pc-1"}},
		{"medical/devices/batch/telemetry", true, "batch", false, payload.Source{}},
		{"medical/devices/pc-1/commands/ack", true, TypeCommandAck, false, payload.Source{DeviceID: "pc-1"}},
		{"medical/devices/pc-1/commands", true, "", true, payload.Source{DeviceID: "pc-1"}},
		{"medical/devices/pc-1/shadow/delta", true, "", true, payload.Source{DeviceID: "pc-1"}},
		{"medical/hospital-a/med-pump/device-001/vitals", true, "telemetry", false,
			payload.Source{Tenant: "hospital-a", DeviceType: "med-pump", DeviceID: "device-001", Kind: "vitals"}},
		{"medical/hospital-a/med-pump/device-001/alerts", true, "telemetry", false,
			payload.Source{Tenant: "hospital-a", DeviceType: "med-pump", DeviceID: "device-001", Kind: "alerts"}},
		{"medical/hospital-a/med-pump/device-001/firmware", false, "", false, payload.Source{}},
		{"medical/hospital-a/med-pump//vitals", false, "", false, payload.Source{}},
		{"medical/devices/pc-1/medication_intake/extra", false, "", false, payload.Source{}},
		{"other/x", false, "", false, payload.Source{}},
	}
	for _, c := range cases {
		rt, src, ok := r.match(c.topic)
		if ok != c.ok {
			t.Errorf("%s: matched %v, want %v", c.topic, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		c.src.Topic = c.topic
		if rt.typ != c.typ || rt.ignore != c.ignore || src != c.src {
			t.Errorf("%s: route %q ignore %v src %+v, want %q %v %+v", c.topic, rt.typ, rt.ignore, src, c.typ, c.ignore, c.src)
		}
	}
}

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		g, f string
		want bool
	}{
		{"a/+/c", "a/b/c", true}, {"a/b/c", "a/+/c", false}, {"a/+", "a/+/c", false}, {"+/+", "a/b", true}, {"a/b", "a/b", true},
	} {
		if got := covers(c.g, c.f); got != c.want {
			t.Errorf("covers(%q, %q) = %v", c.g, c.f, got)
		}
	}
}

// commands.ack_topic is where devices acknowledge commands (config.go), but
// only the routes were read: with an ack topic of its own and the default
// routes, acks were neither subscribed to nor routed, and every command
// timed out.
func TestAckTopicIsRouted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Commands.AckTopic = "medical/devices/{deviceId}/ack"
	r, err := newRouter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rt, src, ok := r.match("medical/devices/pc-1/ack")
	if !ok || rt.typ != TypeCommandAck || src.DeviceID != "pc-1" {
		t.Errorf("ack topic: matched %v route %q device %q, want command_ack pc-1", ok, rt.typ, src.DeviceID)
	}
	subscribed := false
	for _, f := range r.filters {
		subscribed = subscribed || covers(f, "medical/devices/+/ack")
	}
	if !subscribed {
		t.Errorf("filters %v do not cover the ack topic", r.filters)
	}
}
