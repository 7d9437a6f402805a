package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func TestLocalInstantDST(t *testing.T) {
	cases := []struct {
		zone, date, clock string
		wantUTC           string
	}{
		// Ordinary days.
		{"America/New_York", "2024-03-09", "08:00", "2024-03-09T13:00:00Z"},
		{"Europe/Berlin", "2024-07-01", "08:00", "2024-07-01T06:00:00Z"},
		// Spring forward: 02:00-03:00 does not exist; moves forward by the gap.
		{"America/New_York", "2024-03-10", "02:30", "2024-03-10T07:30:00Z"}, // = 03:30 EDT
		{"America/New_York", "2024-03-10", "02:00", "2024-03-10T07:00:00Z"}, // = 03:00 EDT
		{"America/New_York", "2024-03-10", "03:00", "2024-03-10T07:00:00Z"}, // exists: 03:00 EDT
		{"America/New_York", "2024-03-10", "01:59", "2024-03-10T06:59:00Z"}, // EST
		{"Europe/Berlin", "2024-03-31", "02:30", "2024-03-31T01:30:00Z"},    // = 03:30 CEST
		{"Europe/Berlin", "2024-03-31", "03:00", "2024-03-31T01:00:00Z"},
		// Fall back: 01:00-02:00 (NY) / 02:00-03:00 (Berlin) happen twice; first occurrence wins.
		{"America/New_York", "2024-11-03", "01:30", "2024-11-03T05:30:00Z"}, // EDT, not 06:30Z
		{"America/New_York", "2024-11-03", "01:00", "2024-11-03T05:00:00Z"},
		{"America/New_York", "2024-11-03", "02:00", "2024-11-03T07:00:00Z"}, // EST, unambiguous
		{"Europe/Berlin", "2024-10-27", "02:30", "2024-10-27T00:30:00Z"},    // CEST, not 01:30Z
		{"Europe/Berlin", "2024-10-27", "03:00", "2024-10-27T02:00:00Z"},
		// A zone without DST.
		{"Asia/Kolkata", "2024-03-10", "02:30", "2024-03-09T21:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.zone+"/"+c.date+"/"+c.clock, func(t *testing.T) {
			loc, err := time.LoadLocation(c.zone)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := time.Parse(schedule.DateLayout, c.date)
			m, err := schedule.ParseClock(c.clock)
			if err != nil {
				t.Fatal(err)
			}
			got := schedule.LocalInstant(d, m, loc).UTC().Format(time.RFC3339)
			if got != c.wantUTC {
				t.Fatalf("got %s, want %s", got, c.wantUTC)
			}
		})
	}
}

func sched(mod func(*pb.DoseSchedule)) *pb.DoseSchedule {
	s := &pb.DoseSchedule{PatientId: "p1", MedicationId: "m1", Timezone: "America/New_York",
		Times: []string{"08:00", "01:30", "02:30"}, StartDate: "2024-03-09", EndDate: "2024-03-11", Version: 1}
	if mod != nil {
		mod(s)
	}
	return s
}

func TestInstancesAcrossDST(t *testing.T) {
	sp, err := schedule.Parse(sched(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := sp.Instances(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC))
	var s []string
	for _, in := range got {
		s = append(s, in.LocalDate+"="+in.At.UTC().Format("01-02T15:04"))
	}
	want := "2024-03-09=03-09T06:30 2024-03-09=03-09T07:30 2024-03-09=03-09T13:00 " +
		"2024-03-10=03-10T06:30 2024-03-10=03-10T07:30 2024-03-10=03-10T12:00 " +
		"2024-03-11=03-11T05:30 2024-03-11=03-11T06:30 2024-03-11=03-11T12:00"
	if strings.Join(s, " ") != want {
		t.Fatalf("instances\n got %s\nwant %s", strings.Join(s, " "), want)
	}
	// Fall back: the ambiguous 01:30 happens once.
	sp, _ = schedule.Parse(sched(func(s *pb.DoseSchedule) {
		s.StartDate, s.EndDate, s.Times = "2024-11-03", "2024-11-03", []string{"01:30"}
	}))
	if n := len(sp.Instances(time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 11, 5, 0, 0, 0, 0, time.UTC))); n != 1 {
		t.Fatalf("ambiguous 01:30 gave %d doses, want 1", n)
	}
}

func TestInstancesDaysSlotsBounds(t *testing.T) {
	sp, err := schedule.Parse(sched(func(s *pb.DoseSchedule) {
		s.Timezone, s.Times, s.DaysOfWeek, s.DosesPerTime = "Europe/Berlin", []string{"09:00"}, []int32{1, 3}, 2 // Mon, Wed
		s.StartDate, s.EndDate = "2024-07-01", "2024-07-10"
	}))
	if err != nil {
		t.Fatal(err)
	}
	all := sp.Instances(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC))
	// Mondays 1, 8; Wednesdays 3, 10 (end date inclusive); two slots each.
	if len(all) != 8 {
		t.Fatalf("got %d doses, want 8: %v", len(all), all)
	}
	if all[0].Slot != 0 || all[1].Slot != 1 || !all[0].At.Equal(all[1].At) || all[0].At.UTC().Hour() != 7 {
		t.Fatalf("slots wrong: %v", all[:2])
	}
	if all[7].LocalDate != "2024-07-10" {
		t.Fatalf("last dose on %s, want the inclusive end date", all[7].LocalDate)
	}
	// Half-open range [from, to).
	at := all[0].At
	if n := len(sp.Instances(at, at.Add(time.Minute))); n != 2 {
		t.Fatalf("[at, at+1m) holds %d doses, want 2", n)
	}
	if n := len(sp.Instances(at.Add(-time.Minute), at)); n != 0 {
		t.Fatalf("[at-1m, at) holds %d doses, want 0", n)
	}
}

