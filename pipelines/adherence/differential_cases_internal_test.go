package adherence

import (
	"testing"
	"time"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Minimal cases FuzzAgainstReference found, each compared with the
// reference as runFz does.

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04:05.000", s)
	if err != nil {
		panic(err)
	}
	return t
}

func fzSched(key string, ver int64, from string, times []string, start, end string) *pb.DoseSchedule {
	p, m, _ := patientOf(key)
	return &pb.DoseSchedule{Meta: &pb.Meta{Tenant: "t1", EventId: "s-" + key, EventTimeMs: utc(from).UnixMilli()}, PatientId: p, MedicationId: m,
		Timezone: "Europe/London", Times: times, StartDate: start, EndDate: end, Version: ver}
}

func fzTick(at, visit string) fzRec { return fzRec{at: utc(at), kind: 't', tick: utc(visit)} }

func fzIntake(at, id, key, t, status string) fzRec {
	p, m, _ := patientOf(key)
	return fzRec{at: utc(at), kind: 'i', in: &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: utc(t).UnixMilli()},
		PatientId: p, MedicationId: m, IntakeTimeMs: utc(t).UnixMilli(), Status: status}}
}

func TestDifferentialCases(t *testing.T) {
	cases := []struct {
		name    string
		recs    []fzRec
		horizon time.Duration
	}{
		// A visit with a clock 3 h ahead prunes the 26 October dose (its
		// outcome, MISSED v1, is final); a version written later arrives
		// at processing time behind that clock: its regeneration from
		// now-horizon made the pruned dose again, emitted MISSED v1 a
		// second time and counted it twice in the day's window.
		{"version after a visit ahead re-creates a pruned dose", []fzRec{
			{at: utc("2024-10-24T15:16:46.000"), kind: 's', key: "p0|m0",
				s: fzSched("p0|m0", 1, "2024-10-24T15:14:56.000", []string{"02:30"}, "2024-10-26", "2024-10-26")},
			fzTick("2024-10-29T00:32:00.000", "2024-10-29T03:49:00.000"),
			{at: utc("2024-10-29T00:40:56.000"), kind: 's', key: "p0|m0",
				s: fzSched("p0|m0", 2, "2024-10-29T00:39:28.000", []string{"00:30"}, "2024-10-25", "2024-10-27")},
			fzTick("2024-10-31T00:00:00.000", "2024-10-31T00:00:00.000"),
		}, 72 * time.Hour},
		// The dose at 2 July 07:00 UTC is within the 24 h horizon when an
		// intake 4 h 59 min early (early window 5 h, late window 15 min)
		// arrives; the intake was dead-lettered because its time plus
		// the late window was older than the horizon, though the doses
		// it can match are up to its time plus the early window.
		{"early intake for a dose within the horizon", []fzRec{
			{at: utc("2024-07-01T00:00:00.000"), kind: 's', key: "p0|m0",
				s: withWindows(fzSched("p0|m0", 1, "2024-07-01T00:00:00.000", []string{"08:00"}, "2024-07-02", "2024-07-02"), 15, 300, 15)},
			fzTick("2024-07-02T07:16:00.000", "2024-07-02T07:16:00.000"),
			fzIntake("2024-07-03T06:00:00.000", "i1", "p0|m0", "2024-07-02T02:01:00.000", "taken"),
			fzTick("2024-07-04T00:00:00.000", "2024-07-04T00:00:00.000"),
		}, 24 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := &fz{horizon: c.horizon, from: utc("2024-01-01T00:00:00.000"), to: utc("2025-01-01T00:00:00.000"), recs: c.recs}
			if d := runFz(t, sc); d != "" {
				t.Fatalf("%s\nscenario:\n%s", d, sc)
			}
		})
	}
}

func withWindows(s *pb.DoseSchedule, grace, early, late int32) *pb.DoseSchedule {
	s.GraceMinutes, s.EarlyWindowMinutes, s.LateWindowMinutes = grace, early, late
	return s
}
