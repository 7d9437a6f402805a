package mqtt

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// metrics are the connector's domain metrics; labels are bounded (reason
// codes and command states, never device ids).
type metrics struct {
	received       prometheus.Counter
	records        prometheus.Counter
	rejected       *prometheus.CounterVec
	ignored        prometheus.Counter
	produceFailed  prometheus.Counter
	unacked        prometheus.Counter
	inflight       prometheus.Gauge
	connections    prometheus.Gauge
	connectionLost prometheus.Counter
	connectFailed  prometheus.Counter
	ackLatency     prometheus.Histogram
	commands       *prometheus.CounterVec
	commandsOpen   prometheus.Gauge
	acksUnmatched  *prometheus.CounterVec
	batchEncoded   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		received:       prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_messages_received_total", Help: "MQTT messages received from devices."}),
		records:        prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_records_produced_total", Help: "Kafka records produced from MQTT messages (dead letters included)."}),
		rejected:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_mqtt_rejected_total", Help: "Device messages sent to the dead-letter topic, by reason."}, []string{"reason"}),
		ignored:        prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_ignored_total", Help: "Messages on the connector's own outbound topics (commands, shadow deltas), acknowledged and skipped."}),
		produceFailed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_produce_failures_total", Help: "Kafka records that failed to produce."}),
		unacked:        prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_unacked_total", Help: "QoS 1 messages left unacknowledged (the broker redelivers them)."}),
		inflight:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_mqtt_inflight_messages", Help: "MQTT messages waiting for Kafka."}),
		connections:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_mqtt_connections", Help: "MQTT sessions up."}),
		connectionLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_connection_lost_total", Help: "MQTT sessions lost."}),
		connectFailed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_connect_failures_total", Help: "Failed MQTT connection attempts."}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wardstream_mqtt_ack_latency_seconds", Help: "Time from MQTT receipt to PUBACK (Kafka acknowledged).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		commands:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_mqtt_commands_total", Help: "Device command state changes, by state."}, []string{"state"}),
		commandsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_mqtt_commands_pending", Help: "Commands sent and waiting for the device's ack."}),
		acksUnmatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_mqtt_command_acks_unmatched_total",
			Help: "Device acks that resolved no pending command of this replica, by reason (unknown_command: duplicates, replays, ids not pending here; device_mismatch: sent by another device than the command's)."}, []string{"reason"}),
		batchEncoded: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_batches_encoded_total",
			Help: "Device batches encoded straight from JSON to one VitalsBatch record (payload's batch encoder); other batches took the general path."}),
	}
	for _, r := range payload.Reasons() {
		m.rejected.WithLabelValues(string(r))
	}
	for _, s := range []pb.CommandState{pb.CommandState_COMMAND_SENT, pb.CommandState_COMMAND_ACKED, pb.CommandState_COMMAND_TIMED_OUT, pb.CommandState_COMMAND_FAILED} {
		m.commands.WithLabelValues(s.String())
	}
	for _, r := range []string{ackUnknownCommand, ackDeviceMismatch} {
		m.acksUnmatched.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.received, m.records, m.rejected, m.ignored, m.produceFailed, m.unacked, m.inflight, m.connections,
			m.connectionLost, m.connectFailed, m.ackLatency, m.commands, m.commandsOpen, m.acksUnmatched, m.batchEncoded)
	}
	return m
}
