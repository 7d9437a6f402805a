package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Migration is one versioned schema step. Its statements are rendered for
// the database's profile and must be idempotent (IF NOT EXISTS), so that a
// migration interrupted half way can simply run again.
type Migration struct {
	Version int
	Name    string
	// Statements renders the DDL for a target.
	Statements func(tg Target) []string
}

// Checksum identifies the migration's DDL for tg; the migrator refuses to
// run against a database where an applied migration's checksum differs.
func (m Migration) Checksum(tg Target) string {
	h := sha256.New()
	for _, s := range m.Statements(tg) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Migrations returns every migration in version order. Never edit one that
// has shipped: add a new one.
func Migrations() []Migration {
	return []Migration{
		{1, "base_tables", func(tg Target) []string {
			var out []string
			for _, t := range v1Tables() {
				out = append(out, t.statements(tg)...)
			}
			return out
		}},
		{2, "rollups", func(tg Target) []string {
			var out []string
			for _, r := range v2Rollups() {
				out = append(out, r.statements(tg)...)
			}
			return out
		}},
		{3, "bi_views", func(tg Target) []string {
			var out []string
			for _, v := range v3Views() {
				out = append(out, v.statement(tg))
			}
			return out
		}},
		{4, "bi_role", func(tg Target) []string {
			if !tg.Caps.SQLAccess {
				// Compat servers have no SQL access control: BI users come
				// from users.d XML ([UsersXML]).
				return nil
			}
			return biRoleStatements(tg)
		}},
		{5, "bi_adherence_exact", func(tg Target) []string {
			// bi_adherence_daily replaced (see v5AdherenceDaily); on
			// modern servers the BI role may read what it reads now.
			v := v5AdherenceDaily()
			out := []string{fmt.Sprintf("DROP TABLE IF EXISTS %s%s", tg.q(v.Name), tg.onCluster()), v.statement(tg)}
			if tg.Caps.SQLAccess {
				role := quoteIdent(BIRole(tg.Database))
				for _, t := range v.Reads {
					on := []string{t}
					if tg.sharded() {
						on = append(on, tg.Local(t))
					}
					for _, o := range on {
						out = append(out, fmt.Sprintf("GRANT%s SELECT ON %s TO %s", tg.onCluster(), tg.q(o), role))
					}
				}
			}
			return out
		}},
		{6, "vitals_1m_lighter_states", func(tg Target) []string {
			// vitals_1m rebuilt with cheaper states (see v6Vitals1m).
			return v6Vitals1m().rebuild(tg)
		}},
	}
}

// MigrationsTable is the table recording applied migrations.
const MigrationsTable = "schema_migrations"

// Conn is what the migrator needs from a ClickHouse connection;
// clickhouse-go's driver.Conn satisfies it through [Adapt].
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	// QueryStrings runs query and returns each row's columns as strings.
	QueryStrings(ctx context.Context, query string, args ...any) ([][]string, error)
	ServerVersion(ctx context.Context) (string, error)
}

// Applied is one row of the migrations table.
type Applied struct {
	Version  int
	Name     string
	Checksum string
	Profile  Profile
}

// ErrModified is returned when an applied migration's DDL differs from the
// one this binary would run: someone edited a shipped migration.
var ErrModified = errors.New("applied migration was modified")

// ErrUnknownMigration is returned when the database holds a migration this
// binary does not know (it was migrated by a newer wardstream).
var ErrUnknownMigration = errors.New("database has a migration unknown to this binary")

