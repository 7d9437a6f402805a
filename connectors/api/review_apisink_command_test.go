package api_test

// Review test (rev-apisink): states a contract clause and failed on the
// code before its fix. It uses the package's harness (helpers_test.go).

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/api"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Contract (README routes): schedules reach devices as the UPDATE_SCHEDULE
// command the schedules endpoints send, after the checks those endpoints
// make (times, zone, windows no shorter than grace: schemas/dose; the
// patient not another tenant's) and together with the DoseSchedule the
// processors track adherence against. POST /devices/{id}/commands accepted
// UPDATE_SCHEDULE with any JSON object as its payload, so a schedule no
// endpoint would accept (or one the processors never saw) reached the
// device.
func TestRawUpdateScheduleCommandRefused(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
	for _, tc := range []struct {
		name, body string
	}{
		{"invalid times and windows", `{"commandType":"UPDATE_SCHEDULE","payload":{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["25:99"],"graceMinutes":120}}`},
		{"window shorter than grace", `{"commandType":"UPDATE_SCHEDULE","payload":{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"earlyWindowMinutes":10}}`},
		{"no zone", `{"commandType":"UPDATE_SCHEDULE","payload":{"patientId":"p-1","medicationId":"m-1","times":["08:00"]}}`},
		{"valid schedule, but not through the schedules endpoints", `{"commandType":"UPDATE_SCHEDULE","payload":{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"]}}`},
		{"no payload", `{"commandType":"UPDATE_SCHEDULE"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/api/v1/devices/pill-1/commands", tok, tc.body)
			if r.code != 400 {
				t.Fatalf("%d, want 400: %s", r.code, r.body)
			}
			if msg, _ := r.json(t)["error"].(string); !strings.Contains(msg, "/api/v1/schedules") {
				t.Errorf("error %q does not point to the schedules endpoints", msg)
			}
		})
	}
	if n := len(h.pub.byTopic(topics.Commands)); n != 0 {
		t.Fatalf("published %d UPDATE_SCHEDULE commands that bypassed schedule validation", n)
	}
	// Refused writes are audited like any other.
	if n := len(h.pub.byTopic(topics.Audit)); n != 5 {
		t.Fatalf("%d audit records, want 5", n)
	}
	// Other command types are unaffected.
	if r := h.do("POST", "/api/v1/devices/pill-1/commands", tok, `{"commandType":"PING"}`); r.code != 202 {
		t.Fatalf("PING: %d %s", r.code, r.body)
	}
	// The schedules endpoint still sends the device its schedule.
	ok := `{"patientId":"p-1","medicationId":"m-1","deviceId":"pill-1","timezone":"UTC","times":["08:00"]}`
	if r := h.do("POST", "/api/v1/schedules", tok, ok); r.code != 201 {
		t.Fatalf("schedule: %d %s", r.code, r.body)
	}
	var sched int
	for _, rec := range h.pub.byTopic(topics.Commands) {
		if rec.Value.(*pb.DeviceCommand).CommandType == pb.CommandType_UPDATE_SCHEDULE {
			sched++
		}
	}
	if sched != 1 {
		t.Fatalf("%d UPDATE_SCHEDULE commands after a schedule write, want 1", sched)
	}
}
