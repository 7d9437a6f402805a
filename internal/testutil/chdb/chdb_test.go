package chdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBind(t *testing.T) {
	at := time.Date(2026, 11, 1, 8, 0, 0, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name, q string
		args    []any
		want    string
		err     error
	}{
		{"none", "SELECT 1", nil, "SELECT 1", nil},
		{"values", "SELECT ?, ?, ?, ?, ?", []any{1, "it's", at, float32(0.9), uint64(7)}, `SELECT 1, 'it\'s', '2026-11-01 07:00:00', 0.9, 7`, nil},
		{"quoted ? untouched", "SELECT '?', `a?`, \"b?\", ?", []any{"x"}, "SELECT '?', `a?`, \"b?\", 'x'", nil},
		{"escaped quote", `SELECT 'a\'?', ?`, []any{2}, `SELECT 'a\'?', 2`, nil},
		{"backslash", "SELECT ?", []any{`a\b`}, `SELECT 'a\\b'`, nil},
		{"too few args", "SELECT ?, ?", []any{1}, "", ErrArgs},
		{"too many args", "SELECT ?", []any{1, 2}, "", ErrArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Bind(tc.q, tc.args...)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Bind = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestIntegrationEngine: the child answers queries, reports errors, and
// keeps the session's tables between queries.
func TestIntegrationEngine(t *testing.T) {
	c := Open(t)
	ctx := context.Background()
	v, err := c.ServerVersion(ctx)
	if err != nil || v < "26" {
		t.Fatalf("version %q, %v", v, err)
	}
	if err := c.Exec(ctx, "CREATE TABLE default.t (a DateTime64(3, 'UTC'), s LowCardinality(String)) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "INSERT INTO default.t (a, s) VALUES (?, ?)", time.UnixMilli(1500).UTC(), "x\ty"); err != nil {
		t.Fatal(err)
	}
	rows, err := c.QueryStrings(ctx, "SELECT a, s, toString(count()) FROM default.t GROUP BY a, s")
	if err != nil || len(rows) != 1 || rows[0][0] != "1970-01-01 00:00:01.000" || rows[0][1] != "x\ty" || rows[0][2] != "1" {
		t.Fatalf("rows %q, %v", rows, err)
	}
	if _, err := c.QueryStrings(ctx, "SELECT nope FROM default.t"); err == nil {
		t.Fatal("a bad query gave no error")
	}
	if _, err := c.QueryStrings(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the session did not survive an error: %v", err)
	}
	// Access statements are parsed: good ones are accepted without effect,
	// a syntax error fails.
	if err := c.Exec(ctx, "CREATE ROLE IF NOT EXISTS r_bi"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "GRANT SELECT ON default.t TO r_bi"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "GRANT SELEC ON default.t TO r_bi"); err == nil {
		t.Fatal("a misspelt GRANT was accepted")
	}
	if got := c.AccessOnly(); len(got) != 2 {
		t.Fatalf("AccessOnly = %q", got)
	}
}
