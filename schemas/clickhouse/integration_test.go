package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/internal/testutil/chdb"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// openDB connects to the real ClickHouse and returns a unique database name
// that is dropped when the test ends.
func openDB(t *testing.T) (driver.Conn, string) {
	t.Helper()
	svc := testutil.Integration(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db := testutil.Unique(t, "ws")
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	return conn, db
}

// engine is a ClickHouse the schema tests run on: the local server (18.16,
// the compat profile) through clickhouse-go, or chDB (26.9, the modern
// profile) through internal/testutil/chdb.
type engine struct {
	conn chschema.Conn
	// insert writes the rows to db.table, naming the columns.
	insert func(t *testing.T, db, table, cols string, rows ...[]any)
	// norm maps a value's text form to the one the compat server prints
	// (the modern profile's DateTime64(3) prints milliseconds).
	norm func(string) string
}

// server is the local ClickHouse server and a unique database on it.
func server(t *testing.T) (engine, string) {
	conn, db := openDB(t)
	return engine{
		conn: chschema.Adapt(conn),
		insert: func(t *testing.T, db, table, cols string, rows ...[]any) {
			t.Helper()
			insert(t, conn, db, table, cols, rows...)
		},
		norm: func(s string) string { return s },
	}, db
}

// modern is a fresh chDB session (ClickHouse 26.9).
func modern(t *testing.T) (engine, string) {
	c := chdb.Open(t)
	return engine{
		conn: c,
		insert: func(t *testing.T, db, table, cols string, rows ...[]any) {
			t.Helper()
			vals := make([]string, len(rows))
			for i, r := range rows {
				lits := make([]string, len(r))
				for j, v := range r {
					lits[j] = chdb.Literal(v)
				}
				vals[i] = "(" + strings.Join(lits, ", ") + ")"
			}
			q := "INSERT INTO " + db + "." + table + " (" + cols + ") VALUES " + strings.Join(vals, ", ")
			if err := c.Exec(context.Background(), q); err != nil {
				t.Fatalf("insert %s: %v", table, err)
			}
		},
		norm: func(s string) string {
			if len(s) == len("2006-01-02 15:04:05.000") && strings.HasSuffix(s, ".000") && s[10] == ' ' {
				return strings.TrimSuffix(s, ".000")
			}
			return s
		},
	}, "wsmodern"
}

// rows runs q and returns its rows as text, normalized.
func (e engine) rows(t *testing.T, q string) [][]string {
	t.Helper()
	rows, err := e.conn.QueryStrings(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	for _, r := range rows {
		for i := range r {
			r[i] = e.norm(r[i])
		}
	}
	return rows
}

func TestIntegrationMigrateTwiceAndRefuseModified(t *testing.T) {
	e, db := server(t)
	migrateTwiceAndRefuseModified(t, e, db, chschema.Compat)
}

// TestIntegrationModernMigrateTwiceAndRefuseModified: the modern profile's
// DDL (DateTime64, LowCardinality, CODECs, TTL) applied by the migrator
// to ClickHouse 26.9.
func TestIntegrationModernMigrateTwiceAndRefuseModified(t *testing.T) {
	e, db := modern(t)
	migrateTwiceAndRefuseModified(t, e, db, chschema.Modern)
	// The modern types are the ones in place.
	got := e.rows(t, "SELECT type FROM system.columns WHERE database = '"+db+"' AND table = 'vitals' AND name IN ('event_time', 'tenant') ORDER BY name")
	if want := [][]string{{"DateTime64(3, 'UTC')"}, {"LowCardinality(String)"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("vitals column types %v, want %v", got, want)
	}
	got = e.rows(t, "SELECT toString(count()) FROM system.tables WHERE database = '"+db+"' AND engine LIKE '%MergeTree' AND create_table_query LIKE '% TTL %'")
	if got[0][0] == "0" {
		t.Fatal("no table has a TTL on the modern profile")
	}
	// The BI role's statements were parsed and accepted (chDB keeps no
	// roles; see internal/testutil/chdb).
	c := e.conn.(*chdb.Conn)
	migrated := len(c.AccessOnly())
	if migrated == 0 {
		t.Fatal("the modern profile issued no access statements")
	}
	// So are a BI user's (user, role grant, row policies).
	tg := chschema.Target{Database: db, Caps: chschema.CapsFor(chschema.Modern)}
	if err := chschema.ApplyBIAccess(context.Background(), c, tg, []chschema.BIUser{{Name: "bi_h1", Tenant: "h1", Password: "pw"}}); err != nil {
		t.Fatal(err)
	}
	acc := c.AccessOnly()
	if len(acc) == migrated {
		t.Fatal("ApplyBIAccess issued no statements")
	}
	t.Logf("%d access statements parsed without effect: %q", len(acc), acc)
}

func migrateTwiceAndRefuseModified(t *testing.T, e engine, db string, profile chschema.Profile) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := &chschema.Migrator{Conn: e.conn, Database: db}
	res, err := m.Migrate(ctx)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if res.Profile != profile {
		t.Fatalf("profile %s, want %s", res.Profile, profile)
	}
	if len(res.Applied) != len(chschema.Migrations()) || len(res.Skipped) != 0 {
		t.Fatalf("first migrate: applied %v skipped %v", res.Applied, res.Skipped)
	}
	res, err = m.Migrate(ctx)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(res.Applied) != 0 || len(res.Skipped) != len(chschema.Migrations()) {
		t.Fatalf("second migrate: applied %v skipped %v", res.Applied, res.Skipped)
	}
	// Every base table, rollup and view exists.
	n := e.rows(t, "SELECT toString(count()) FROM system.tables WHERE database = '"+db+"'")[0][0]
	want := 1 + len(chschema.Tables()) + 2*len(chschema.Rollups()) + len(chschema.Views())
	if n != strconv.Itoa(want) {
		t.Fatalf("%s tables in %s, want %d", n, db, want)
	}
	// Tamper with the recorded checksum of migration 2: the migrator must refuse.
	if err := e.conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name, checksum, profile, applied_at) SELECT 2, 'rollups', 'deadbeef', '%s', toDateTime(%d, 'UTC')",
		db, res.Profile, time.Now().Add(time.Hour).Unix())); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); !errors.Is(err, chschema.ErrModified) {
		t.Fatalf("migrate after tampering: err %v, want ErrModified", err)
	}
}

