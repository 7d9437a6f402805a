package bench

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wardstream/wardstream/pipelines/alerts"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// fakeCH answers the Observer's queries from in-memory tables. Like the
// real server it applies only the filters the query text names: a query
// that filters by tenant only gets every row of the tenant.
type fakeCH struct {
	driver.Conn
	mu sync.Mutex
	// answer returns the rows of a query (one []any per row).
	answer func(query string, args []any) [][]any
}

func (f *fakeCH) Query(_ context.Context, q string, args ...any) (driver.Rows, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &fakeRows{rows: f.answer(q, args), i: -1}, nil
}

func (f *fakeCH) QueryRow(_ context.Context, q string, args ...any) driver.Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.answer(q, args)
	if len(rs) == 0 {
		return &fakeRow{err: fmt.Errorf("no rows")}
	}
	return &fakeRow{vals: rs[0]}
}

type fakeRows struct {
	driver.Rows
	rows [][]any
	i    int
}

func (r *fakeRows) Next() bool   { r.i++; return r.i < len(r.rows) }
func (r *fakeRows) Close() error { return nil }
func (r *fakeRows) Err() error   { return nil }
func (r *fakeRows) Scan(dest ...any) error {
	return assign(r.rows[r.i], dest)
}

type fakeRow struct {
	driver.Row
	vals []any
	err  error
}

func (r *fakeRow) Err() error { return r.err }
func (r *fakeRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return assign(r.vals, dest)
}

func assign(vals []any, dest []any) error {
	if len(vals) != len(dest) {
		return fmt.Errorf("fake: %d values for %d columns", len(vals), len(dest))
	}
	for i := range dest {
		reflect.ValueOf(dest[i]).Elem().Set(reflect.ValueOf(vals[i]).Convert(reflect.TypeOf(dest[i]).Elem()))
	}
	return nil
}

func missedID(patient, med string, at time.Time) string {
	return alerts.ID(pb.AlertType_MISSED_DOSE, alerts.SubjectPatient, patient, med+"|"+fmt.Sprint(at.UnixMilli())+"|0")
}

// latency.missed_alert is scheduled+grace -> the MISSED_DOSE alert of that
// dose queryable. A forgetful patient's history dose (the hour before the
// start) was declared missed at the start; when the first live missed dose
// of the same patient and medication fell due, missedWatch attributed
// that old alert to the live dose (it matched on patient and medication
// only) and recorded a latency although the live dose's alert did not
// exist yet.
func TestMissedWatchIgnoresOtherDosesAlerts(t *testing.T) {
	now := time.Now()
	patient, med := "r1-pat-00001", "med-00"
	histDose := now.Add(-50 * time.Minute)
	liveDue := now.Add(-200 * time.Millisecond)
	liveDose := liveDue.Add(-time.Minute) // grace 1 min
	watch := func(alertIDs ...string) LatencyStats {
		fake := &fakeCH{answer: func(q string, _ []any) [][]any {
			if !strings.Contains(q, "alerts") {
				return nil
			}
			var rows [][]any
			for _, id := range alertIDs {
				rows = append(rows, []any{id, "MISSED_DOSE", "OPEN", patient, med, ""})
			}
			return rows
		}}
		h := &harness{o: Options{Stage: StageAll, Roles: "none"}, res: &Results{},
			obs: &Observer{conn: fake, tenant: "bench-r1", runID: "r1"}}
		w := &missedWatch{h: h, seen: map[string]bool{},
			pending: []LiveMissed{{PatientID: patient, MedicationID: med, Scheduled: liveDose, Due: liveDue}}}
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		w.loop(ctx)
		return h.res.Latency.MissedAlert
	}
	// Only the history dose's alert exists: the live dose's MISSED alert
	// has not been raised yet.
	if got := watch(missedID(patient, med, histDose)); got.Samples != 0 {
		t.Errorf("missed_alert latency recorded %d sample(s) (p50 %.0f ms) for a live dose whose alert was never raised: the history dose's alert %s was counted",
			got.Samples, got.P50Ms, missedID(patient, med, histDose))
	}
	// Once the live dose's alert is there, it is the one timed.
	if got := watch(missedID(patient, med, histDose), missedID(patient, med, liveDose)); got.Samples != 1 {
		t.Errorf("missed_alert latency has %d sample(s) with the live dose's alert %s queryable, want 1", got.Samples, missedID(patient, med, liveDose))
	}
}

