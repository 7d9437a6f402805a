package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/api"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// TestIntegrationDashboardMissedTodayIsLocalDay: the dashboard's "missed
// doses today" list must hold the doses of the patients' local day, the
// same day the wards panel counts (local_date), not the doses scheduled
// since midnight in api.timezone. Before the fix a Berlin patient's 00:30
// dose (23:30 UTC the evening before) was counted in the ward's missed
// column but absent from the list, and a New York patient's 19:30 dose of
// yesterday (00:30 UTC today) was listed though its ward counted it
// yesterday.
func TestIntegrationDashboardMissedTodayIsLocalDay(t *testing.T) {
	e := openIT(t)
	day := time.Now().UTC().AddDate(0, 0, -2)
	d := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	today, yesterday := d.Format(time.DateOnly), d.AddDate(0, 0, -1).Format(time.DateOnly)
	dose := func(id, patient, localDate string, at time.Time) {
		e.insert(t, chschema.TDoseOutcomes, with(meta("hosp-tz", id, at), "dose_id", id, "patient_id", patient,
			"medication_id", "med-1", "device_id", "pill-"+patient, "ward", "ward-z", "scheduled_time", at,
			"local_date", localDate, "outcome", "MISSED", "version", uint64(1)))
	}
	dose("dose-berlin", "pat-berlin", today, d.Add(-30*time.Minute)) // 00:30 Berlin today
	dose("dose-ny", "pat-ny", yesterday, d.Add(30*time.Minute))      // 19:30 New York yesterday

	h := newHarness(t, nil, api.WithStore(e.store))
	h.now = d.Add(12 * time.Hour)
	r := h.do("GET", "/api/v1/dashboard", h.token("n", "hosp-tz", api.RoleMedicalStaff), "")
	if r.code != 200 {
		t.Fatalf("dashboard %d %s", r.code, r.body)
	}
	var got struct {
		Today       string
		Wards       []api.WardAdherence
		MissedToday []struct{ DoseId, LocalDate string }
		Errors      map[string]string
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Today != today || len(got.Errors) > 0 {
		t.Fatalf("today %s errors %v", got.Today, got.Errors)
	}
	if len(got.Wards) != 1 || got.Wards[0].Missed != 1 {
		t.Fatalf("wards %+v", got.Wards)
	}
	if len(got.MissedToday) != 1 || got.MissedToday[0].DoseId != "dose-berlin" || got.MissedToday[0].LocalDate != today {
		t.Fatalf("missed today %+v, want only dose-berlin (local date %s), as the ward panel counts", got.MissedToday, today)
	}
}
