package clickhouse_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wardstream/wardstream/internal/testutil"
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

func TestIntegrationMigrateTwiceAndRefuseModified(t *testing.T) {
	conn, db := openDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := &chschema.Migrator{Conn: chschema.Adapt(conn), Database: db}
	res, err := m.Migrate(ctx)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
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
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ?", db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	want := 1 + len(chschema.Tables()) + 2*len(chschema.Rollups()) + len(chschema.Views())
	if int(n) != want {
		t.Fatalf("%d tables in %s, want %d", n, db, want)
	}
	// Tamper with the recorded checksum of migration 2: the migrator must refuse.
	if err := conn.Exec(ctx, "INSERT INTO "+db+".schema_migrations (version, name, checksum, profile, applied_at) SELECT 2, 'rollups', 'deadbeef', ?, toDateTime(?, 'UTC')",
		string(res.Profile), time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); !errors.Is(err, chschema.ErrModified) {
		t.Fatalf("migrate after tampering: err %v, want ErrModified", err)
	}
}