// --shared runs use the topology's own tenant; the README promises that the
// run "still counts only its own devices ... so production traffic on the
// same tenant does not disturb the numbers". The correctness queries
// (dose_outcomes, adherence, alerts) filtered by tenant only, so every other
// patient's outcome, adherence row and open MISSED_DOSE alert in the tenant
// was reported as unexpected and the run's checks failed although every
// answer about the run's own patients was right.
func TestSharedRunCorrectnessCountsOnlyTheRun(t *testing.T) {
	sc := DefaultScenario()
	sc.Name = "t"
	sc.Pillcases.Count = 2
	sc.Pillcases.Medications = 1
	start := time.Date(2026, 3, 10, 12, 0, 30, 0, time.UTC)
	f, err := NewFleet(&sc, "r1", "hospital-a", start, start.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := f.Expect(nil)
	day := start.Format("2006-01-02")
	// The tenant's rows: the run's own (all right) and a production
	// patient's (not the run's business).
	var outcomes, adherence, alertRows [][]any
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			for _, d := range m.Doses {
				outcomes = append(outcomes, []any{p.ID, m.ID, uint32(d.Scheduled.Unix()), d.Expected.String()})
			}
			a := want.Adherence[p.ID+"|"+m.ID]
			adherence = append(adherence, []any{p.ID, m.ID, int32(a[0]), int32(a[1]), int32(a[0]), int32(a[1])})
		}
	}
	prod := "p-1001"
	outcomes = append(outcomes, []any{prod, "metformin", uint32(start.Add(-2 * time.Hour).Unix()), "MISSED"})
	adherence = append(adherence, []any{prod, "metformin", int32(3), int32(2), int32(20), int32(18)})
	alertRows = append(alertRows, []any{missedID(prod, "metformin", start.Add(-2*time.Hour)), "MISSED_DOSE", "OPEN", prod, "metformin", ""})
	fake := &fakeCH{answer: func(q string, args []any) [][]any {
		switch {
		case strings.Contains(q, "dose_outcomes"):
			return ofRunIfNamed(args, outcomes, 0)
		case strings.Contains(q, "adherence"):
			if len(args) > 1 && args[1] != day {
				return nil
			}
			return ofRunIfNamed(args, adherence, 0)
		case strings.Contains(q, "alerts"):
			return ofRunIfNamed(args, alertRows, 3, 5)
		}
		return nil
	}}
	h := &harness{o: Options{Stage: StageAll, Roles: "none", Shared: true}, res: &Results{}, runID: "r1", tenant: "hospital-a",
		obs: &Observer{conn: fake, tenant: "hospital-a", runID: "r1"}}
	c, err := h.correctness(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]Check{"dose_outcomes": c.DoseOutcomes, "adherence": c.Adherence, "alerts": c.Alerts} {
		if !ch.OK() {
			t.Errorf("%s: %+v: another patient of the shared tenant counted against the run", name, ch)
		}
	}
}