// insert writes rows into db.table with an explicit column list.
func insert(t *testing.T, conn driver.Conn, db, table, cols string, rows ...[]any) {
	t.Helper()
	b, err := conn.PrepareBatch(context.Background(), "INSERT INTO "+db+"."+table+" ("+cols+")")
	if err != nil {
		t.Fatalf("prepare %s: %v", table, err)
	}
	defer b.Close()
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			t.Fatalf("append %s %v: %v", table, r, err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatalf("insert %s: %v", table, err)
	}
}

// queryRows runs q and returns every row as strings (toString of each column).
func queryRows(t *testing.T, conn driver.Conn, q string) [][]string {
	t.Helper()
	rows, err := chschema.Adapt(conn).QueryStrings(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

func ts(s string) time.Time {
	v, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return v
}

// loadFixture writes the fixed data set the BI views are checked against:
// two tenants, corrected versions, and exact duplicates (as the at-least-once
// sink would write after a crash).
func loadFixture(t *testing.T, e engine, db string) {
	insert := func(t *testing.T, _ struct{}, db, table, cols string, rows ...[]any) {
		t.Helper()
		e.insert(t, db, table, cols, rows...)
	}
	conn := struct{}{}
	day := ts("2026-11-01 00:00:00")
	const adh = "tenant, event_id, event_time, ingest_time, patient_id, medication_id, ward, day, daily_due, daily_taken, version"
	insert(t, conn, db, "adherence", adh,
		[]any{"h1", "a1", day, day, "p1", "medA", "w1", day, int32(2), int32(1), uint64(1)},
		[]any{"h1", "a2", day, day, "p1", "medA", "w1", day, int32(2), int32(2), uint64(2)}, // correction
		[]any{"h1", "a3", day, day, "p2", "medA", "w1", day, int32(2), int32(0), uint64(1)},
		[]any{"h1", "a4", day, day, "p3", "medB", "w2", day, int32(1), int32(1), uint64(1)},
		[]any{"h2", "a5", day, day, "p9", "medA", "w1", day, int32(3), int32(3), uint64(1)},
	)
	// The correction again: a duplicate insert.
	insert(t, conn, db, "adherence", adh, []any{"h1", "a2", day, day, "p1", "medA", "w1", day, int32(2), int32(2), uint64(2)})

	const out = "tenant, event_id, event_time, ingest_time, dose_id, patient_id, medication_id, device_id, ward, scheduled_time, local_date, outcome, version"
	s8 := ts("2026-11-01 08:00:00")
	insert(t, conn, db, "dose_outcomes", out,
		[]any{"h1", "o1", s8, s8, "d1", "p1", "medA", "pc1", "w1", s8, day, "MISSED", uint64(1)},
		[]any{"h1", "o2", s8, s8, "d1", "p1", "medA", "pc1", "w1", s8, day, "TAKEN_LATE", uint64(2)},
		[]any{"h1", "o3", s8, s8, "d2", "p2", "medA", "pc2", "w1", s8, day, "MISSED", uint64(1)},
		[]any{"h1", "o4", s8, s8, "d3", "p3", "medB", "pc3", "w2", s8, day, "TAKEN_ON_TIME", uint64(1)},
		[]any{"h2", "o5", s8, s8, "d4", "p9", "medA", "pc9", "w1", s8, day, "MISSED", uint64(1)},
	)
	insert(t, conn, db, "dose_outcomes", out, []any{"h1", "o3", s8, s8, "d2", "p2", "medA", "pc2", "w1", s8, day, "MISSED", uint64(1)})

	const st = "tenant, event_id, event_time, ingest_time, device_id, device_type, ward, online, battery_level, firmware_version, status"
	t10, t1005, t9 := ts("2026-11-01 10:00:00"), ts("2026-11-01 10:05:00"), ts("2026-11-01 09:00:00")
	insert(t, conn, db, "device_status", st,
		[]any{"h1", "s1", t10, t10, "dev1", "pillcase", "w1", uint8(1), 80.0, "1.0", "ok"},
		[]any{"h1", "s2", t1005, t1005, "dev1", "pillcase", "w1", uint8(0), 15.0, "1.1", "offline"},
		[]any{"h1", "s3", t9, t9, "dev2", "vitals_monitor", "w2", uint8(1), 50.0, "2.0", "ok"},
		[]any{"h2", "s4", t9, t9, "dev9", "pillcase", "w1", uint8(1), 10.0, "1.0", "ok"},
	)
	insert(t, conn, db, "device_status", st, []any{"h1", "s2", t1005, t1005, "dev1", "pillcase", "w1", uint8(0), 15.0, "1.1", "offline"})

	const det = "tenant, event_id, event_time, ingest_time, camera_id, ward, det_index, class_name, confidence"
	f1, f2, f3 := ts("2026-11-01 10:00:05"), ts("2026-11-01 10:00:30"), ts("2026-11-01 10:01:10")
	insert(t, conn, db, "detections", det,
		[]any{"h1", "f1", f1, f1, "cam1", "w1", int32(0), "person", float32(0.9)},
		[]any{"h1", "f1", f1, f1, "cam1", "w1", int32(1), "person", float32(0.7)},
		[]any{"h1", "f2", f2, f2, "cam1", "w1", int32(0), "person", float32(0.8)},
		[]any{"h1", "f2", f2, f2, "cam1", "w1", int32(1), "bed", float32(0.6)},
		[]any{"h1", "f3", f3, f3, "cam1", "w1", int32(0), "person", float32(0.5)},
	)
	insert(t, conn, db, "detections", det, // frame f1 again
		[]any{"h1", "f1", f1, f1, "cam1", "w1", int32(0), "person", float32(0.9)},
		[]any{"h1", "f1", f1, f1, "cam1", "w1", int32(1), "person", float32(0.7)},
	)

	const al = "tenant, event_id, event_time, ingest_time, alert_id, alert_type, priority, state, ward, patient_id, opened_time, acked_by, version"
	insert(t, conn, db, "alerts", al,
		[]any{"h1", "l1", t10, t10, "al1", "MISSED_DOSE", "HIGH", "OPEN", "w1", "p2", t10, "", uint64(1)},
		[]any{"h1", "l2", t1005, t1005, "al1", "MISSED_DOSE", "HIGH", "ACKNOWLEDGED", "w1", "p2", t10, "nurse-7", uint64(2)},
		[]any{"h1", "l3", t9, t9, "al2", "LOW_BATTERY", "LOW", "OPEN", "w1", "", t9, "", uint64(1)},
	)
	insert(t, conn, db, "alerts", al, []any{"h1", "l2", t1005, t1005, "al1", "MISSED_DOSE", "HIGH", "ACKNOWLEDGED", "w1", "p2", t10, "nurse-7", uint64(2)})

	// Anomaly scores with the levels the anomaly processor writes
	// (pipelines/anomaly.Level: NORMAL, WARNING, EMERGENCY), one twice.
	const sc = "tenant, event_id, event_time, ingest_time, device_id, ward, reading_event_id, score, level"
	insert(t, conn, db, "anomaly_scores", sc,
		[]any{"h1", "anomaly|r1", t10, t10, "mon1", "w1", "r1", 1.0, "NORMAL"},
		[]any{"h1", "anomaly|r2", t1005, t1005, "mon1", "w1", "r2", 6.5, "WARNING"},
		[]any{"h1", "anomaly|r3", t9, t9, "mon2", "w2", "r3", 2.0, "NORMAL"},
		[]any{"h2", "anomaly|r4", t9, t9, "mon9", "w1", "r4", 9.0, "EMERGENCY"},
	)
	insert(t, conn, db, "anomaly_scores", sc, []any{"h1", "anomaly|r2", t1005, t1005, "mon1", "w1", "r2", 6.5, "WARNING"})
}

// TestIntegrationBIViews checks every BI view against answers computed by
// hand from the fixture.
func TestIntegrationBIViews(t *testing.T) {
	e, db := server(t)
	biViews(t, e, db)
}

// TestIntegrationModernBIViews: the same answers from the modern profile's
// tables, rollups and views on ClickHouse 26.9.
func TestIntegrationModernBIViews(t *testing.T) {
	e, db := modern(t)
	biViews(t, e, db)
}

func biViews(t *testing.T, e engine, db string) {
	if _, err := (&chschema.Migrator{Conn: e.conn, Database: db}).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	loadFixture(t, e, db)
	cases := []struct {
		view, query string
		want        [][]string
	}{
		{chschema.VAdherenceDaily, "SELECT tenant, toString(day), ward, medication_id, toString(patients), toString(doses_due), toString(doses_taken), toString(adherence_ratio) FROM %s ORDER BY tenant, ward, medication_id",
			[][]string{
				{"h1", "2026-11-01", "w1", "medA", "2", "4", "2", "0.5"}, // p1 corrected to 2/2, p2 0/2
				{"h1", "2026-11-01", "w2", "medB", "1", "1", "1", "1"},
				{"h2", "2026-11-01", "w1", "medA", "1", "3", "3", "1"},
			}},
		{chschema.VMissedDoses, "SELECT tenant, toString(day), ward, patient_id, medication_id, dose_id, toString(scheduled_time), device_id FROM %s ORDER BY tenant, dose_id",
			[][]string{ // d1 was corrected to TAKEN_LATE; d2 is duplicated but missed once
				{"h1", "2026-11-01", "w1", "p2", "medA", "d2", "2026-11-01 08:00:00", "pc2"},
				{"h2", "2026-11-01", "w1", "p9", "medA", "d4", "2026-11-01 08:00:00", "pc9"},
			}},
		{chschema.VFleetHealth, "SELECT tenant, device_id, device_type, ward, toString(online), toString(battery_level), firmware_version, status, toString(last_seen), toString(reports) FROM %s ORDER BY tenant, device_id",
			[][]string{
				{"h1", "dev1", "pillcase", "w1", "0", "15", "1.1", "offline", "2026-11-01 10:05:00", "2"},
				{"h1", "dev2", "vitals_monitor", "w2", "1", "50", "2.0", "ok", "2026-11-01 09:00:00", "1"},
				{"h2", "dev9", "pillcase", "w1", "1", "10", "1.0", "ok", "2026-11-01 09:00:00", "1"},
			}},
		{chschema.VCameraActivity, "SELECT tenant, ward, camera_id, class_name, toString(minute), toString(detections), toString(round(max_confidence, 3)), toString(round(avg_confidence, 3)) FROM %s ORDER BY minute, class_name",
			[][]string{ // f1 inserted twice still counts 2 detections
				{"h1", "w1", "cam1", "bed", "2026-11-01 10:00:00", "1", "0.6", "0.6"},
				{"h1", "w1", "cam1", "person", "2026-11-01 10:00:00", "3", "0.9", "0.8"},
				{"h1", "w1", "cam1", "person", "2026-11-01 10:01:00", "1", "0.5", "0.5"},
			}},
		{chschema.VAlerts, "SELECT tenant, alert_id, alert_type, priority, state, ward, patient_id, toString(opened_time), acked_by FROM %s ORDER BY alert_id",
			[][]string{
				{"h1", "al1", "MISSED_DOSE", "HIGH", "ACKNOWLEDGED", "w1", "p2", "2026-11-01 10:00:00", "nurse-7"},
				{"h1", "al2", "LOW_BATTERY", "LOW", "OPEN", "w1", "", "2026-11-01 09:00:00", ""},
			}},
	}
	for _, c := range cases {
		t.Run(c.view, func(t *testing.T) {
			got := e.rows(t, fmt.Sprintf(c.query, db+"."+c.view))
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("%s:\n got %v\nwant %v", c.view, got, c.want)
			}
		})
	}
	// The alerts rollup counts distinct alerts, so the duplicate is invisible.
	got := e.rows(t, "SELECT alert_type, priority, toString(uniqExactMerge(alerts)) FROM "+db+".alerts_1h GROUP BY alert_type, priority ORDER BY alert_type")
	if want := [][]string{{"LOW_BATTERY", "LOW", "1"}, {"MISSED_DOSE", "HIGH", "1"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts_1h: got %v want %v", got, want)
	}
	// Every view's columns are the documented ones, in order.
	for _, v := range chschema.Views() {
		rows := e.rows(t, fmt.Sprintf("DESCRIBE TABLE %s.%s", db, v.Name))
		var names, want []string
		for _, r := range rows {
			names = append(names, r[0])
		}
		for _, c := range v.Columns {
			want = append(want, c[0])
		}
		if fmt.Sprint(names) != fmt.Sprint(want) {
			t.Errorf("%s columns %v, documented %v", v.Name, names, want)
		}
	}
}

// TestIntegrationDashboardQueries runs every Grafana panel query, with the
// macros expanded as the data source does, on the fixture; a few panels are
// checked against hand-computed answers.
func TestIntegrationDashboardQueries(t *testing.T) {
	e, db := server(t)
	dashboardQueries(t, e, db)
}

// TestIntegrationModernDashboardQueries: every Grafana panel query on the
// modern profile (ClickHouse 26.9).
func TestIntegrationModernDashboardQueries(t *testing.T) {
	e, db := modern(t)
	dashboardQueries(t, e, db)
}

func dashboardQueries(t *testing.T, e engine, db string) {
	if _, err := (&chschema.Migrator{Conn: e.conn, Database: db}).Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	loadFixture(t, e, db)
	from, to := ts("2026-10-31 00:00:00"), ts("2026-11-02 00:00:00")
	want := map[string][][]string{
		"Adherence by medication": {{"medA", "2", "4", "2", "0.5"}, {"medB", "1", "1", "1", "1"}},
		"Missed doses per day":    {{"2026-11-01 00:00:00", "1"}},
		"Devices online":          {{"1", "2"}},
		"Low battery (< 20%)":     {{"dev1", "pillcase", "w1", "15", "0", "2026-11-01 10:05:00"}},
		"Camera activity":         {{"cam1", "w1", "bed", "1", "0.6"}, {"cam1", "w1", "person", "4", "0.9"}},
		// mon1: two readings, one anomalous (its duplicate collapses); mon2: one normal reading.
		"Most anomalous devices": {{"mon1", "w1", "2", "1", "6.5"}, {"mon2", "w2", "1", "0", "2"}},
	}
	n := 0
	for _, d := range chschema.Dashboards() {
		for _, p := range d.Panels {
			n++
			q := chschema.ExpandMacros(p.SQL, from, to, "h1", db)
			rows := e.rows(t, q)
			if w, ok := want[p.Title]; ok {
				if p.Title == "Camera activity" {
					for _, r := range rows {
						if len(r) == 5 {
							r[4] = fmt.Sprint(roundStr(r[4]))
						}
					}
				}
				if fmt.Sprint(rows) != fmt.Sprint(w) {
					t.Errorf("%s / %s:\n got %v\nwant %v", d.Title, p.Title, rows, w)
				}
			}
		}
	}
	if n < 12 {
		t.Fatalf("only %d panels", n)
	}
}

func roundStr(s string) string {
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		return s
	}
	return fmt.Sprint(float64(int(f*1000+0.5)) / 1000)
}

// TestIntegrationBIUserIsolation: on the local 18.16 server, a tenant's BI
// user (declared in users.d, as `wardstream migrate --bi-users-xml` writes
// it) reads the BI views of its tenant database, sees only its tenant's
// rows (backfilled and fed live), and is refused the shared database.
func TestIntegrationBIUserIsolation(t *testing.T) {
	conn, db := openDB(t)
	ctx := context.Background()
	res, err := (&chschema.Migrator{Conn: chschema.Adapt(conn), Database: db}).Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Profile != chschema.Compat {
		t.Skip("this test exercises the compat (users.d) path; the server is modern")
	}
	usersDir := filepath.Join(testutil.RepoRoot(), ".local", "clickhouse", "users.d")
	if _, err := os.Stat(filepath.Join(usersDir, "..", "users.xml")); err != nil {
		t.Skip("not the local services stack (no .local/clickhouse/users.xml)")
	}
	loadFixture(t, engine{insert: func(t *testing.T, db, table, cols string, rows ...[]any) { insert(t, conn, db, table, cols, rows...) }}, db) // before: reaches the tenant database by backfill
	tg := chschema.Target{Database: db, Caps: chschema.CapsFor(res.Profile)}
	user := chschema.BIUser{Name: "bi_" + db[len(db)-8:], Tenant: "h1", Password: "pw-" + db[len(db)-8:]}
	for i := 0; i < 2; i++ { // idempotent
		if err := chschema.ApplyBIAccess(ctx, chschema.Adapt(conn), tg, []chschema.BIUser{user}); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	tdb := chschema.TenantDatabase(db, "h1")
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+tdb) })
	// After: reaches it through the feeds (adherence through its rollup too).
	d2 := ts("2026-11-02 00:00:00")
	insert(t, conn, db, "dose_outcomes", "tenant, event_id, dose_id, patient_id, medication_id, ward, scheduled_time, local_date, outcome, version",
		[]any{"h1", "o9", "d9", "p1", "medA", "w1", d2, d2, "MISSED", uint64(1)},
		[]any{"h2", "o10", "d10", "p9", "medA", "w1", d2, d2, "MISSED", uint64(1)})
	insert(t, conn, db, "adherence", "tenant, event_id, patient_id, medication_id, ward, day, daily_due, daily_taken, version",
		[]any{"h1", "a9", "p1", "medA", "w1", d2, int32(4), int32(3), uint64(1)})

	doc, err := chschema.UsersXML(db, []string{"127.0.0.1", "::1"}, []chschema.BIUser{user})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(usersDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(usersDir, db+".xml")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(file) })
	svc := testutil.Addresses()
	bi, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, Auth: clickhouse.Auth{Database: tdb, Username: user.Name, Password: user.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer bi.Close()
	// ClickHouse reloads users.d by itself within seconds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = bi.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bi user never accepted: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	got := queryRows(t, bi, "SELECT tenant, dose_id FROM "+tdb+".bi_missed_doses ORDER BY dose_id")
	if want := [][]string{{"h1", "d2"}, {"h1", "d9"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bi_missed_doses as %s: got %v want %v", user.Name, got, want)
	}
	got = queryRows(t, bi, "SELECT tenant, toString(day), ward, medication_id, toString(doses_due), toString(doses_taken) FROM "+tdb+".bi_adherence_daily ORDER BY day, ward, medication_id")
	if want := [][]string{{"h1", "2026-11-01", "w1", "medA", "4", "2"}, {"h1", "2026-11-01", "w2", "medB", "1", "1"}, {"h1", "2026-11-02", "w1", "medA", "4", "3"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bi_adherence_daily as %s: got %v want %v", user.Name, got, want)
	}
	for _, v := range chschema.Views() {
		for _, r := range queryRows(t, bi, "SELECT DISTINCT tenant FROM "+tdb+"."+v.Name) {
			if r[0] != "h1" {
				t.Errorf("%s shows tenant %s to the h1 user", v.Name, r[0])
			}
		}
	}
	if _, err := chschema.Adapt(bi).QueryStrings(ctx, "SELECT count() FROM "+db+".dose_outcomes"); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("the bi user read the shared database: err %v", err)
	}
	if err := bi.Exec(ctx, "CREATE TABLE "+tdb+".x (a UInt8) ENGINE = Memory"); err == nil {
		t.Fatal("the bi user could create a table")
	}
}
