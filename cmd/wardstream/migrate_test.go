package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/wardstream/wardstream/internal/testutil"
)

// TestIntegrationMigrateTwice: `wardstream migrate` against the real
// ClickHouse succeeds twice in a row, the second time applying nothing.
func TestIntegrationMigrateTwice(t *testing.T) {
	svc := testutil.Integration(t)
	db := testutil.Unique(t, "ws")
	topo, err := os.ReadFile("../../deploy/local/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	doc := strings.Replace(string(topo), "database: wardstream\n", "database: "+db+"\n", 1)
	if doc == string(topo) {
		t.Fatal("topology has no 'database: wardstream' line to override")
	}
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WARDSTREAM_CLICKHOUSE_ADDR", svc.ClickHouseAddr)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); conn.Close() })
	for i := 0; i < 2; i++ {
		var stderr bytes.Buffer
		if code := run(context.Background(), []string{"migrate", "--config", cfg}, &stderr); code != 0 {
			t.Fatalf("migrate run %d: exit %d: %s", i+1, code, stderr.String())
		}
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = ? AND name = 'bi_alerts'", db).Scan(&n); err != nil || n != 1 {
		t.Fatalf("bi_alerts missing after migrate: %d %v", n, err)
	}
}

func TestMigratePrint(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"migrate", "--config", "../../deploy/local/topology.yaml", "--print", "oracle"}, &stderr); code != 2 {
		t.Fatalf("--print oracle: exit %d, want 2 (%s)", code, stderr.String())
	}
}
