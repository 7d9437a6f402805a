package clickhouse

import (
	"context"
	"fmt"
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
	n := len(rows.Columns())
	var out [][]string
	for rows.Next() {
		vals := make([]string, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
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
		for _, p := range partitions[t.Name] {
			month, err := time.Parse("200601", p)
			if err != nil {
				continue // not a month partition
			}
			// The partition's newest possible row is just before the next month.
			if month.AddDate(0, 1, 0).Before(cutoff) {
				out = append(out, fmt.Sprintf("ALTER TABLE %s%s DROP PARTITION %s", tg.q(t.Name), tg.onCluster(), p))
			}
		}
	}
	return out
}

// PartitionsQuery lists the active partitions of the database's tables as
// (table, partition) rows, for [ExpiredPartitions].
func PartitionsQuery(database string) string {
	return "SELECT DISTINCT table, partition FROM system.parts WHERE active AND database = " + quoteString(database) + " ORDER BY table, partition"
}
