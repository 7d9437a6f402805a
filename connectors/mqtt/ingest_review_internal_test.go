package mqtt

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// An oversize payload is dead-lettered with its raw bytes, and the raw bytes
// were the whole payload: MQTT carries up to 256 MB, a Kafka record 1 MB
// (franz-go's ProducerBatchMaxBytes, the broker's message.max.bytes). A
// 2 MB publish made a dead letter Kafka refused (MESSAGE_TOO_LARGE); a
// refused dead letter is not replaced, so the message was left unacked:
// nothing reached the dead-letter topic, and at QoS 1 the message blocked
// every later PUBACK of its session (paho sends acks in order) and came
// again after every reconnect.
func TestOversizePayloadDeadLetterFitsKafka(t *testing.T) {
	raw := append([]byte(`{"deviceId":"pc-1","note":"`), bytes.Repeat([]byte{'x'}, 2<<20)...)
	oversizeDeadLetter(t, "medical/devices/pc-1/medication_intake", append(raw, `"}`...))
}

// oversizeDeadLetter publishes raw (over the size limit) on topic at QoS 0
// and requires that the message was settled and that its oversize dead
// letter reached Kafka with at most payload.MaxDeadLetterRaw bytes of it.
func oversizeDeadLetter(t *testing.T, topic string, raw []byte) *pb.DeadLetter {
	t.Helper()
	c, kc, closeAll := reviewConnector(t, DefaultConfig(), "")
	defer closeAll()
	c.onPublish(paho.PublishReceived{Packet: &paho.Publish{Topic: topic, QoS: 0, Payload: raw}})
	for wait := time.Now().Add(10 * time.Second); len(c.slots) > 0 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.kcl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := counterValue(c.m.unacked); n != 0 {
		t.Errorf("%v messages left unacknowledged; want 0", n)
	}
	var found *pb.DeadLetter
	for _, r := range readTopic(t, kc, topics.DeadLetters) {
		var dl pb.DeadLetter
		if codec.Unmarshal(r.Value, &dl) == nil && dl.Reason == string(payload.ReasonOversize) {
			found = &dl
		}
	}
	if found == nil {
		t.Fatalf("no oversize dead letter for a %d-byte payload on %s (produce failures: %v)", len(raw), topic, counterValue(c.m.produceFailed))
	}
	if len(found.Raw) == 0 || len(found.Raw) > payload.MaxDeadLetterRaw || !bytes.HasPrefix(raw, found.Raw) {
		t.Errorf("dead letter raw: %d bytes; want a prefix of the payload of at most payload.MaxDeadLetterRaw", len(found.Raw))
	}
	return found
}

// The command ack route has its own oversize check, and it kept the whole
// payload in the dead letter, as the ingest path did before: a 2 MB ack
// made a dead letter Kafka refused, so nothing reached the dead-letter
// topic and the message stayed unacknowledged. Its dead letter keeps at
// most payload.MaxDeadLetterRaw bytes, like the ingest path's.
func TestOversizeCommandAckDeadLetterFitsKafka(t *testing.T) {
	raw := append([]byte(`{"commandId":"c-1","status":"ok","note":"`), bytes.Repeat([]byte{'x'}, 2<<20)...)
	found := oversizeDeadLetter(t, "medical/devices/pc-1/commands/ack", append(raw, `"}`...))
	if found.SourceTopic != "medical/devices/pc-1/commands/ack" || found.Meta.GetEventTimeMs() == 0 {
		t.Errorf("dead letter source %q time %d; want the ack topic and the arrival time", found.SourceTopic, found.Meta.GetEventTimeMs())
	}
}
