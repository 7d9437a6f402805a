package clickhouse_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// TestVitals1mRebuildStatements: migration 6 drops migration 2's view and
// table before creating the new ones, refills through the table queries
// read (the Distributed one when sharded), and names every column.
func TestVitals1mRebuildStatements(t *testing.T) {
	var m6 chschema.Migration
	for _, m := range chschema.Migrations() {
		if m.Version == 6 {
			m6 = m
		}
	}
	if m6.Statements == nil {
		t.Fatal("no migration 6")
	}
	for _, tc := range []struct {
		name string
		tg   chschema.Target
		want []string // statement prefixes, in order
	}{
		{"single", chschema.Target{Database: "ws", Caps: chschema.CapsFor(chschema.Compat)}, []string{
			"DROP TABLE IF EXISTS ws.vitals_1m_mv",
			"DROP TABLE IF EXISTS ws.vitals_1m",
			"CREATE TABLE IF NOT EXISTS ws.vitals_1m\n",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS ws.vitals_1m_mv TO ws.vitals_1m AS",
			"INSERT INTO ws.vitals_1m (tenant, ward, device_id, minute, readings, hr_avg,",
		}},
		{"sharded", chschema.Target{Database: "ws", Cluster: "c", Sharded: true, Caps: chschema.CapsFor(chschema.Modern)}, []string{
			"DROP TABLE IF EXISTS ws.vitals_1m_mv ON CLUSTER c",
			"DROP TABLE IF EXISTS ws.vitals_1m ON CLUSTER c",
			"DROP TABLE IF EXISTS ws.vitals_1m_local ON CLUSTER c",
			"CREATE TABLE IF NOT EXISTS ws.vitals_1m_local ON CLUSTER c",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS ws.vitals_1m_mv ON CLUSTER c TO ws.vitals_1m_local AS",
			"CREATE TABLE IF NOT EXISTS ws.vitals_1m ON CLUSTER c",
			"INSERT INTO ws.vitals_1m (tenant, ward, device_id, minute, readings, hr_avg,",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := m6.Statements(tc.tg)
			if len(got) != len(tc.want) {
				t.Fatalf("%d statements, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("statement %d:\n%s\nwant prefix %q", i+1, got[i], w)
				}
			}
			refill := got[len(got)-1]
			if !strings.Contains(refill, "FROM ws.vitals GROUP BY") {
				t.Errorf("refill does not read ws.vitals (the Distributed table when sharded):\n%s", refill)
			}
		})
	}
}

// TestIntegrationVitals1mRebuilt and its modern twin: migration 6 replaces
// migration 2's vitals_1m (string uniqExact, reservoir quantiles) on a
// database that holds readings, refills it from vitals, and its view feeds
// the new table; running it again gives the same rollup.
func TestIntegrationVitals1mRebuilt(t *testing.T) {
	e, db := server(t)
	vitals1mRebuilt(t, e, db, chschema.Compat)
}

func TestIntegrationModernVitals1mRebuilt(t *testing.T) {
	e, db := modern(t)
	vitals1mRebuilt(t, e, db, chschema.Modern)
}

func vitals1mRebuilt(t *testing.T, e engine, db string, p chschema.Profile) {
	ctx := context.Background()
	tg := chschema.Target{Database: db, Caps: chschema.CapsFor(p)}
	byVersion := map[int]chschema.Migration{}
	for _, m := range chschema.Migrations() {
		byVersion[m.Version] = m
	}
	exec := func(stmts ...string) {
		t.Helper()
		for _, q := range stmts {
			if err := e.conn.Exec(ctx, q); err != nil {
				t.Fatalf("%v\n%s", err, q)
			}
		}
	}
	exec("CREATE DATABASE IF NOT EXISTS " + db)
	exec(byVersion[1].Statements(tg)...)
	exec(byVersion[2].Statements(tg)...)

	const cols = "tenant, event_id, event_time, ingest_time, device_id, ward, heart_rate, spo2, systolic_bp, temperature"
	m0 := ts("2026-11-01 08:00:00")
	reading := func(dev string, i int, hr float64) []any {
		at := m0.Add(time.Duration(i) * time.Second)
		return []any{"h1", fmt.Sprintf("%s-e%d", dev, i), at, at, dev, "w1", hr, 97.0, 120.0 + float64(i%3), 36.5}
	}
	// dev1: heart rates 60..79 in one minute; dev2: 70 throughout, with
	// one reading inserted twice (as a replayed batch would be).
	var before, after [][]any
	for i := 0; i < 20; i++ {
		r := reading("dev1", i, 60+float64(i))
		if i < 12 {
			before = append(before, r)
		} else {
			after = append(after, r)
		}
	}
	for i := 0; i < 5; i++ {
		before = append(before, reading("dev2", i, 70))
	}
	e.insert(t, db, "vitals", cols, before...)
	e.insert(t, db, "vitals", cols, reading("dev2", 0, 70))

	exec(byVersion[6].Statements(tg)...)
	e.insert(t, db, "vitals", cols, after...) // through the new view

	const q = "SELECT device_id, toString(uniqExactMerge(readings)), toString(quantileTimingIfMerge(0.95)(hr_p95)), " +
		"toString(minIfMerge(hr_min)), toString(maxIfMerge(hr_max)), toString(quantileTimingIfMerge(0.95)(sbp_p95)), " +
		"toString(round(avgIfMerge(temp_avg), 2)), toString(minute) FROM %s.vitals_1m GROUP BY device_id, minute ORDER BY device_id"
	// quantileTiming is exact on whole units: the 0.95 level of 60..79 is
	// the value at rank floor(0.95 * 20) = 19 (0-based): 79; SBP 120..122.
	want := [][]string{
		{"dev1", "20", "79", "60", "79", "122", "36.5", "2026-11-01 08:00:00"},
		{"dev2", "5", "70", "70", "70", "122", "36.5", "2026-11-01 08:00:00"},
	}
	check := func(when string) {
		t.Helper()
		got := e.rows(t, fmt.Sprintf(q, db))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: vitals_1m\n got %v\nwant %v", when, got, want)
		}
	}
	check("after migration 6")
	exec(byVersion[6].Statements(tg)...)
	check("after migration 6 ran again")
	// The new types are the ones in place.
	got := e.rows(t, "SELECT type FROM system.columns WHERE database = '"+db+"' AND table = 'vitals_1m' AND name IN ('readings', 'hr_p95') ORDER BY name")
	if w := [][]string{{"AggregateFunction(quantileTimingIf(0.95), Float64, UInt8)"}, {"AggregateFunction(uniqExact, UInt64)"}}; fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("vitals_1m column types %v, want %v", got, w)
	}
}
