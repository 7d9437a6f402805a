package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"sort"
	"strings"
)

// BI access: a read-only BI user per tenant that sees the BI views, and only
// its own tenant's rows.
//
// Modern servers (SQL access control): migration 4 creates the role
// "<db>_bi" with SELECT on the BI views and on the tables they read (views
// run with the invoker's rights, so the invoker needs both). [UserStatements]
// creates each user with that role, and a row policy "tenant = '<t>'" on
// every table the role may read (what the views read now, and what they
// read when migration 4 granted them), so a BI user reading a view, or a
// table directly, only ever gets its tenant's rows. Users without a policy are
// unaffected (users_without_row_policies_can_read_rows, the default).
//
// Compat servers (18.16) have no SQL users, no row filters in users.xml
// (<databases><db><table><filter> arrived in 19.x), and a view needs access
// to the database of the tables it reads. So each tenant gets its own
// database, [TenantDatabase], holding tenant-filtered copies of the tables
// the BI views read, fed by materialized views at insert time
// ([TenantStatements]), and the BI views over those copies. [UsersXML]
// writes a users.d file whose users may read only their tenant's database
// (allow_databases), with a readonly profile. What old servers cannot do:
// filter rows per user, or change users without a file on every server
// (ClickHouse reloads users.d by itself). The copies cost the storage of the
// BI tables once more per tenant.

// BIUser is a read-only BI user bound to one tenant.
type BIUser struct {
	Name   string
	Tenant string
	// Password is the clear-text password (from an env var; never logged).
	Password string
}

// BIRole is the role granted to BI users on modern servers.
func BIRole(database string) string { return database + "_bi" }

// biReadTables are the tables BI users may read: what views read.
// Migration 4 (frozen) granted those of migration 3's views; row policies
// and compat tenant copies follow the current [Views].
func biReadTables(views []View) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range views {
		for _, t := range v.Reads {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

func biRoleStatements(tg Target) []string {
	role := quoteIdent(BIRole(tg.Database))
	out := []string{fmt.Sprintf("CREATE ROLE IF NOT EXISTS %s%s", role, tg.onCluster())}
	var objs []string
	for _, v := range v3Views() {
		objs = append(objs, v.Name)
	}
	for _, t := range biReadTables(v3Views()) {
		objs = append(objs, t)
		if tg.sharded() {
			// Distributed reads run as the invoker on every shard.
			objs = append(objs, tg.Local(t))
		}
	}
	for _, o := range objs {
		out = append(out, fmt.Sprintf("GRANT%s SELECT ON %s TO %s", tg.onCluster(), tg.q(o), role))
	}
	return out
}

// UserStatements returns the SQL that creates (idempotently) BI user u on a
// modern server: the user, its role, and the tenant row policies.
func UserStatements(tg Target, u BIUser) ([]string, error) {
	if !tg.Caps.SQLAccess {
		return nil, fmt.Errorf("bi user %s: server profile %s has no SQL users; use the users.d XML (wardstream migrate --bi-users-xml)", u.Name, tg.Caps.Profile)
	}
	if err := u.validate(); err != nil {
		return nil, err
	}
	name := quoteIdent(u.Name)
	out := []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s%s IDENTIFIED WITH sha256_hash BY %s DEFAULT ROLE %s SETTINGS readonly = 1",
			name, tg.onCluster(), quoteString(sha256Hex(u.Password)), quoteIdent(BIRole(tg.Database))),
		// The password and the tenant are the configuration's, also for a
		// user that exists: CREATE ... IF NOT EXISTS alone kept a rotated
		// password working, and the old tenant's rows visible to a user
		// moved to another tenant.
		fmt.Sprintf("ALTER USER %s%s IDENTIFIED WITH sha256_hash BY %s", name, tg.onCluster(), quoteString(sha256Hex(u.Password))),
		fmt.Sprintf("GRANT%s %s TO %s", tg.onCluster(), quoteIdent(BIRole(tg.Database)), name),
	}
	// Every table the role may read: what the current views read, and what
	// migration 4 granted for migration 3's views (the adherence_daily
	// rollup is still granted; without a policy its rows were every
	// tenant's).
	for _, t := range biReadTables(append(v3Views(), Views()...)) {
		on := []string{t}
		if tg.sharded() {
			on = append(on, tg.Local(t))
		}
		for _, o := range on {
			out = append(out, fmt.Sprintf("CREATE ROW POLICY OR REPLACE %s%s ON %s FOR SELECT USING tenant = %s TO %s",
				quoteIdent("tenant_"+u.Name), tg.onCluster(), tg.q(o), quoteString(u.Tenant), name))
		}
	}
	return out, nil
}