func TestClassifyBoundaries(t *testing.T) {
	sp, err := schedule.Parse(sched(nil)) // defaults: grace 15, early 60, late 240
	if err != nil {
		t.Fatal(err)
	}
	min := int64(60_000)
	cases := []struct {
		d    int64
		want pb.Outcome
		in   bool
	}{
		{0, pb.Outcome_TAKEN_ON_TIME, true},
		{15 * min, pb.Outcome_TAKEN_ON_TIME, true},
		{-15 * min, pb.Outcome_TAKEN_ON_TIME, true},
		{15*min + 1, pb.Outcome_TAKEN_LATE, true},
		{-15*min - 1, pb.Outcome_TAKEN_EARLY, true},
		{-60 * min, pb.Outcome_TAKEN_EARLY, true},
		{-60*min - 1, pb.Outcome_OUTCOME_UNSPECIFIED, false},
		{240 * min, pb.Outcome_TAKEN_LATE, true},
		{240*min + 1, pb.Outcome_OUTCOME_UNSPECIFIED, false},
	}
	for _, c := range cases {
		got, in := sp.Classify(1_000_000_000_000, 1_000_000_000_000+c.d)
		if got != c.want || in != c.in {
			t.Errorf("delta %dms: got %s/%v, want %s/%v", c.d, got, in, c.want, c.in)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*pb.DoseSchedule)
		want string
	}{
		{"zone", func(s *pb.DoseSchedule) { s.Timezone = "Mars/Olympus" }, "timezone"},
		{"time", func(s *pb.DoseSchedule) { s.Times = []string{"8:00"} }, "times[0]"},
		{"time24", func(s *pb.DoseSchedule) { s.Times = []string{"24:00"} }, "times[0]"},
		{"dow", func(s *pb.DoseSchedule) { s.DaysOfWeek = []int32{7} }, "days_of_week[0]"},
		{"start", func(s *pb.DoseSchedule) { s.StartDate = "" }, "start_date"},
		{"end", func(s *pb.DoseSchedule) { s.EndDate = "2024-01-01" }, "end_date"},
		{"version", func(s *pb.DoseSchedule) { s.Version = 0 }, "version"},
		{"grace", func(s *pb.DoseSchedule) { s.GraceMinutes, s.EarlyWindowMinutes = 90, 60 }, "early_window_minutes"},
		{"patient", func(s *pb.DoseSchedule) { s.PatientId = "" }, "patient_id"},
	}
	for _, c := range cases {
		_, err := schedule.Parse(sched(c.mod))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want mention of %s", c.name, err, c.want)
		}
	}
}

func TestParseFile(t *testing.T) {
	good := `
tenant: hospital-a
schedules:
  - patient_id: p1
    medication_id: m1
    timezone: Europe/Berlin
    times: ["08:00", "20:00"]
    start_date: 2026-01-01
    version: 1
`
	f, scheds, err := schedule.ParseFile(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if f.Tenant != "hospital-a" || len(scheds) != 1 || scheds[0].GraceMinutes != 15 || scheds[0].LateWindowMinutes != 240 || scheds[0].DosesPerTime != 1 {
		t.Fatalf("defaults not applied: %v", scheds)
	}
	bad := good + "    colour: red\n"
	if _, _, err := schedule.ParseFile(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("unknown key accepted: %v", err)
	}
	dup := good + `  - patient_id: p1
    medication_id: m1
    timezone: UTC
    times: ["08:00"]
    start_date: 2026-01-01
    version: 2
  - patient_id: p2
    medication_id: m1
    timezone: UTC
    times: ["8am"]
    start_date: 2026-01-01
    version: 1
`
	_, _, err = schedule.ParseFile(strings.NewReader(dup))
	if err == nil || !strings.Contains(err.Error(), "schedules[1]") || !strings.Contains(err.Error(), "schedules[2]") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add("schedules:\n  - patient_id: p\n    medication_id: m\n    timezone: UTC\n    times: ['08:00']\n    start_date: 2026-01-01\n    version: 1\n")
	f.Add("schedules: []")
	f.Add("{")
	f.Fuzz(func(t *testing.T, s string) {
		_, scheds, err := schedule.ParseFile(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, sc := range scheds {
			sp, err := schedule.Parse(sc)
			if err != nil {
				t.Fatalf("ParseFile accepted an invalid schedule: %v", err)
			}
			sp.Instances(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC))
		}
	})
}
