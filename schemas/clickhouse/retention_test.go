package clickhouse_test

import (
	"context"
	"fmt"
	"testing"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// TestIntegrationRetentionCoversTenantDatabases: on compat servers
// retention is the sink dropping expired month partitions. It listed and
// dropped those of the shared database only, so every tenant BI database
// kept its copies (device status, dose outcomes, alerts, adherence) of
// rows past their retention for good: a BI user still read device
// reports long dropped from the shared tables.
func TestIntegrationRetentionCoversTenantDatabases(t *testing.T) {
	conn, db := openDB(t)
	ctx := context.Background()
	res, err := (&chschema.Migrator{Conn: chschema.Adapt(conn), Database: db}).Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Profile != chschema.Compat {
		t.Skip("retention by partition drops is the compat profile's")
	}
	old, recent := ts("2020-01-15 10:00:00"), ts("2026-11-20 10:00:00")
	const st = "tenant, event_id, event_time, ingest_time, device_id, status"
	insert(t, conn, db, "device_status", st,
		[]any{"h1", "s-old", old, old, "dev1", "ok"},
		[]any{"h1", "s-new", recent, recent, "dev1", "ok"},
		[]any{"h2", "s-old2", old, old, "dev9", "ok"})
	tg := chschema.Target{Database: db, Caps: chschema.CapsFor(res.Profile)}
	if err := chschema.ApplyBIAccess(ctx, chschema.Adapt(conn), tg, []chschema.BIUser{{Name: "bi_h1", Tenant: "h1", Password: "pw"}}); err != nil {
		t.Fatal(err)
	}
	tdb := chschema.TenantDatabase(db, "h1")
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+tdb) })

	now := ts("2026-11-22 00:00:00")
	stmts, err := chschema.RetentionStatements(ctx, chschema.Adapt(conn), tg, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, d := range []string{db, tdb} {
		got := queryRows(t, conn, fmt.Sprintf("SELECT event_id FROM %s.device_status ORDER BY event_id", d))
		if fmt.Sprint(got) != "[[s-new]]" {
			t.Errorf("%s.device_status after retention: %v, want only s-new (90 days)", d, got)
		}
	}
	// Only the tenant databases of db: another database's are not touched.
	for _, q := range stmts {
		if want := "ALTER TABLE " + db; q[:len(want)] != want {
			t.Errorf("retention of %s ran %s", db, q)
		}
	}
}
