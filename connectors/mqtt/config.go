package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
)

// Route maps MQTT topics to a message type. Topic is a template whose levels
// are literals or one of the placeholders {tenant}, {deviceType},
// {deviceId} and {kind} (vitals, readings, alerts or status); each
// placeholder subscribes as "+".
type Route struct {
	Topic string `yaml:"topic"`
	// Type is intake, schedule, status, telemetry, batch or command_ack.
	Type string `yaml:"type"`
}

// CommandsConfig configures the way back to devices: commands from Kafka
// published on the device's MQTT topic, and their acknowledgements.
type CommandsConfig struct {
	// Enabled runs the command dispatcher (default true).
	Enabled bool `yaml:"enabled"`
	// Group is the Kafka consumer group (default topics.GroupCommands).
	Group string `yaml:"group"`
	// Topic is the device's command topic (default
	// medical/devices/{deviceId}/commands), published at QoS 1.
	Topic string `yaml:"topic"`
	// AckTopic is where a device acknowledges a command (default
	// medical/devices/{deviceId}/commands/ack); the payload is
	// {"commandId": "...", "status": "ok"|"error", "error": "..."}.
	AckTopic string `yaml:"ack_topic"`
	// Timeout is how long a sent command waits for the device's ack before
	// it is reported COMMAND_TIMED_OUT (default 30s; a command's own
	// timeout_ms wins).
	Timeout config.Duration `yaml:"timeout"`
}

// ShadowConfig configures device shadows and offline detection.
type ShadowConfig struct {
	// Enabled runs the shadow processor (default true).
	Enabled bool `yaml:"enabled"`
	// Group is the goka group (default topics.GroupShadows); its table
	// holds the shadows, and every change is also emitted to the compacted
	// shadows topic.
	Group string `yaml:"group"`
	// DeltaTopic is where the delta between desired and reported state is
	// pushed to the device (default medical/devices/{deviceId}/shadow/delta).
	DeltaTopic string `yaml:"delta_topic"`
	// OfflineAfter reports a device offline after this much silence on its
	// status topic (default 5m, the seeds' rule).
	OfflineAfter config.Duration `yaml:"offline_after"`
	// CheckInterval is how often silence is checked (default 30s).
	CheckInterval config.Duration `yaml:"check_interval"`
}