// Migrator applies [Migrations] to one database.
type Migrator struct {
	Conn     Conn
	Database string
	Cluster  string
	// Sharded: see [Target.Sharded].
	Sharded bool
	Log     *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Result says what Migrate did.
type Result struct {
	Profile Profile
	// Applied lists the migrations run now; Skipped those already applied.
	Applied []string
	Skipped []string
}

// Migrate creates the database and the migrations table if needed, checks
// every applied migration's checksum, and applies the pending ones in
// version order. It is idempotent: a second call applies nothing.
func (m *Migrator) Migrate(ctx context.Context) (Result, error) {
	var res Result
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	ver, err := m.Conn.ServerVersion(ctx)
	if err != nil {
		return res, fmt.Errorf("reading clickhouse server version: %w", err)
	}
	tg := Target{Database: m.Database, Cluster: m.Cluster, Sharded: m.Sharded, Caps: CapsFor(ProfileFor(ver))}
	if m.Sharded && m.Cluster == "" {
		return res, fmt.Errorf("migrating database %s: sharded tables need a cluster name", m.Database)
	}
	for _, q := range bootstrap(tg) {
		if err := m.Conn.Exec(ctx, q); err != nil {
			return res, fmt.Errorf("bootstrapping database %s: %w", m.Database, err)
		}
	}
	applied, err := m.applied(ctx)
	if err != nil {
		return res, err
	}
	// The database keeps the profile it was created with.
	if len(applied) > 0 {
		tg.Caps = CapsFor(applied[0].Profile)
	}
	res.Profile = tg.Caps.Profile
	known := map[int]Migration{}
	for _, mg := range Migrations() {
		known[mg.Version] = mg
	}
	done := map[int]bool{}
	for _, a := range applied {
		mg, ok := known[a.Version]
		if !ok {
			return res, fmt.Errorf("%w: version %d (%s)", ErrUnknownMigration, a.Version, a.Name)
		}
		if sum := mg.Checksum(CapsTarget(tg, a.Profile)); sum != a.Checksum {
			return res, fmt.Errorf("%w: %04d_%s applied with checksum %.12s, this binary has %.12s; add a new migration instead of editing it",
				ErrModified, a.Version, a.Name, a.Checksum, sum)
		}
		done[a.Version] = true
	}
	for _, mg := range Migrations() {
		id := fmt.Sprintf("%04d_%s", mg.Version, mg.Name)
		if done[mg.Version] {
			res.Skipped = append(res.Skipped, id)
			continue
		}
		for i, q := range mg.Statements(tg) {
			if err := m.Conn.Exec(ctx, q); err != nil {
				return res, fmt.Errorf("migration %s statement %d: %w\n%s", id, i+1, err, firstLine(q))
			}
		}
		if err := m.Conn.Exec(ctx, fmt.Sprintf( // INSERT ... SELECT: old servers wait for a data block after an
			// INSERT ... VALUES sent as a query over the native protocol.
			"INSERT INTO %s (version, name, checksum, profile, applied_at) SELECT toUInt32(?), ?, ?, ?, toDateTime(?, 'UTC')",
			tg.q(MigrationsTable)), mg.Version, mg.Name, mg.Checksum(tg), string(tg.Caps.Profile), now().Unix()); err != nil {
			return res, fmt.Errorf("recording migration %s: %w", id, err)
		}
		log.Info("migration applied", "migration", id, "database", m.Database, "profile", tg.Caps.Profile)
		res.Applied = append(res.Applied, id)
	}
	return res, nil
}

// CapsTarget returns tg with the capabilities of profile p.
func CapsTarget(tg Target, p Profile) Target {
	tg.Caps = CapsFor(p)
	return tg
}

func (m *Migrator) applied(ctx context.Context) ([]Applied, error) {
	tg := Target{Database: m.Database}
	// argMax collapses the duplicate rows two concurrent migrators may write.
	rows, err := m.Conn.QueryStrings(ctx, fmt.Sprintf(
		"SELECT toString(version), argMax(name, applied_at), argMax(checksum, applied_at), argMax(profile, applied_at) FROM %s GROUP BY version ORDER BY version",
		tg.q(MigrationsTable)))
	if err != nil {
		return nil, fmt.Errorf("reading %s.%s: %w", m.Database, MigrationsTable, err)
	}
	out := make([]Applied, 0, len(rows))
	for _, r := range rows {
		var v int
		if _, err := fmt.Sscan(r[0], &v); err != nil {
			return nil, fmt.Errorf("reading %s: bad version %q: %w", MigrationsTable, r[0], err)
		}
		out = append(out, Applied{Version: v, Name: r[1], Checksum: r[2], Profile: Profile(r[3])})
	}
	return out, nil
}

// bootstrap creates the database and the migrations table.
func bootstrap(tg Target) []string {
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", quoteIdent(tg.Database), tg.onCluster()),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s\n(\n    version UInt32,\n    name String,\n    checksum String,\n    profile String,\n    applied_at DateTime('UTC')\n)\nENGINE = %s\nORDER BY version",
			tg.q(MigrationsTable), tg.onCluster(), engine(tg, "ReplacingMergeTree", MigrationsTable, "applied_at")),
	}
}

// Plan returns every statement the migrations would run on an empty
// database for tg, for review (wardstream migrate --print).
func Plan(tg Target) []string {
	out := bootstrap(tg)
	for _, mg := range Migrations() {
		out = append(out, mg.Statements(tg)...)
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
