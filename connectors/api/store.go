package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// ErrNotFound is returned by a [Store] when the tenant has no such record.
// Records of other tenants are reported as not found too, so that a caller
// cannot learn that an id exists elsewhere.
var ErrNotFound = errors.New("not found")

// Store is what the API reads; ClickHouse in production ([ClickHouseStore]),
// a fake in unit tests. Every method takes the caller's tenant and returns
// only that tenant's rows. Implementations must be safe for concurrent use.
type Store interface {
	// Alerts returns the current version of the tenant's alerts matching f,
	// newest first.
	Alerts(ctx context.Context, tenant string, f AlertFilter) ([]*pb.Alert, error)
	// Alert returns the current version of one alert, or [ErrNotFound].
	Alert(ctx context.Context, tenant, alertID string) (*pb.Alert, error)
	// PatientAdherence returns a patient's daily adherence rows (one per
	// medication and day) for days in [from, to], oldest first.
	PatientAdherence(ctx context.Context, tenant, patientID string, from, to time.Time) ([]*pb.AdherenceWindow, error)
	// WardAdherence returns adherence aggregated per ward and day for days
	// in [from, to]; ward "" means every ward of the tenant.
	WardAdherence(ctx context.Context, tenant, ward string, from, to time.Time) ([]WardAdherence, error)
	// MissedDoses returns MISSED dose outcomes (final version) matching f,
	// newest scheduled time first.
	MissedDoses(ctx context.Context, tenant string, f DoseFilter) ([]*pb.DoseOutcome, error)
	// Anomalies returns vitals anomaly scores at or above f.MinScore since
	// f.Since, newest first.
	Anomalies(ctx context.Context, tenant string, f AnomalyFilter) ([]*pb.AnomalyScore, error)
	// CameraEvents returns video events since the given time, newest first.
	CameraEvents(ctx context.Context, tenant string, since time.Time, limit int) ([]*pb.VideoEvent, error)
	// Schedules returns a patient's current dose schedules (latest version
	// per medication, deleted ones left out), by medication id.
	Schedules(ctx context.Context, tenant, patientID string) ([]*pb.DoseSchedule, error)
	// Commands returns a device's commands in their latest delivery state,
	// newest first.
	Commands(ctx context.Context, tenant, deviceID string, limit int) ([]*pb.DeviceCommand, error)
	// Audit returns the tenant's audit records since the given time, newest
	// first; user "" means every user.
	Audit(ctx context.Context, tenant, user string, since time.Time, limit int) ([]*pb.AuditEvent, error)
	// DeviceKnown reports whether the device has reported (a status or a
	// shadow) under the tenant: the API sends commands only to such devices.
	DeviceKnown(ctx context.Context, tenant, deviceID string) (bool, error)
	// PatientElsewhere reports whether the patient has schedules or
	// intakes under a tenant other than tenant: the API refuses schedule
	// writes for another tenant's patient (the processors key a patient's
	// state by patient id alone).
	PatientElsewhere(ctx context.Context, tenant, patientID string) (bool, error)
	// Shadow returns a device's latest shadow, or [ErrNotFound].
	Shadow(ctx context.Context, tenant, deviceID string) (*pb.DeviceShadow, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
}

// AlertFilter selects alerts. Empty fields do not filter.
type AlertFilter struct {
	// States keeps alerts whose current state is one of these.
	States []pb.AlertState
	// Types keeps alerts of these types.
	Types     []pb.AlertType
	Ward      string
	PatientID string
	DeviceID  string
	// Since keeps alerts opened at or after it (zero: no bound).
	Since time.Time
	// Limit caps the rows returned (the handler always sets it).
	Limit int
}

// DoseFilter selects dose outcomes. Empty fields do not filter.
type DoseFilter struct {
	PatientID string
	Ward      string
	// From and To bound the scheduled time, [From, To).
	From, To time.Time
	// LocalDate (YYYY-MM-DD) keeps doses of that local day of their
	// patient (local_date), "" every day. The scheduled time of a local
	// day lies within a day either side of it, so From and To must still
	// bound it (wider).
	LocalDate string
	Limit     int
}

// AnomalyFilter selects anomaly scores.
type AnomalyFilter struct {
	// MinScore keeps scores >= it (the dashboard uses 5: WARNING and up).
	MinScore float64
	Ward     string
	Since    time.Time
	Limit    int
}

// WardAdherence is adherence of one ward on one day: doses due and taken
// summed over the ward's patients and medications.
type WardAdherence struct {
	Ward     string  `json:"ward"`
	Day      string  `json:"day"`
	Patients int64   `json:"patients"`
	Due      int64   `json:"due"`
	Taken    int64   `json:"taken"`
	Missed   int64   `json:"missed"`
	Ratio    float64 `json:"ratio"`
	// Ratio7d is taken over due, each summed over the ward's patients and
	// the seven days ending that day (not a mean of per-patient ratios).
	Ratio7d float64 `json:"ratio7d"`
}

// Record is one record to publish: a catalog topic, its key and value.
type Record struct {
	Topic string
	Key   string
	Value proto.Message
}

// Publisher writes records to Kafka durably. [KafkaPublisher] in
// production; tests may use kfake behind it or a recording fake.
type Publisher interface {
	// Publish writes every record and returns once all are acknowledged
	// (acks=all) or the first failed; on error some may have been written.
	Publish(ctx context.Context, recs ...Record) error
}

// KafkaPublisher publishes with a franz-go client (idempotent, acks=all, as
// built by internal/kafka). Safe for concurrent use.
type KafkaPublisher struct {
	Client *kgo.Client
}

// Publish implements [Publisher].
func (p KafkaPublisher) Publish(ctx context.Context, recs ...Record) error {
	krs := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		v, err := codec.Marshal(r.Value)
		if err != nil {
			return fmt.Errorf("encoding record for %s: %w", r.Topic, err)
		}
		krs = append(krs, &kgo.Record{Topic: r.Topic, Key: []byte(r.Key), Value: v})
	}
	if err := p.Client.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		return fmt.Errorf("producing %d records to %s: %w", len(krs), krs[0].Topic, err)
	}
	return nil
}