// Config is the connectors.mqtt section of the topology. The broker address,
// credentials and TLS come from the shared mqtt section.
type Config struct {
	// ClientID prefixes the MQTT client ids; connection i is
	// "<client_id>-<i>". $VAR and ${VAR} expand from the environment. Each
	// replica needs its own, stable across restarts (e.g.
	// wardstream-mqtt-${HOSTNAME} in a StatefulSet): the broker keeps each
	// id's session and queues its share of QoS 1 messages while it is
	// down, delivering them when that id reconnects. Two processes with the
	// same id take each other's sessions over.
	ClientID string `yaml:"client_id"`
	// Connections is the number of MQTT sessions this process opens, all in
	// the same shared subscription (default 16). More connections mean more
	// messages in flight, and keep Mosquitto, which reads one packet per
	// ready socket per turn of its loop, from falling behind on our PUBACKs
	// when many device connections are busy: with 4 it held every message
	// of a hospital bench run (1.14M, a 542 MB persistence file rewritten
	// every 30 s); with 16, 12-24k (bench/README.md).
	Connections int `yaml:"connections"`
	// ShareGroup is the shared-subscription group: replicas subscribe to
	// $share/<share_group>/<filter> and split the load (default wardstream;
	// "" subscribes without sharing).
	ShareGroup string `yaml:"share_group"`
	// QoS is the subscription QoS, 0 or 1 (default 1).
	QoS int `yaml:"qos"`
	// SessionExpiry is how long the broker keeps a disconnected session
	// and queues its QoS 1 messages (default 24h).
	SessionExpiry config.Duration `yaml:"session_expiry"`
	// KeepAlive is the MQTT keep-alive (default 30s).
	KeepAlive config.Duration `yaml:"keep_alive"`
	// ReceiveMaximum bounds unacknowledged QoS 1 messages per connection
	// (default 1000; the broker may lower it). Messages are acknowledged
	// only after Kafka acknowledged their records, so this is the in-flight
	// bound and the backpressure: when Kafka is slow, acks stop and the
	// broker stops sending. The connector also never holds more than
	// connections x receive_maximum messages waiting for Kafka, whatever
	// the broker does: beyond that it stops reading from the sessions.
	ReceiveMaximum int `yaml:"receive_maximum"`
	// TopicPrefix prefixes every Kafka topic name (tests, shared clusters).
	TopicPrefix string `yaml:"topic_prefix"`
	// Routes map MQTT topics to message types, first match wins (default:
	// the seeds' topics).
	Routes []Route `yaml:"routes"`
	// MaxPayloadBytes dead-letters larger payloads (default 256 KiB, at
	// most 512 KiB, payload.MaxDeadLetterRaw: a payload under it that is
	// rejected goes to its dead letter whole, which must fit a Kafka
	// record).
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxEventAge dead-letters event times older than this (default 30
	// days; offline buffers flush old readings, which are normal).
	MaxEventAge config.Duration `yaml:"max_event_age"`
	// MaxClockSkew dead-letters event times further in the future (default 10m).
	MaxClockSkew config.Duration `yaml:"max_clock_skew"`
	// BatchRecords writes the valid vitals readings of a device batch
	// (medical/devices/batch/telemetry) as one VitalsBatch record on the
	// vitals-batches topic instead of one record per reading on the vitals
	// topic (default true). Every reading keeps its own event id and is
	// scored and stored exactly as a single record would be; the batch only
	// saves the per-record cost in the producer, the broker, the anomaly
	// group and the sink. Rejected readings are dead-lettered one by one
	// either way.
	BatchRecords bool           `yaml:"batch_records"`
	Commands     CommandsConfig `yaml:"commands"`
	Shadow       ShadowConfig   `yaml:"shadow"`
}

// DefaultRoutes are the seeds' topics.
func DefaultRoutes() []Route {
	return []Route{
		{Topic: "medical/devices/{deviceId}/medication_intake", Type: string(payload.Intake)},
		{Topic: "medical/devices/{deviceId}/medication_schedule", Type: string(payload.Schedule)},
		{Topic: "medical/devices/{deviceId}/status", Type: string(payload.Status)},
		{Topic: "medical/devices/batch/telemetry", Type: string(payload.Batch)},
		{Topic: "medical/devices/{deviceId}/commands/ack", Type: TypeCommandAck},
		{Topic: "medical/{tenant}/{deviceType}/{deviceId}/{kind}", Type: string(payload.Telemetry)},
	}
}

// TypeCommandAck is the route type of device command acknowledgements.
const TypeCommandAck = "command_ack"

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ClientID: "wardstream-mqtt", Connections: 16, ShareGroup: "wardstream", QoS: 1,
		SessionExpiry: config.Duration(24 * time.Hour), KeepAlive: config.Duration(30 * time.Second),
		ReceiveMaximum: 1000, Routes: DefaultRoutes(), MaxPayloadBytes: 256 << 10,
		MaxEventAge: config.Duration(30 * 24 * time.Hour), MaxClockSkew: config.Duration(10 * time.Minute), BatchRecords: true,
		Commands: CommandsConfig{Enabled: true, Topic: "medical/devices/{deviceId}/commands",
			AckTopic: "medical/devices/{deviceId}/commands/ack", Timeout: config.Duration(30 * time.Second)},
		Shadow: ShadowConfig{Enabled: true, DeltaTopic: "medical/devices/{deviceId}/shadow/delta",
			OfflineAfter: config.Duration(5 * time.Minute), CheckInterval: config.Duration(30 * time.Second)},
	}
}

