package clickhouse_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// TestBIViewsReadOnlyExactRollups: a rollup keeps argMax(value, version)
// states per group, which is exact under versions only if every grouping
// column is part of the source row's identity (its ORDER BY). The
// adherence_daily rollup (migration 2, frozen) also groups by ward, which
// is not: a later version of a (patient, medication, day) in another ward
// (the adherence processor takes the ward from the latest schedule, so a
// transfer re-emits the day under the new ward) starts a second state, and
// the superseded version stays counted under the old ward. So no BI view
// may read such a rollup; bi_adherence_daily reads the adherence table
// since migration 5.
func TestBIViewsReadOnlyExactRollups(t *testing.T) {
	for _, r := range chschema.Rollups() {
		src, ok := chschema.LookupTable(r.From)
		if !ok || src.Version == "" {
			continue // event rows: no versions to keep apart
		}
		exact := true
		for _, c := range r.OrderBy {
			if !slices.Contains(src.OrderBy, c) && c != "minute" && c != "hour" && c != "day" {
				exact = false
			}
		}
		if exact {
			continue
		}
		for _, v := range chschema.Views() {
			if slices.Contains(v.Reads, r.Name) {
				t.Errorf("BI view %s reads rollup %s, whose grouping %v is not within %s's identity %v", v.Name, r.Name, r.OrderBy, src.Name, src.OrderBy)
			}
		}
	}
}

// TestIntegrationBIAdherenceExact and its modern twin: bi_adherence_daily
// (migration 5) on both server profiles, on two cases the rollup-based
// view of migration 3 got wrong.
func TestIntegrationBIAdherenceExact(t *testing.T) {
	e, db := server(t)
	biAdherenceExact(t, e, db)
}

func TestIntegrationModernBIAdherenceExact(t *testing.T) {
	e, db := modern(t)
	biAdherenceExact(t, e, db)
}

func biAdherenceExact(t *testing.T, e engine, db string) {
	if _, err := (&chschema.Migrator{Conn: e.conn, Database: db}).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	day := ts("2026-11-01 00:00:00")
	const cols = "tenant, event_id, event_time, ingest_time, patient_id, medication_id, ward, day, daily_due, daily_taken, version"
	// h1: one patient-day, version 1 in ward w1 (2 due, 0 taken), version
	// 2 after a transfer to w2 (2 due, 2 taken): the day counts once, in
	// w2, 2/2 (the rollup kept the superseded w1 version counted too).
	// h2: p1's day was retracted (a later version with nothing due), p2
	// took 1 of 1: one patient counted, 1/1.
	e.insert(t, db, "adherence", cols,
		[]any{"h1", "p1|medA|2026-11-01@1", day, day, "p1", "medA", "w1", day, int32(2), int32(0), uint64(1)},
		[]any{"h1", "p1|medA|2026-11-01@2", day, day, "p1", "medA", "w2", day, int32(2), int32(2), uint64(2)},
		[]any{"h2", "p1@1", day, day, "p1", "medA", "w1", day, int32(2), int32(0), uint64(1)},
		[]any{"h2", "p1@2", day, day, "p1", "medA", "w1", day, int32(0), int32(0), uint64(2)},
		[]any{"h2", "p2@1", day, day, "p2", "medA", "w1", day, int32(1), int32(1), uint64(1)},
	)
	for _, c := range []struct{ q, want string }{
		{"SELECT ward, toString(patients), toString(doses_due), toString(doses_taken) FROM " + db + ".bi_adherence_daily WHERE tenant = 'h1' ORDER BY ward", "[[w2 1 2 2]]"},
		{"SELECT toString(sum(doses_due)), toString(sum(doses_taken)) FROM " + db + ".bi_adherence_daily WHERE tenant = 'h1'", "[[2 2]]"},
		{"SELECT toString(patients), toString(doses_due), toString(doses_taken) FROM " + db + ".bi_adherence_daily WHERE tenant = 'h2'", "[[1 1 1]]"},
	} {
		if got := fmt.Sprint(e.rows(t, c.q)); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.q, got, c.want)
		}
	}
}
