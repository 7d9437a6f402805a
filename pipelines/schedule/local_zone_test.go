package schedule

import (
	"testing"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// time.LoadLocation accepts "Local" (and "UTC"): "Local" is the zone of
// whichever host computes the doses, so a schedule naming it was due at
// different instants on processors in different zones, and `schedules
// apply` validated it on the operator's machine.
func TestLocalTimezoneIsRejected(t *testing.T) {
	s := &pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: "Local", Times: []string{"08:00"}, StartDate: "2026-01-01", Version: 1}
	if _, err := Parse(s); err == nil {
		t.Error(`Parse accepted timezone "Local", the host's zone`)
	}
}