// Validate reports every problem, each prefixed with its path under
// connectors.mqtt.
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("connectors.mqtt.%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.ClientID == "" || strings.ContainsAny(c.ClientID, "+#/") {
		add("client_id", "%q must be non-empty without + # /", c.ClientID)
	}
	if c.Connections < 1 || c.Connections > 256 {
		add("connections", "%d must be 1..256", c.Connections)
	}
	if strings.ContainsAny(c.ShareGroup, "+#/") {
		add("share_group", "%q must not hold + # /", c.ShareGroup)
	}
	if c.QoS != 0 && c.QoS != 1 {
		add("qos", "%d must be 0 or 1", c.QoS)
	}
	if c.SessionExpiry.D() < time.Minute || c.SessionExpiry.D() > time.Duration(1<<32-1)*time.Second {
		add("session_expiry", "%s must be at least 1m (a persistent session) and below 136 years", c.SessionExpiry.D())
	}
	if c.KeepAlive.D() < time.Second || c.KeepAlive.D() > 65535*time.Second {
		add("keep_alive", "%s must be 1s..18h", c.KeepAlive.D())
	}
	if c.ReceiveMaximum < 1 || c.ReceiveMaximum > 65535 {
		add("receive_maximum", "%d must be 1..65535", c.ReceiveMaximum)
	}
	if len(c.Routes) == 0 {
		add("routes", "at least one route is needed")
	}
	for i, r := range c.Routes {
		if _, err := parseTemplate(r.Topic); err != nil {
			add(fmt.Sprintf("routes[%d].topic", i), "%v", err)
		}
		switch r.Type {
		case string(payload.Intake), string(payload.Schedule), string(payload.Status), string(payload.Telemetry), string(payload.Batch), TypeCommandAck:
		default:
			add(fmt.Sprintf("routes[%d].type", i), "%q is not intake, schedule, status, telemetry, batch or command_ack", r.Type)
		}
	}
	if c.MaxPayloadBytes < 64 || c.MaxPayloadBytes > payload.MaxDeadLetterRaw {
		add("max_payload_bytes", "%d must be 64..%d: a rejected payload is dead-lettered whole, and its dead letter (payload, error, topic, metadata) must fit a Kafka record (the producer takes at most %d bytes, kafka.ProducerBatchMaxBytes)",
			c.MaxPayloadBytes, payload.MaxDeadLetterRaw, kafka.ProducerBatchMaxBytes)
	}
	if c.MaxEventAge.D() < 0 {
		add("max_event_age", "must not be negative")
	}
	if c.MaxClockSkew.D() < 0 {
		add("max_clock_skew", "must not be negative")
	}
	for _, t := range []struct{ path, tmpl string }{{"commands.topic", c.Commands.Topic}, {"commands.ack_topic", c.Commands.AckTopic}, {"shadow.delta_topic", c.Shadow.DeltaTopic}} {
		tp, err := parseTemplate(t.tmpl)
		if err != nil {
			add(t.path, "%v", err)
		} else if !tp.has("deviceId") {
			add(t.path, "%q must hold {deviceId}", t.tmpl)
		}
	}
	if c.Commands.Timeout.D() <= 0 {
		add("commands.timeout", "must be positive")
	}
	if c.Shadow.OfflineAfter.D() < time.Second {
		add("shadow.offline_after", "%s must be at least 1s", c.Shadow.OfflineAfter.D())
	}
	if c.Shadow.CheckInterval.D() <= 0 {
		add("shadow.check_interval", "must be positive")
	}
	return errors.Join(errs...)
}

// LoadConfig decodes the connectors.mqtt section of r strictly over the
// defaults and validates it.
func LoadConfig(r *config.Root) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(&r.Connectors.MQTT, "connectors.mqtt", &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// FromRoot builds the mqtt role from a loaded topology.
func FromRoot(r *config.Root, opts ...Option) (*Connector, error) {
	cfg, err := LoadConfig(r)
	if err != nil {
		return nil, err
	}
	var tenants []string
	for _, t := range r.Tenants {
		tenants = append(tenants, t.ID)
	}
	return New(cfg, Shared{Tenant: r.Tenant, Tenants: tenants, Kafka: r.Kafka, MQTT: r.MQTT, DrainTimeout: r.DrainTimeout.D()}, opts...)
}
