package mqtt_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// TestPahoPublishPayloadNotCopied pins the one change wardstream carries
// in paho.golang (internal/third_party/paho.golang, README there): a
// received PUBLISH's payload is the rest of the packet as read, not a
// copy grown through io.ReadAll. Reading a batch of 100 readings (~20 KB)
// allocated four times its size, and the copying was a sixth of the
// connector's CPU. The payload must still be exactly the
// bytes sent.
func TestPahoPublishPayloadNotCopied(t *testing.T) {
	payload := bytes.Repeat([]byte(`{"heartRate":72,"spo2":97},`), 800) // ~21 KB
	var wire bytes.Buffer
	pub := &packets.Publish{Topic: "medical/devices/batch/telemetry", QoS: 1, PacketID: 7, Payload: payload, Properties: &packets.Properties{}}
	if _, err := pub.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	cp, err := packets.ReadPacket(bytes.NewReader(wire.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := cp.Content.(*packets.Publish)
	if !ok || got.Topic != pub.Topic || got.PacketID != 7 || !bytes.Equal(got.Payload, payload) {
		t.Fatalf("read back %+v", cp.Content)
	}
	// Bytes allocated per PUBLISH read (one goroutine, measured over 20
	// reads): the packet once, plus small change; io.ReadAll's copy and
	// CopyN's doubling took it to four times the payload.
	const runs = 20
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range runs {
		if _, err := packets.ReadPacket(bytes.NewReader(wire.Bytes())); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	per := (m1.TotalAlloc - m0.TotalAlloc) / runs
	t.Logf("%d bytes allocated per PUBLISH of %d bytes", per, wire.Len())
	if per > uint64(wire.Len())*3/2 {
		t.Fatalf("%d bytes allocated reading one PUBLISH of %d bytes, want at most 1.5 times that: is the paho.golang replace in go.mod gone?", per, wire.Len())
	}
}

// TestPahoPacketsRoundTrip: packets written by paho read back equal
// through the patched reader (strings, binary properties, payloads of 0
// to 64 KiB), and a truncated packet is an error, not a short payload.
func TestPahoPacketsRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 4096, 65536} {
		pub := &packets.Publish{Topic: "medical/devices/dev-1/status", QoS: 1, PacketID: 9, Payload: bytes.Repeat([]byte{'x'}, n),
			Properties: &packets.Properties{ContentType: "application/json", CorrelationData: []byte{0, 1, 2, 0xff},
				User: []packets.User{{Key: "k", Value: "v"}}}}
		var wire bytes.Buffer
		if _, err := pub.WriteTo(&wire); err != nil {
			t.Fatal(err)
		}
		cp, err := packets.ReadPacket(bytes.NewReader(wire.Bytes()))
		if err != nil {
			t.Fatalf("payload %d: %v", n, err)
		}
		got := cp.Content.(*packets.Publish)
		if got.Topic != pub.Topic || got.PacketID != 9 || !bytes.Equal(got.Payload, pub.Payload) || got.Properties.ContentType != "application/json" ||
			!bytes.Equal(got.Properties.CorrelationData, pub.Properties.CorrelationData) || len(got.Properties.User) != 1 || got.Properties.User[0] != pub.Properties.User[0] {
			t.Fatalf("payload %d: read back %+v %+v", n, got, got.Properties)
		}
		if _, err := packets.ReadPacket(bytes.NewReader(wire.Bytes()[:wire.Len()-1])); err == nil {
			t.Fatalf("payload %d: a packet one byte short was read", n)
		}
	}
	ack := &packets.Puback{PacketID: 9, ReasonCode: 0x10, Properties: &packets.Properties{ReasonString: "no matching subscribers"}}
	var wire bytes.Buffer
	if _, err := ack.WriteTo(&wire); err != nil {
		t.Fatal(err)
	}
	cp, err := packets.ReadPacket(bytes.NewReader(wire.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := cp.Content.(*packets.Puback); got.PacketID != 9 || got.ReasonCode != 0x10 || got.Properties.ReasonString != "no matching subscribers" {
		t.Fatalf("puback read back %+v", got)
	}
}