func (u BIUser) validate() error {
	if u.Name == "" || u.Tenant == "" {
		return fmt.Errorf("bi user %q: name and tenant are required", u.Name)
	}
	if u.Password == "" {
		return fmt.Errorf("bi user %s: empty password", u.Name)
	}
	for _, r := range u.Name {
		if !(r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return fmt.Errorf("bi user %q: name may hold only letters, digits, '-' and '_'", u.Name)
		}
	}
	return nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// xmlNode is a generic element for the users.d document, whose element
// names are user, database and table names.
type xmlNode struct {
	XMLName  xml.Name
	Text     string    `xml:",chardata"`
	Children []xmlNode `xml:",any"`
}

func el(name, text string, children ...xmlNode) xmlNode {
	return xmlNode{XMLName: xml.Name{Local: name}, Text: text, Children: children}
}

// UsersXML returns a users.d document for compat servers declaring users:
// readonly, allowed only their tenant's BI database ([TenantStatements]
// creates it). networks are the allowed client networks (e.g. "::/0").
func UsersXML(database string, networks []string, users []BIUser) ([]byte, error) {
	if !xmlName(database) {
		return nil, fmt.Errorf("database %q cannot be an XML element name in users.d", database)
	}
	if err := distinctTenantDatabases(database, users); err != nil {
		return nil, err
	}
	var us []xmlNode
	for _, u := range users {
		if err := u.validate(); err != nil {
			return nil, err
		}
		var nets []xmlNode
		for _, n := range networks {
			nets = append(nets, el("ip", n))
		}
		us = append(us, el(u.Name, "",
			el("password_sha256_hex", sha256Hex(u.Password)),
			el("networks", "", nets...),
			el("profile", "wardstream_bi_readonly"),
			el("quota", "default"),
			el("allow_databases", "", el("database", TenantDatabase(database, u.Tenant))),
		))
	}
	doc := el("yandex", "",
		el("profiles", "", el("wardstream_bi_readonly", "", el("readonly", "1"))),
		el("users", "", us...),
	)
	out, err := xml.MarshalIndent(doc, "", "    ")
	if err != nil {
		return nil, fmt.Errorf("rendering users.d xml: %w", err)
	}
	head := "<?xml version=\"1.0\"?>\n<!-- Generated by wardstream migrate (bi-users-xml): read-only BI users, each allowed only its tenant BI database. -->\n"
	return append([]byte(head), append(out, '\n')...), nil
}

// xmlName reports whether s is usable as an XML element name (database
// and table names become element names in users.d).
func xmlName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " <>&'\"/=") && !(s[0] >= '0' && s[0] <= '9')
}

// TenantDatabase is the name of tenant's BI database on compat servers:
// "<database>_bi_<tenant>" for a tenant of [a-z0-9_] only; for any other
// tenant, the tenant lowercased with every other character replaced by
// '_', then '_' and the first 16 hex digits of the SHA-256 of the exact
// tenant string. Sanitizing alone mapped "hospital-a", "hospital_a" and
// "Hospital-A" to one database, so one tenant's BI users were given the
// other's copies; [ApplyBIAccess] and [UsersXML] also refuse two
// configured tenants with one database.
func TenantDatabase(database, tenant string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(tenant) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name != tenant {
		name += "_" + sha256Hex(tenant)[:16]
	}
	return database + "_bi_" + name
}

// distinctTenantDatabases checks that users' distinct tenants have
// distinct BI databases (a clean tenant named like another's hashed name).
func distinctTenantDatabases(database string, users []BIUser) error {
	owner := map[string]string{}
	for _, u := range users {
		tdb := TenantDatabase(database, u.Tenant)
		if t, ok := owner[tdb]; ok && t != u.Tenant {
			return fmt.Errorf("bi users: tenants %q and %q would share the BI database %s", t, u.Tenant, tdb)
		}
		owner[tdb] = u.Tenant
	}
	return nil
}

// BackfillsTable, in each tenant BI database (compat servers), records the
// copies whose backfill completed: one row per copy, written right after
// its backfill INSERT succeeded.
const BackfillsTable = "bi_backfills"

