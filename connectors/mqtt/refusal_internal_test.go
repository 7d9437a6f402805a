package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// reviewConnector is a Connector whose Kafka client talks to an in-process
// kfake cluster; refuse names a catalog topic whose produce requests the
// cluster answers with MESSAGE_TOO_LARGE (Kafka refusing the record for
// good), "" for none. No MQTT broker is involved: onPublish is called
// directly with QoS 0 packets (no PUBACK to send).
func reviewConnector(t *testing.T, cfg Config, refuse string) (*Connector, *kfake.Cluster, func()) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Vitals, topics.DeadLetters, topics.Intake, topics.CommandStates))
	if err != nil {
		t.Fatal(err)
	}
	if refuse != "" {
		kc.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
			pr := req.(*kmsg.ProduceRequest)
			for _, tp := range pr.Topics {
				if tp.Topic != refuse {
					return nil, nil, false
				}
			}
			kc.KeepControl()
			resp := pr.ResponseKind().(*kmsg.ProduceResponse)
			resp.Version = pr.Version
			for _, tp := range pr.Topics {
				rt := kmsg.NewProduceResponseTopic()
				rt.Topic = tp.Topic
				for _, p := range tp.Partitions {
					rp := kmsg.NewProduceResponseTopicPartition()
					rp.Partition = p.Partition
					rp.ErrorCode = kerr.MessageTooLarge.Code
					rp.BaseOffset = -1
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp, nil, true
		})
	}
	c, err := New(cfg, Shared{Tenant: "t0"})
	if err != nil {
		t.Fatal(err)
	}
	// Topic names in produce requests (no topic ids), so the control
	// function above can tell the topics apart.
	c.kcl, err = kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.MaxVersions(kversion.V3_5_0()))
	if err != nil {
		t.Fatal(err)
	}
	return c, kc, func() { c.kcl.Close(); kc.Close() }
}

// readTopic returns the records of a catalog topic on kc.
func readTopic(t *testing.T, kc *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r); n++ })
		if n == 0 {
			return recs
		}
	}
}

// The README and deadLetterProduceFailure: "A record Kafka refuses for good
// is replaced by a dead letter, then acked." deadLetterProduceFailure runs
// inside the produce promise (delivery.done) and calls ProduceSync there;
// franz-go delivers promises serially on one goroutine, so the dead
// letter's own promise can never run: the promise worker deadlocks, the
// message is never acknowledged, its slot is never released, and every
// later record's promise (every PUBACK of the process) waits behind it.
func TestRefusedRecordIsDeadLetteredAndReleased(t *testing.T) {
	c, kc, closeAll := reviewConnector(t, DefaultConfig(), topics.Vitals)
	ms := time.Now().UnixMilli()
	c.onPublish(paho.PublishReceived{Packet: &paho.Publish{Topic: "medical/h1/monitor/d1/vitals", QoS: 0,
		Payload: []byte(fmt.Sprintf(`{"deviceId":"d1","timestamp":%d,"heartRate":70}`, ms))}})
	// Wait for Kafka's refusal before the second message, so that the two
	// records never share a produce request.
	for wait := time.Now().Add(10 * time.Second); counterValue(c.m.produceFailed) == 0 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	if counterValue(c.m.produceFailed) == 0 {
		t.Fatal("kfake did not refuse the vitals record")
	}
	// A second, valid message to another topic, which Kafka accepts.
	c.onPublish(paho.PublishReceived{Packet: &paho.Publish{Topic: "medical/devices/pc-1/medication_intake", QoS: 0,
		Payload: []byte(fmt.Sprintf(`{"deviceId":"pc-1","patientId":"p1","medicationId":"m1","intakeTime":%d,"status":"taken"}`, ms))}})
	deadline := time.Now().Add(10 * time.Second)
	for len(c.slots) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(c.slots); n > 0 {
		// Do not Close the client: it would wait on the stuck promise worker.
		t.Fatalf("%d of 2 messages still wait for Kafka after 10s (produce failures counted: %v, rejected produce_failed: %v): "+
			"the dead letter's ProduceSync inside the produce promise never returns, so neither message is acked",
			n, counterValue(c.m.produceFailed), counterValue(c.m.rejected.WithLabelValues(string(payload.ReasonProduceFailed))))
	}
	defer closeAll()
	dls := readTopic(t, kc, topics.DeadLetters)
	found := false
	for _, r := range dls {
		var dl pb.DeadLetter
		if codec.Unmarshal(r.Value, &dl) == nil && dl.Reason == string(payload.ReasonProduceFailed) {
			found = true
		}
	}
	if !found {
		t.Errorf("no produce_failed dead letter among %d dead letters", len(dls))
	}
}

// Contract: "Validation: ... size limit. Anything invalid goes to the
// dead-letter topic". onPublish hands command acks to commandAck, which
// never looks at Options.MaxBytes: an ack of any size becomes a
// COMMAND_ACKED state record instead of an oversize dead letter.
func TestOversizeCommandAckIsDeadLettered(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPayloadBytes = 64
	c, kc, closeAll := reviewConnector(t, cfg, "")
	defer closeAll()
	body := `{"commandId":"c1","status":"ok","error":"` + strings.Repeat("x", 500) + `"}`
	c.onPublish(paho.PublishReceived{Packet: &paho.Publish{Topic: "medical/devices/d1/commands/ack", QoS: 0, Payload: []byte(body)}})
	if err := c.kcl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	states := readTopic(t, kc, topics.CommandStates)
	oversize := counterValue(c.m.rejected.WithLabelValues(string(payload.ReasonOversize)))
	if len(states) != 0 || oversize != 1 {
		t.Errorf("a %d-byte ack with max_payload_bytes %d: %d command-state records, rejected{reason=oversize} = %v; want 0 and 1",
			len(body), cfg.MaxPayloadBytes, len(states), oversize)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
