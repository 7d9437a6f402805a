// Package clickhouse is wardstream's analytics schema: the ClickHouse
// tables, rollups and BI views, written as versioned migrations whose DDL is
// generated for the server at hand, and the [Migrator] that applies them.
//
// # Server profiles
//
// We detect the server version once and render every statement for one of
// two profiles (see [Caps]):
//
//   - modern (ClickHouse >= 22.3): DateTime64(3, 'UTC') timestamps,
//     LowCardinality strings, column CODECs, table TTL retention,
//     insert_deduplication_token, SQL users, roles and row policies.
//   - compat (older servers such as Debian's 18.16): DateTime('UTC')
//     (second precision: state tables order their rows by their version
//     column, but "latest by time" views such as bi_fleet_health break a
//     tie within one second by event id, so two device reports in the same
//     second may show in the wrong order), plain String, no CODECs,
//     retention by dropping whole
//     month partitions ([ExpiredPartitions]), BI users through users.d XML
//     ([UsersXML]).
//
// A database keeps the profile it was created with: the migrations table
// records it, so upgrading the server does not make old migrations look
// modified.
//
// # Dedup: exactly once in the answers
//
// The sink is at-least-once (offsets are committed after ClickHouse acks),
// so a crash or a rebalance can insert a row twice. Every table is a
// ReplacingMergeTree whose ORDER BY is the row's identity: event tables end
// their key with event_id, state tables use the natural key (dose_id,
// patient/medication/day, alert_id, device_id, command_id) and a version
// column. Merges collapse duplicates eventually; queries that must be exact
// now use FINAL or argMax (see the package README in sinks/clickhouse and
// the BI views, which already do).
//
// # Cluster
//
// With a cluster name, every statement carries ON CLUSTER and tables use the
// Replicated* engines with the conventional {shard}/{replica} macros.
//
// With Sharded as well, every table T becomes a replicated local table
// T_local on each shard plus a Distributed table T over them, sharded by
// cityHash64 of the table's first two identity columns (tenant and the
// patient, device, camera or alert; event_id where the second would be a
// time). Every copy of a row has the same identity, so duplicates land on
// the same shard and ReplacingMergeTree, FINAL and argMax stay exact. The
// sink inserts into T (synchronously: the insert returns once every shard
// has the rows); rollup materialized views read T_local and write R_local
// on each shard, with a Distributed R over them; the BI views read the
// Distributed tables; row policies and grants cover both. The migrations
// table is one replicated table across all shards ('/all/' in its path).
//
// What it does not do: it does not write rows (sinks/clickhouse does) and
// it never drops tables or data except expired partitions on request.
package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
)

// Profile names the DDL dialect a database was created with.
type Profile string

// Profiles.
const (
	// Modern is ClickHouse >= 22.3.
	Modern Profile = "modern"
	// Compat is any older server (Debian's 18.16 in our tests).
	Compat Profile = "compat"
)

// Caps are the server capabilities the DDL and the sink depend on.
type Caps struct {
	Profile Profile
	// DateTime64 columns with milliseconds and a time zone.
	DateTime64 bool
	// LowCardinality(String).
	LowCardinality bool
	// Column CODECs (Delta, Gorilla, ZSTD).
	Codecs bool
	// TTL on tables.
	TTL bool
	// SQLAccess is CREATE USER/ROLE/ROW POLICY and GRANT.
	SQLAccess bool
	// InsertDedupToken is the insert_deduplication_token setting together
	// with non_replicated_deduplication_window on plain MergeTree tables.
	InsertDedupToken bool
}

// CapsFor returns the capabilities of a server profile.
func CapsFor(p Profile) Caps {
	if p == Modern {
		return Caps{Profile: Modern, DateTime64: true, LowCardinality: true, Codecs: true, TTL: true, SQLAccess: true, InsertDedupToken: true}
	}
	return Caps{Profile: Compat}
}

// ProfileFor returns the profile for a server version such as "18.16.1" or
// "24.8.4.13". Unparseable versions get [Compat], the safe subset.
func ProfileFor(version string) Profile {
	v, err := parseVersion(version)
	if err != nil {
		return Compat
	}
	if v[0] > 22 || (v[0] == 22 && v[1] >= 3) {
		return Modern
	}
	return Compat
}

func parseVersion(s string) ([2]int, error) {
	var v [2]int
	parts := strings.SplitN(strings.TrimSpace(s), ".", 3)
	if len(parts) < 2 {
		return v, fmt.Errorf("clickhouse version %q is not MAJOR.MINOR[.PATCH]", s)
	}
	for i := 0; i < 2; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return v, fmt.Errorf("clickhouse version %q is not MAJOR.MINOR[.PATCH]: %w", s, err)
		}
		v[i] = n
	}
	return v, nil
}

// Target is where and for what server the DDL is rendered.
type Target struct {
	// Database holds every wardstream table and view.
	Database string
	// Cluster, when set, adds ON CLUSTER and Replicated* engines.
	Cluster string
	// Sharded (with Cluster) splits every table into replicated local
	// tables (name + [LocalSuffix]) and a Distributed table over them.
	Sharded bool
	Caps    Caps
}

// LocalSuffix names the per-shard table behind a Distributed one.
const LocalSuffix = "_local"

// sharded reports whether tg renders Distributed tables.
func (t Target) sharded() bool { return t.Sharded && t.Cluster != "" }

// Local returns the name of the table holding name's rows on a node: name
// itself, or name + [LocalSuffix] when sharded.
func (t Target) Local(name string) string {
	if t.sharded() {
		return name + LocalSuffix
	}
	return name
}

// onCluster is the ON CLUSTER clause, or "".
func (t Target) onCluster() string {
	if t.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + quoteIdent(t.Cluster)
}

// q returns the database-qualified, quoted name of a table.
func (t Target) q(name string) string { return quoteIdent(t.Database) + "." + quoteIdent(name) }

// quoteIdent back-quotes an identifier when it is not a plain one.
func quoteIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// quoteString returns s as a single-quoted SQL string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer("\\", "\\\\", "'", "\\'").Replace(s) + "'"
}
