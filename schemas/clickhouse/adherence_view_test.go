package clickhouse_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/testutil/chdb"
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

// chdbEngine starts chDB (ClickHouse 26.9 as a library, a python child
// with a temp data directory; no server) when it is installed, and
// migrates a database on it with the modern profile.
func chdbEngine(t *testing.T) (*chdb.Conn, string) {
	t.Helper()
	site := chdb.Site()
	if site == "" {
		t.Skip("chDB not installed (set WARDSTREAM_CHDB_SITE)")
	}
	c, err := chdb.Start(site, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	const db = "wsbiview"
	if _, err := (&chschema.Migrator{Conn: c, Database: db}).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, db
}

func chInsert(t *testing.T, c *chdb.Conn, db, table, cols string, rows ...[]any) {
	t.Helper()
	vals := make([]string, len(rows))
	for i, r := range rows {
		lits := make([]string, len(r))
		for j, v := range r {
			lits[j] = chdb.Literal(v)
		}
		vals[i] = "(" + strings.Join(lits, ", ") + ")"
	}
	if err := c.Exec(context.Background(), "INSERT INTO "+db+"."+table+" ("+cols+") VALUES "+strings.Join(vals, ", ")); err != nil {
		t.Fatalf("insert %s: %v", table, err)
	}
}

func chRows(t *testing.T, c *chdb.Conn, q string) string {
	t.Helper()
	rows, err := c.QueryStrings(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return fmt.Sprint(rows)
}

// TestBIAdherenceWardChangeCountedOnce: one patient, one medication, one
// day; version 1 in ward w1 (2 due, 0 taken), version 2 after a transfer
// to w2 (2 due, 2 taken). The base table's latest version is the w2 row,
// so bi_adherence_daily must show the day once, in w2, 2/2. It shows it in
// both wards: 4 doses due for the tenant instead of 2.
func TestBIAdherenceWardChangeCountedOnce(t *testing.T) {
	c, db := chdbEngine(t)
	day := ts("2026-11-01 00:00:00")
	const cols = "tenant, event_id, event_time, ingest_time, patient_id, medication_id, ward, day, daily_due, daily_taken, version"
	chInsert(t, c, db, "adherence", cols,
		[]any{"h1", "p1|medA|2026-11-01@1", day, day, "p1", "medA", "w1", day, int32(2), int32(0), uint64(1)},
		[]any{"h1", "p1|medA|2026-11-01@2", day, day, "p1", "medA", "w2", day, int32(2), int32(2), uint64(2)},
	)
	base := chRows(t, c, "SELECT argMax(ward, version), toString(argMax(daily_due, version)), toString(argMax(daily_taken, version)) FROM "+db+".adherence WHERE tenant = 'h1' GROUP BY patient_id, medication_id, day")
	if want := "[[w2 2 2]]"; base != want {
		t.Fatalf("base table latest version: got %s, want %s", base, want)
	}
	got := chRows(t, c, "SELECT ward, toString(patients), toString(doses_due), toString(doses_taken) FROM "+db+".bi_adherence_daily WHERE tenant = 'h1' ORDER BY ward")
	if want := "[[w2 1 2 2]]"; got != want {
		t.Errorf("bi_adherence_daily after a ward change: got %s, want %s (the superseded w1 version is still counted)", got, want)
	}
	tot := chRows(t, c, "SELECT toString(sum(doses_due)), toString(sum(doses_taken)) FROM "+db+".bi_adherence_daily WHERE tenant = 'h1'")
	if want := "[[2 2]]"; tot != want {
		t.Errorf("tenant total from bi_adherence_daily: got %s, want %s", tot, want)
	}
}

// TestBIAdherencePatientsWithNothingDue: the adherence processor retracts a
// day's doses (a schedule version removed them) by a new version with
// daily_due = daily_taken = 0, which "supersedes the day's earlier window
// downstream". bi_adherence_daily.patients is documented as "patients with
// doses due or taken that day", but it is count() of the latest states, so
// the patient is still counted.
func TestBIAdherencePatientsWithNothingDue(t *testing.T) {
	c, db := chdbEngine(t)
	day := ts("2026-11-01 00:00:00")
	const cols = "tenant, event_id, event_time, ingest_time, patient_id, medication_id, ward, day, daily_due, daily_taken, version"
	chInsert(t, c, db, "adherence", cols,
		[]any{"h1", "p1@1", day, day, "p1", "medA", "w1", day, int32(2), int32(0), uint64(1)},
		[]any{"h1", "p1@2", day, day, "p1", "medA", "w1", day, int32(0), int32(0), uint64(2)}, // retracted
		[]any{"h1", "p2@1", day, day, "p2", "medA", "w1", day, int32(1), int32(1), uint64(1)},
	)
	got := chRows(t, c, "SELECT toString(patients), toString(doses_due), toString(doses_taken) FROM "+db+".bi_adherence_daily WHERE tenant = 'h1'")
	if want := "[[1 1 1]]"; got != want {
		t.Errorf("bi_adherence_daily: got %s, want %s (p1 has nothing due or taken that day)", got, want)
	}
}
