// Package topics is the topic catalog: the one place that names every Kafka
// topic wardstream uses, what its records are keyed by, what they hold, and
// how the topic is configured (partitions, retention, cleanup policy).
//
// Keys follow one rule so that stateful processors are co-partitioned:
// anything adherence computes on is keyed by patient id, device telemetry by
// device id, video by camera id. Schedules are the one exception: they are a
// compacted topic keyed by "patientId|medicationId" (one live record per
// patient and medication), and the adherence processor re-keys them by
// patient through a goka loopback.
//
// The catalog also names the goka groups (and so their group tables) so that
// no processor package has to import another to find a table name.
package topics

import (
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Topic names. Every topic wardstream produces or consumes is listed here.
const (
	Intake         = "wardstream.medication-intake"
	Schedules      = "wardstream.medication-schedules"
	DeviceStatus   = "wardstream.device-status"
	Vitals         = "wardstream.vitals"
	VitalsBatches  = "wardstream.vitals-batches"
	Commands       = "wardstream.device-commands"
	CommandStates  = "wardstream.device-command-states"
	Shadows        = "wardstream.device-shadows"
	ShadowDesired  = "wardstream.device-shadow-desired"
	Detections     = "wardstream.frame-detections"
	VideoEvents    = "wardstream.video-events"
	DoseOutcomes   = "wardstream.dose-outcomes"
	Adherence      = "wardstream.adherence"
	AnomalyScores  = "wardstream.anomaly-scores"
	ScoreBatches   = "wardstream.anomaly-score-batches"
	Alerts         = "wardstream.alerts"
	AlertAcks      = "wardstream.alerts-ack"
	DeadLetters    = "wardstream.dead-letters"
	Audit          = "wardstream.audit"
	CameraControls = "wardstream.camera-controls"
)

// Goka group names. A goka group's table topic is "<group>-table".
const (
	GroupAdherence   = "wardstream-adherence"
	GroupAnomaly     = "wardstream-anomaly"
	GroupAlerts      = "wardstream-alerts"
	GroupCorrelation = "wardstream-correlation"
	GroupShadows     = "wardstream-shadows"
	GroupCommands    = "wardstream-commands"
	GroupSink        = "wardstream-sink-clickhouse"
)

// Key names what a topic's record key holds.
type Key string

// Record keys.
const (
	KeyPatient           Key = "patientId"
	KeyPatientMedication Key = "patientId|medicationId"
	KeyDevice            Key = "deviceId"
	KeyCamera            Key = "cameraId"
	KeyAlert             Key = "alertId"
	KeySubject           Key = "subjectId"
	KeySource            Key = "sourceKey"
	KeyUser              Key = "user"
)

// Policy is a topic's cleanup policy.
type Policy string

// Cleanup policies.
const (
	Delete  Policy = "delete"
	Compact Policy = "compact"
)

// Topic describes one catalog entry.
type Topic struct {
	// Name is the Kafka topic name.
	Name string
	// Key is what the record key holds.
	Key Key
	// Value is the protobuf message held in the record value.
	Value proto.Message
	// Partitions is the default partition count; deployments may scale it
	// (never shrink: Kafka cannot).
	Partitions int32
	// Retention is how long records are kept (delete topics); 0 is forever.
	Retention time.Duration
	// Policy is the cleanup policy.
	Policy Policy
	// Doc says what flows through the topic.
	Doc string
}

// New returns a new empty value message for the topic, ready to unmarshal into.
func (t Topic) New() proto.Message { return t.Value.ProtoReflect().New().Interface() }

// Configs returns the topic-level Kafka configs for the topic.
func (t Topic) Configs() map[string]*string {
	s := func(v string) *string { return &v }
	c := map[string]*string{"cleanup.policy": s(string(t.Policy))}
	if t.Policy == Compact {
		// Compacted state topics keep the latest value per key forever; we
		// still compact reasonably often so restores stay fast.
		c["min.cleanable.dirty.ratio"] = s("0.1")
		c["segment.ms"] = s(fmt.Sprint((6 * time.Hour).Milliseconds()))
	} else {
		ms := int64(-1)
		if t.Retention > 0 {
			ms = t.Retention.Milliseconds()
		}
		c["retention.ms"] = s(fmt.Sprint(ms))
	}
	return c
}

const (
	day  = 24 * time.Hour
	week = 7 * day
)

var catalog = []Topic{
	{Intake, KeyPatient, &pb.MedicationIntake{}, 12, 30 * day, Delete, "medication intakes reported by pillcases"},
	{Schedules, KeyPatientMedication, &pb.DoseSchedule{}, 12, 0, Compact, "dose schedules, latest per patient and medication"},
	{DeviceStatus, KeyDevice, &pb.DeviceStatus{}, 12, week, Delete, "device status, last-will and offline reports"},
	{Vitals, KeyDevice, &pb.VitalsTelemetry{}, 12, week, Delete, "vitals, pump readings and device alerts"},
	{VitalsBatches, KeyDevice, &pb.VitalsBatch{}, 12, week, Delete, "device telemetry batches, one record per batch (co-partitioned with vitals)"},
	{Commands, KeyDevice, &pb.DeviceCommand{}, 12, week, Delete, "commands to devices (requests)"},
	{CommandStates, KeyDevice, &pb.DeviceCommand{}, 12, week, Delete, "command delivery states: sent, acked, timed out"},
	{Shadows, KeyDevice, &pb.DeviceShadow{}, 12, 0, Compact, "device shadows, latest per device"},
	{ShadowDesired, KeyDevice, &pb.DeviceShadow{}, 12, week, Delete, "desired-state updates for device shadows"},
	{Detections, KeyCamera, &pb.FrameDetections{}, 12, 3 * day, Delete, "per-frame detections from cameras"},
	{VideoEvents, KeyCamera, &pb.VideoEvent{}, 12, 30 * day, Delete, "debounced video events"},
	{DoseOutcomes, KeyPatient, &pb.DoseOutcome{}, 12, 30 * day, Delete, "dose outcomes and their corrections"},
	{Adherence, KeyPatient, &pb.AdherenceWindow{}, 12, 30 * day, Delete, "adherence per patient and medication"},
	{AnomalyScores, KeyDevice, &pb.AnomalyScore{}, 12, week, Delete, "anomaly score per vitals reading"},
	{ScoreBatches, KeyDevice, &pb.AnomalyScoreBatch{}, 12, week, Delete, "anomaly scores of a telemetry batch, one record per batch"},
	{Alerts, KeySubject, &pb.Alert{}, 12, 30 * day, Delete, "alerts and their state changes"},
	{AlertAcks, KeyAlert, &pb.AlertAck{}, 12, 30 * day, Delete, "alert acknowledgements"},
	{DeadLetters, KeySource, &pb.DeadLetter{}, 6, 30 * day, Delete, "rejected input with its reason"},
	{Audit, KeyUser, &pb.AuditEvent{}, 3, 365 * day, Delete, "API writes, for audit"},
	{CameraControls, KeyCamera, &pb.VideoEvent{}, 3, day, Delete, "camera sampling-rate changes (emergency boost)"},
}

// All returns the catalog sorted by topic name. The slice is a copy.
func All() []Topic {
	out := append([]Topic(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the catalog entry for name.
func Lookup(name string) (Topic, bool) {
	for _, t := range catalog {
		if t.Name == name {
			return t, true
		}
	}
	return Topic{}, false
}

// ScheduleKey is the record key of a schedule on the Schedules topic.
func ScheduleKey(patientID, medicationID string) string { return patientID + "|" + medicationID }
