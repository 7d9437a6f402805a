package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Adapt wraps a clickhouse-go connection as a [Conn].
func Adapt(c driver.Conn) Conn { return chConn{c} }

type chConn struct{ c driver.Conn }

func (a chConn) Exec(ctx context.Context, q string, args ...any) error {
	return a.c.Exec(ctx, q, args...)
}

func (a chConn) ServerVersion(ctx context.Context) (string, error) {
	if err := a.c.Ping(ctx); err != nil {
		return "", err
	}
	v, err := a.c.ServerVersion()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch), nil
}

func (a chConn) QueryStrings(ctx context.Context, q string, args ...any) ([][]string, error) {
	rows, err := a.c.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		vals := make([]string, len(types))
		for i, p := range ptrs {
			vals[i] = formatValue(reflect.ValueOf(p).Elem().Interface())
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

// formatValue prints a scanned value the way clickhouse-client does.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05")
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case *string:
		if x == nil {
			return "NULL"
		}
		return *x
	}
	return fmt.Sprint(v)
}

// ExpiredPartitions returns, for compat servers (no TTL), the
// "ALTER TABLE ... DROP PARTITION" statements that enforce each table's
// retention: a month partition is dropped once its last day is older than
// the retention. partitions maps table name to its partition ids
// ("202601"); now is the current time.
func ExpiredPartitions(tg Target, partitions map[string][]string, now time.Time) []string {
	var out []string
	for _, t := range Tables() {
		if t.RetentionDays <= 0 || t.PartitionBy == "" {
			continue
		}
		cutoff := now.UTC().AddDate(0, 0, -t.RetentionDays)
		for _, p := range partitions[tg.Local(t.Name)] {
			month, err := time.Parse("200601", p)
			if err != nil {
				continue // not a month partition
			}
			// The partition's newest possible row is just before the next month.
			if month.AddDate(0, 1, 0).Before(cutoff) {
				out = append(out, fmt.Sprintf("ALTER TABLE %s%s DROP PARTITION %s", tg.q(tg.Local(t.Name)), tg.onCluster(), p))
			}
		}
	}
	return out
}

// RetentionStatements lists the active partitions of tg's database and,
// without a cluster, of its tenant BI databases ([TenantDatabase]: copies
// of the tables the BI views read, same names and partitions), and returns
// the [ExpiredPartitions] statements of each. The tenant copies used to be
// left out, so they kept every row past its retention.
func RetentionStatements(ctx context.Context, c Conn, tg Target, now time.Time) ([]string, error) {
	rows, err := c.QueryStrings(ctx, PartitionsQuery(tg.Database))
	if err != nil {
		return nil, fmt.Errorf("listing partitions of %s: %w", tg.Database, err)
	}
	parts := map[string][]string{}
	for _, r := range rows {
		parts[r[0]] = append(parts[r[0]], r[1])
	}
	out := ExpiredPartitions(tg, parts, now)
	if tg.Cluster != "" {
		return out, nil // tenant BI databases exist without a cluster only
	}
	prefix := tg.Database + "_bi_"
	rows, err = c.QueryStrings(ctx, fmt.Sprintf(
		"SELECT DISTINCT database, table, partition FROM system.parts WHERE active AND length(database) > %d AND substring(database, 1, %d) = %s ORDER BY database, table, partition",
		len(prefix), len(prefix), quoteString(prefix)))
	if err != nil {
		return out, fmt.Errorf("listing partitions of the tenant BI databases of %s: %w", tg.Database, err)
	}
	tenant := map[string]map[string][]string{}
	var dbs []string
	for _, r := range rows {
		if tenant[r[0]] == nil {
			tenant[r[0]] = map[string][]string{}
			dbs = append(dbs, r[0])
		}
		tenant[r[0]][r[1]] = append(tenant[r[0]][r[1]], r[2])
	}
	for _, d := range dbs {
		out = append(out, ExpiredPartitions(Target{Database: d, Caps: tg.Caps}, tenant[d], now)...)
	}
	return out, nil
}

// PartitionsQuery lists the active partitions of the database's tables as
// (table, partition) rows, for [ExpiredPartitions].
func PartitionsQuery(database string) string {
	return "SELECT DISTINCT table, partition FROM system.parts WHERE active AND database = " + quoteString(database) + " ORDER BY table, partition"
}