// TenantStatements returns the statements that build tenant's BI database
// on a compat server: tenant-filtered copies of the tables the BI views read,
// the materialized views that feed them on every insert, the BI views over
// the copies, and the [BackfillsTable]. backfilled names the copies whose
// backfill completed (their rows in BackfillsTable); the others are
// backfilled from the current data (after their feed exists, so no row is
// missed; a row inserted in between lands twice and collapses like any
// replayed row), each followed by its BackfillsTable row, so that a run
// that failed midway backfills the rest when migrate runs again. All
// statements are idempotent, or backfills whose rows collapse.
func TenantStatements(tg Target, tenant string, backfilled map[string]bool) ([]string, error) {
	if tenant == "" {
		return nil, fmt.Errorf("tenant BI database: empty tenant")
	}
	if tg.Cluster != "" {
		return nil, fmt.Errorf("tenant BI databases are not supported with clickhouse.cluster on servers without SQL access control")
	}
	tdb := TenantDatabase(tg.Database, tenant)
	local := Target{Database: tdb, Caps: tg.Caps}
	out := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", quoteIdent(tdb)),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (copy String, done_at DateTime DEFAULT now()) ENGINE = TinyLog", local.q(BackfillsTable)),
	}
	var backfill []string
	for _, t := range biReadTables(Views()) {
		feed := fmt.Sprintf("SELECT * FROM %s WHERE tenant = %s", tg.q(t), quoteString(tenant))
		for _, r := range Rollups() {
			if r.Name == t {
				// Inserts made by a materialized view do not trigger the
				// views of its target table on old servers, so a rollup's
				// copy is fed from the rollup's own source, filtered.
				feed = strings.Replace(r.selectFor(tg),
					" GROUP BY ", " WHERE tenant = "+quoteString(tenant)+" GROUP BY ", 1)
			}
		}
		out = append(out,
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s", local.q(t), tg.q(t)),
			fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS %s", local.q(t+"_feed"), local.q(t), feed))
		if !backfilled[t] {
			backfill = append(backfill,
				fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE tenant = %s", local.q(t), tg.q(t), quoteString(tenant)),
				fmt.Sprintf("INSERT INTO %s (copy) SELECT %s", local.q(BackfillsTable), quoteString(t)))
		}
	}
	out = append(out, backfill...)
	// Views hold no data: each is replaced, so a tenant database built by
	// an older wardstream gets the current definitions.
	for _, v := range Views() {
		out = append(out, fmt.Sprintf("DROP TABLE IF EXISTS %s", local.q(v.Name)), v.statement(local))
	}
	return out, nil
}

// ApplyBIAccess creates what BI users need on the server, idempotently: on
// modern servers the users, their role and row policies
// ([UserStatements]); on compat servers each tenant's BI database
// ([TenantStatements]); the users themselves then come from [UsersXML].
func ApplyBIAccess(ctx context.Context, c Conn, tg Target, users []BIUser) error {
	if tg.Caps.SQLAccess {
		for _, u := range users {
			stmts, err := UserStatements(tg, u)
			if err != nil {
				return err
			}
			for _, q := range stmts {
				if err := c.Exec(ctx, q); err != nil {
					return fmt.Errorf("bi user %s: %w", u.Name, err)
				}
			}
		}
		return nil
	}
	if err := distinctTenantDatabases(tg.Database, users); err != nil {
		return err
	}
	done := map[string]bool{}
	for _, u := range users {
		if err := u.validate(); err != nil {
			return err
		}
		if done[u.Tenant] {
			continue
		}
		done[u.Tenant] = true
		tdb := TenantDatabase(tg.Database, u.Tenant)
		rows, err := c.QueryStrings(ctx, "SELECT name FROM system.tables WHERE database = "+quoteString(tdb))
		if err != nil {
			return fmt.Errorf("tenant %s bi database: %w", u.Tenant, err)
		}
		// A copy is backfilled unless its backfill is recorded as done:
		// that it exists says nothing (copies and feeds are created first,
		// then backfilled, and a backfill can fail). A database made
		// before BackfillsTable existed is backfilled once more (the rows
		// collapse like replayed rows).
		backfilled := map[string]bool{}
		for _, r := range rows {
			if r[0] != BackfillsTable {
				continue
			}
			done, err := c.QueryStrings(ctx, fmt.Sprintf("SELECT DISTINCT copy FROM %s.%s", quoteIdent(tdb), quoteIdent(BackfillsTable)))
			if err != nil {
				return fmt.Errorf("tenant %s bi database %s: reading completed backfills: %w", u.Tenant, tdb, err)
			}
			for _, d := range done {
				backfilled[d[0]] = true
			}
		}
		stmts, err := TenantStatements(tg, u.Tenant, backfilled)
		if err != nil {
			return err
		}
		for _, q := range stmts {
			if err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("tenant %s bi database %s: %w\n%s", u.Tenant, tdb, err, firstLine(q))
			}
		}
	}
	return nil
}