// ofRunIfNamed is what the server answers to a query whose arguments
// bound ids by the run's range ["r1", "r1~"): the rows whose id in one of
// cols lies in it. A query without that range gets every row.
func ofRunIfNamed(args []any, rows [][]any, cols ...int) [][]any {
	if !slices.Contains(args, any("r1")) || !slices.Contains(args, any("r1~")) {
		return rows
	}
	var out [][]any
	for _, r := range rows {
		for _, c := range cols {
			if id := r[c].(string); id >= "r1" && id < "r1~" {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// correctness.alerts must count answers the simulator did not expect
// (Check.Unexpected: "answers the simulator did not expect at all"). A
// PUMP_FAILURE alert for a pump that never reported a failure was silently
// ignored: a pipeline that raised PUMP_FAILURE for every pump was reported
// as all right.
func TestUnexpectedPumpFailureAlertIsCounted(t *testing.T) {
	sc := DefaultScenario()
	sc.Name = "t"
	sc.Pumps = Pumps{Telemetry: Telemetry{Count: 2, Hz: 1}, FailureShare: 0.5}
	start := time.Date(2026, 3, 10, 12, 0, 30, 0, time.UTC)
	f, err := NewFleet(&sc, "r1", "bench-r1", start, start.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	failed, healthy := f.Pumps[0], f.Pumps[1]
	if failed.FailAt.IsZero() || !healthy.FailAt.IsZero() {
		t.Fatalf("want pump 0 failing and pump 1 healthy: %+v", f.Pumps)
	}
	pumpAlert := func(dev string) []any {
		return []any{alerts.ID(pb.AlertType_PUMP_FAILURE, alerts.SubjectDevice, dev, "x"), "PUMP_FAILURE", "OPEN", "", "", dev}
	}
	fake := &fakeCH{answer: func(q string, _ []any) [][]any {
		if strings.Contains(q, "alerts") {
			return [][]any{pumpAlert(failed.ID), pumpAlert(healthy.ID)}
		}
		return nil
	}}
	h := &harness{o: Options{Stage: StageAll, Roles: "none"}, res: &Results{}, runID: "r1", tenant: "bench-r1",
		obs: &Observer{conn: fake, tenant: "bench-r1", runID: "r1"}, failedPumps: map[string]bool{failed.ID: true}}
	c, err := h.correctness(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Alerts.OK() || c.Alerts.Unexpected+c.Alerts.Wrong == 0 {
		t.Errorf("alerts %+v: a PUMP_FAILURE alert for healthy pump %s was not counted", c.Alerts, healthy.ID)
	}
}

// The settle step's completion checks (outcomes complete, alert table
// quiet) read through the same Observer: every read of outcomes,
// adherence and alerts, counts included, is bounded by the run's ids, or
// production alerts on a shared tenant would keep the alert table from
// ever going quiet and their outcomes would complete the run's early.
func TestObserverReadsOnlyTheRunsRows(t *testing.T) {
	var queries []string
	fake := &fakeCH{answer: func(q string, args []any) [][]any {
		if !slices.Contains(args, any("r1")) || !slices.Contains(args, any("r1~")) {
			queries = append(queries, q)
		}
		if strings.Contains(q, "count()") {
			return [][]any{{uint64(0)}}
		}
		return nil
	}}
	o := &Observer{conn: fake, tenant: "hospital-a", runID: "r1"}
	ctx := context.Background()
	if _, err := o.AlertRows(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Outcomes(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Adherence(ctx, "2026-03-10"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Alerts(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Alerts(ctx, "MISSED_DOSE"); err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		t.Errorf("query not bounded by the run's ids: %s", q)
	}
}

// With no live skipped dose there is nothing to time: latency.missed_alert
// says so (method "none"), as it does when no alert was seen.
func TestMissedWatchWithoutLiveMissedDoses(t *testing.T) {
	h := &harness{o: Options{Stage: StageAll, Roles: "none"}, res: &Results{},
		obs: &Observer{conn: &fakeCH{answer: func(string, []any) [][]any { return nil }}, tenant: "bench-r1", runID: "r1"}}
	(&missedWatch{h: h, seen: map[string]bool{}}).loop(context.Background())
	if got := h.res.Latency.MissedAlert; got.Method != "none" || got.Samples != 0 {
		t.Errorf("missed_alert %+v with no live missed dose, want method none", got)
	}
}

// correctness.alerts matched MISSED_DOSE alerts by their number per
// patient and medication: a missed dose without its alert went unseen
// when another dose of the same medication (one the patient took) had an
// unresolved MISSED_DOSE alert in its place, and the check read all right.
func TestMissedAlertsMatchedByDose(t *testing.T) {
	sc := DefaultScenario()
	sc.Name = "t"
	sc.Pillcases.Count = 4
	sc.Pillcases.Medications = 1
	sc.Pillcases.Profiles = map[string]float64{ProfileForgetful: 1}
	start := time.Date(2026, 3, 10, 12, 0, 30, 0, time.UTC)
	f, err := NewFleet(&sc, "r1", "bench-r1", start, start.Add(60*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := f.Expect(nil)
	var outcomes, adherence, alertRows [][]any
	swapped := false
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			var missed, taken []*Dose
			for _, d := range m.Doses {
				outcomes = append(outcomes, []any{p.ID, m.ID, uint32(d.Scheduled.Unix()), d.Expected.String()})
				if d.Expected == pb.Outcome_MISSED {
					missed = append(missed, d)
				} else {
					taken = append(taken, d)
				}
			}
			a := want.Adherence[p.ID+"|"+m.ID]
			adherence = append(adherence, []any{p.ID, m.ID, int32(a[0]), int32(a[1]), int32(a[0]), int32(a[1])})
			for i, d := range missed {
				at := d.Scheduled
				if !swapped && i == 0 && len(taken) > 0 {
					// The missed dose's alert is absent; a taken dose's is open.
					at, swapped = taken[0].Scheduled, true
				}
				alertRows = append(alertRows, []any{missedID(p.ID, m.ID, at), "MISSED_DOSE", "OPEN", p.ID, m.ID, ""})
			}
		}
	}
	if !swapped {
		t.Fatal("no medication with both a missed and a taken dose: adjust the scenario")
	}
	fake := &fakeCH{answer: func(q string, _ []any) [][]any {
		switch {
		case strings.Contains(q, "dose_outcomes"):
			return outcomes
		case strings.Contains(q, "adherence"):
			return adherence
		case strings.Contains(q, "alerts"):
			return alertRows
		}
		return nil
	}}
	h := &harness{o: Options{Stage: StageAll, Roles: "none"}, res: &Results{}, runID: "r1", tenant: "bench-r1",
		obs: &Observer{conn: fake, tenant: "bench-r1", runID: "r1"}}
	c, err := h.correctness(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if !c.DoseOutcomes.OK() || !c.Adherence.OK() {
		t.Fatalf("outcomes %+v, adherence %+v: want both right", c.DoseOutcomes, c.Adherence)
	}
	if c.Alerts.OK() || c.Alerts.Missing != 1 || c.Alerts.Unexpected+c.Alerts.Wrong != 1 {
		t.Errorf("alerts %+v: want 1 missing (the missed dose's) and 1 wrong or unexpected (the taken dose's)", c.Alerts)
	}
}
