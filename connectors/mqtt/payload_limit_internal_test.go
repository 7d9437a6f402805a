package mqtt

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// max_payload_bytes had no upper bound: a payload under it can be
// rejected, and its dead letter holds it whole, so a limit above what a
// Kafka record holds (the producer's 1,000,012 bytes, franz-go's
// ProducerBatchMaxBytes; the broker's message.max.bytes is about the same)
// let through payloads whose dead letters Kafka refuses: never written,
// the message never acknowledged. The limit is at most
// payload.MaxDeadLetterRaw, and a dead letter of that much payload, the
// longest MQTT topic and an error quoting the payload fits the producer's
// limit.
func TestMaxPayloadBytesFitsAKafkaRecord(t *testing.T) {
	for _, n := range []int{payload.MaxDeadLetterRaw + 1, 2 << 20, 1 << 30} {
		cfg := DefaultConfig()
		cfg.MaxPayloadBytes = n
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "connectors.mqtt.max_payload_bytes") {
			t.Errorf("max_payload_bytes %d: error %v; want one naming connectors.mqtt.max_payload_bytes", n, err)
		}
	}
	cfg := DefaultConfig()
	cfg.MaxPayloadBytes = payload.MaxDeadLetterRaw
	if err := cfg.Validate(); err != nil {
		t.Errorf("max_payload_bytes = payload.MaxDeadLetterRaw: %v", err)
	}

	cl, err := kafka.NewClient(config.Kafka{Brokers: []string{"127.0.0.1:1"}, MaxBufferedRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ProducerBatchMaxBytes); got != int32(kafka.ProducerBatchMaxBytes) {
		t.Fatalf("the producer's batch max bytes is %v; kafka.ProducerBatchMaxBytes says %d", got, kafka.ProducerBatchMaxBytes)
	}

	// The worst dead letter of an accepted payload: all of it, spoofing a
	// device id as long as it can (the error quotes it), on the longest
	// topic MQTT allows.
	topic := "medical/devices/" + strings.Repeat("d", 65535-len("medical/devices//medication_intake")) + "/medication_intake"
	id := bytes.Repeat([]byte{'x'}, payload.MaxDeadLetterRaw-64)
	raw := append(append([]byte(`{"deviceId":"`), id...), `","timestamp":1}`...)
	src := payload.Source{Topic: topic, DeviceID: topic[16 : len(topic)-18]}
	o := payload.Options{Tenant: strings.Repeat("t", 64), MaxBytes: payload.MaxDeadLetterRaw, Now: time.Now()}
	outs := payload.Decode(payload.Intake, src, raw, o)
	if len(outs) != 1 || outs[0].Reason == "" {
		t.Fatalf("outputs %v; want one dead letter", outs)
	}
	v, err := outs[0].Encoded()
	if err != nil {
		t.Fatal(err)
	}
	// Record overhead: key, headers none, a record batch header (61 bytes)
	// and the record's own varints; 1 KiB is ample.
	if size := len(v) + len(outs[0].Key) + 1024; size > kafka.ProducerBatchMaxBytes {
		dl := outs[0].Msg.(*pb.DeadLetter)
		t.Errorf("the dead letter of a %d-byte payload needs %d bytes (raw %d, error %d); the producer takes %d",
			len(raw), size, len(dl.Raw), len(dl.Error), kafka.ProducerBatchMaxBytes)
	}
}
