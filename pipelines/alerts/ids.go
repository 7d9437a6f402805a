package alerts

import (
	"time"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Subject types of alerts.
const (
	SubjectPatient = "patient"
	SubjectDevice  = "device"
)

// ID is the deterministic id of an alert: type, subject and window joined
// by "|", e.g. "MISSED_DOSE|patient|p-1|metformin|1767254400000|0". The
// same condition on the same subject in the same window always gets the
// same id, so replays and duplicates land on one alert.
func ID(t pb.AlertType, subjectType, subjectID, window string) string {
	return t.String() + "|" + subjectType + "|" + subjectID + "|" + window
}

// Request builds an alert request (the record the detecting processors send
// to the alerts group): state OPEN to raise, RESOLVED to resolve. The alerts
// group owns the alert's lifecycle, version and escalation.
func Request(tenant string, t pb.AlertType, p pb.Priority, state pb.AlertState, subjectType, subjectID, window string, eventTime, now time.Time) *pb.Alert {
	id := ID(t, subjectType, subjectID, window)
	a := &pb.Alert{
		Meta:    &pb.Meta{Tenant: tenant, EventId: id + "@" + state.String(), EventTimeMs: eventTime.UnixMilli(), IngestTimeMs: now.UnixMilli()},
		AlertId: id, AlertType: t, Priority: p, State: state, SubjectType: subjectType, SubjectId: subjectID,
	}
	switch subjectType {
	case SubjectPatient:
		a.PatientId = subjectID
	case SubjectDevice:
		a.DeviceId = subjectID
	}
	return a
}
