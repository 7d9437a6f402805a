package reference_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardstream/wardstream/pipelines/reference"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

var ny, _ = time.LoadLocation("America/New_York")

func at(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, ny)
	if err != nil {
		panic(err)
	}
	return t
}

func in(id, local, status string) *pb.MedicationIntake {
	return &pb.MedicationIntake{Meta: &pb.Meta{EventId: id}, PatientId: "p", MedicationId: "m", IntakeTimeMs: at(local).UnixMilli(), Status: status}
}

func doseID(local string) string { return fmt.Sprintf("p|m|%d|0", at(local).UnixMilli()) }

func TestDefinitions(t *testing.T) {
	// Two doses a day around the spring DST change: 02:30 does not exist on
	// 2024-03-10 and is due at 03:30 EDT.
	s := &pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: "America/New_York", Times: []string{"02:30", "04:00"},
		StartDate: "2024-03-09", EndDate: "2024-03-10", Version: 1}
	intakes := []*pb.MedicationIntake{
		in("a", "2024-03-09 02:40", "taken"),   // 02:30 on time (+10)
		in("a", "2024-03-09 02:40", "taken"),   // duplicate
		in("b", "2024-03-09 03:50", "taken"),   // nearest: 04:00 early? -10 min: on time
		in("c", "2024-03-09 05:00", "taken"),   // 04:00 taken; 02:30 is late-window but already taken -> EXTRA
		in("d", "2024-03-10 03:35", "skipped"), // takes nothing
		in("e", "2024-03-10 05:00", "taken"),   // 03:30 EDT (+90) late vs 04:00 (+60) late: nearest is 04:00
	}
	res, err := reference.Compute(reference.Input{Schedules: []*pb.DoseSchedule{s}, Intakes: intakes, From: at("2024-03-01 00:00"), To: at("2024-03-20 00:00")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]pb.Outcome{
		doseID("2024-03-09 02:30"): pb.Outcome_TAKEN_ON_TIME,
		doseID("2024-03-09 04:00"): pb.Outcome_TAKEN_ON_TIME,
		doseID("2024-03-10 03:30"): pb.Outcome_MISSED, // the 02:30 dose, moved by the gap
		doseID("2024-03-10 04:00"): pb.Outcome_TAKEN_LATE,
		"p|m|extra|c":              pb.Outcome_EXTRA,
	}
	for id, o := range want {
		if got := res.Outcomes[id]; got.Outcome != o {
			t.Errorf("%s: got %s, want %s", id, got.Outcome, o)
		}
	}
	if len(res.Outcomes) != len(want) {
		t.Errorf("%d outcomes, want %d: %v", len(res.Outcomes), len(want), res.Outcomes)
	}
	w9, w10 := res.Windows["p|m|2024-03-09"], res.Windows["p|m|2024-03-10"]
	if w9.DailyDue != 2 || w9.DailyTaken != 2 || w9.PDC30d != 1 || w9.Ratio7d != 1 {
		t.Errorf("2024-03-09: %+v", w9)
	}
	if w10.DailyDue != 2 || w10.DailyTaken != 1 || w10.DailyRatio != 0.5 || w10.Due7d != 4 || w10.Taken7d != 3 || w10.Ratio7d != 0.75 || w10.PDC30d != 0.5 {
		t.Errorf("2024-03-10: %+v", w10)
	}
	if got := reference.Ratio(2, 3); got != 0.666667 {
		t.Errorf("Ratio(2,3) = %v", got)
	}
	if got := reference.Ratio(0, 0); got != 0 {
		t.Errorf("Ratio(0,0) = %v", got)
	}
}

func TestHighestVersionAndDeletion(t *testing.T) {
	v1 := &pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: "America/New_York", Times: []string{"08:00"}, StartDate: "2024-03-09", EndDate: "2024-03-09", Version: 1}
	v2 := &pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: "America/New_York", Times: []string{"09:00"}, StartDate: "2024-03-09", EndDate: "2024-03-09", Version: 2}
	res, err := reference.Compute(reference.Input{Schedules: []*pb.DoseSchedule{v2, v1}, From: at("2024-03-01 00:00"), To: at("2024-03-20 00:00")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Outcomes[doseID("2024-03-09 09:00")]; !ok || len(res.Outcomes) != 1 {
		t.Fatalf("version 2 must win regardless of order: %v", res.Outcomes)
	}
	del := &pb.DoseSchedule{PatientId: "p", MedicationId: "m", Timezone: "America/New_York", Times: []string{"09:00"}, StartDate: "2024-03-09", Version: 3, Deleted: true}
	res, _ = reference.Compute(reference.Input{Schedules: []*pb.DoseSchedule{v1, del, v2}, From: at("2024-03-01 00:00"), To: at("2024-03-20 00:00")})
	if len(res.Outcomes) != 0 {
		t.Fatalf("deleted schedule still has doses: %v", res.Outcomes)
	}
}
