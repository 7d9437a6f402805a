package clickhouse_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// TestTenantDatabasesDistinct: on compat servers each tenant's BI
// users may read only TenantDatabase(db, tenant). Two tenants whose names
// differ only in case or punctuation got the same database, so the second
// tenant's users were given the first tenant's copies (CREATE ... IF NOT
// EXISTS keeps the first tenant's feeds, filtered on the first tenant).
func TestTenantDatabasesDistinct(t *testing.T) {
	for _, p := range [][2]string{{"hospital-a", "hospital_a"}, {"Hospital-A", "hospital-a"}, {"st.mary", "st_mary"}} {
		a, b := chschema.TenantDatabase("wardstream", p[0]), chschema.TenantDatabase("wardstream", p[1])
		if a == b {
			t.Errorf("tenants %q and %q share the BI database %s: one tenant's BI users read the other's rows", p[0], p[1], a)
		}
	}
	if got := chschema.TenantDatabase("wardstream", "hospital_a"); got != "wardstream_bi_hospital_a" {
		t.Errorf("clean tenant hospital_a: database %s, want wardstream_bi_hospital_a (unchanged)", got)
	}
	// A clean tenant spelled like another's hashed name: refused.
	other := strings.TrimPrefix(chschema.TenantDatabase("wardstream", "Hospital-A"), "wardstream_bi_")
	users := []chschema.BIUser{{Name: "a", Tenant: "Hospital-A", Password: "p"}, {Name: "b", Tenant: other, Password: "p"}}
	if _, err := chschema.UsersXML("wardstream", nil, users); err == nil {
		t.Errorf("UsersXML gave tenants Hospital-A and %s one database", other)
	}
	tg := chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Compat)}
	if err := chschema.ApplyBIAccess(context.Background(), &fakeConn{tables: map[string]map[string]bool{}}, tg, users); err == nil {
		t.Errorf("ApplyBIAccess gave tenants Hospital-A and %s one database", other)
	}
}

// fakeConn creates tables in memory: system.tables answers with what a
// CREATE TABLE made, and bi_backfills with the copies an INSERT recorded
// there; Exec fails once on the statement failOn matches.
type fakeConn struct {
	tables  map[string]map[string]bool // database -> tables
	markers map[string][]string        // database -> bi_backfills rows
	failOn  string
	failed  bool
	execs   []string
}

func (c *fakeConn) Exec(_ context.Context, q string, _ ...any) error {
	c.execs = append(c.execs, q)
	if !c.failed && c.failOn != "" && strings.Contains(q, c.failOn) {
		c.failed = true
		return errors.New("connection reset by peer")
	}
	if strings.HasPrefix(q, "CREATE TABLE IF NOT EXISTS ") {
		name := strings.Fields(strings.TrimPrefix(q, "CREATE TABLE IF NOT EXISTS "))[0]
		db, tbl, _ := strings.Cut(name, ".")
		if c.tables[db] == nil {
			c.tables[db] = map[string]bool{}
		}
		c.tables[db][tbl] = true
	}
	if rest, ok := strings.CutPrefix(q, "INSERT INTO "); ok && strings.Contains(rest, "."+chschema.BackfillsTable+" (copy) SELECT '") {
		db, _, _ := strings.Cut(rest, ".")
		_, copyName, _ := strings.Cut(rest, "SELECT '")
		if c.markers == nil {
			c.markers = map[string][]string{}
		}
		c.markers[db] = append(c.markers[db], strings.TrimSuffix(copyName, "'"))
	}
	return nil
}

func (c *fakeConn) QueryStrings(_ context.Context, q string, _ ...any) ([][]string, error) {
	if rest, ok := strings.CutPrefix(q, "SELECT DISTINCT copy FROM "); ok {
		db, _, _ := strings.Cut(rest, ".")
		var out [][]string
		for _, m := range c.markers[db] {
			out = append(out, []string{m})
		}
		return out, nil
	}
	i := strings.Index(q, "database = '")
	if i < 0 {
		return nil, nil
	}
	db := strings.TrimSuffix(q[i+len("database = '"):], "'")
	var out [][]string
	for tbl := range c.tables[db] {
		out = append(out, []string{tbl})
	}
	return out, nil
}

func (c *fakeConn) ServerVersion(context.Context) (string, error) { return "18.16.1", nil }

// TestTenantBackfillResumes: ApplyBIAccess (compat) creates every
// copy and feed first and backfills afterwards, and skipped the backfill
// of any copy that existed. If one backfill INSERT failed (a timeout, a
// restart), rerunning migrate - the documented remedy, "idempotent" -
// never backfilled the copies that were created but not filled: the
// tenant's BI views silently missed all rows from before the first run.
// Completed backfills are now recorded (bi_backfills) and the others run.
func TestTenantBackfillResumes(t *testing.T) {
	tg := chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Compat)}
	users := []chschema.BIUser{{Name: "bi_a", Tenant: "hospital-a", Password: "pw"}}
	c := &fakeConn{tables: map[string]map[string]bool{}, failOn: "INSERT INTO"}
	if err := chschema.ApplyBIAccess(context.Background(), c, tg, users); err == nil {
		t.Fatal("first run did not fail")
	}
	all, _ := chschema.TenantStatements(tg, "hospital-a", nil)
	var backfills []string
	for _, q := range all {
		if strings.HasPrefix(q, "INSERT INTO") {
			backfills = append(backfills, q)
		}
	}
	c.execs = nil
	if err := chschema.ApplyBIAccess(context.Background(), c, tg, users); err != nil {
		t.Fatal(err)
	}
	ran := strings.Join(c.execs, "\n")
	for _, q := range backfills {
		if !strings.Contains(ran, q) {
			t.Errorf("rerun after a failed backfill never ran %q", q)
		}
	}
	// Every backfill is recorded now: a third run backfills nothing.
	c.execs = nil
	if err := chschema.ApplyBIAccess(context.Background(), c, tg, users); err != nil {
		t.Fatal(err)
	}
	for _, q := range c.execs {
		if strings.HasPrefix(q, "INSERT INTO") {
			t.Errorf("a completed backfill ran again: %s", q)
		}
	}
	// A run failing on a later backfill: the rerun does only the rest.
	c2 := &fakeConn{tables: map[string]map[string]bool{}, failOn: "INSERT INTO " + chschema.TenantDatabase("wardstream", "hospital-a") + ".dose_outcomes SELECT"}
	if err := chschema.ApplyBIAccess(context.Background(), c2, tg, users); err == nil {
		t.Fatal("first run did not fail")
	}
	done := len(c2.markers[chschema.TenantDatabase("wardstream", "hospital-a")])
	if done == 0 || done == len(backfills)/2 {
		t.Fatalf("%d of %d backfills recorded before the failing one", done, len(backfills)/2)
	}
	c2.execs = nil
	if err := chschema.ApplyBIAccess(context.Background(), c2, tg, users); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range c2.execs {
		if strings.HasPrefix(q, "INSERT INTO") && !strings.Contains(q, chschema.BackfillsTable) {
			n++
		}
	}
	if n != len(backfills)/2-done {
		t.Errorf("rerun ran %d backfills, want the %d not recorded", n, len(backfills)/2-done)
	}
}

// TestRowPolicyOnEveryGrantedTable: on modern servers a BI user may read
// exactly its tenant's rows of every table its role is granted. Migration 4
// granted the role SELECT on the adherence_daily rollup (what migration 3's
// bi_adherence_daily read); since migration 5 the row policies followed
// the current views only, so adherence_daily was still granted but had no
// policy: a BI user read every tenant's rollup rows (patient ids and their
// daily counts) with SELECT * FROM adherence_daily.
func TestRowPolicyOnEveryGrantedTable(t *testing.T) {
	views := map[string]bool{}
	for _, v := range chschema.Views() {
		views[v.Name] = true
	}
	for _, tg := range []chschema.Target{
		{Database: "wardstream", Caps: chschema.CapsFor(chschema.Modern)},
		{Database: "wardstream", Cluster: "c1", Sharded: true, Caps: chschema.CapsFor(chschema.Modern)},
	} {
		role := chschema.BIRole(tg.Database)
		granted := map[string]bool{}
		for _, q := range chschema.Plan(tg) {
			if !strings.HasPrefix(q, "GRANT") || !strings.HasSuffix(q, " TO "+role) {
				continue
			}
			_, on, _ := strings.Cut(q, " SELECT ON wardstream.")
			obj := strings.Fields(on)[0]
			if !views[obj] {
				granted[obj] = true
			}
		}
		if len(granted) == 0 {
			t.Fatal("the plan grants the BI role no table")
		}
		stmts, err := chschema.UserStatements(tg, chschema.BIUser{Name: "bi_h1", Tenant: "h1", Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		policed := map[string]bool{}
		for _, q := range stmts {
			if _, on, ok := strings.Cut(q, "CREATE ROW POLICY OR REPLACE tenant_bi_h1"); ok {
				_, on, _ = strings.Cut(on, " ON wardstream.")
				policed[strings.Fields(on)[0]] = true
			}
		}
		for obj := range granted {
			if !policed[obj] {
				t.Errorf("sharded %v: the BI role may read %s, which has no tenant row policy: every tenant's rows", tg.Sharded, obj)
			}
		}
	}
}

// accessModel keeps what CREATE USER / ALTER USER and CREATE ROW POLICY
// leave on a modern server, with IF NOT EXISTS (keep) and OR REPLACE
// (replace) semantics: user -> password hash, policy@table -> condition.
type accessModel struct{ users, policies map[string]string }

func (a *accessModel) Exec(_ context.Context, q string, _ ...any) error {
	set := func(m map[string]string, k, v string, replace bool) {
		if _, ok := m[k]; !ok || replace {
			m[k] = v
		}
	}
	replace := strings.Contains(q, " OR REPLACE ")
	f := strings.Fields(strings.NewReplacer(" IF NOT EXISTS ", " ", " OR REPLACE ", " ").Replace(q))
	switch {
	case strings.HasPrefix(q, "CREATE USER ") && !replace:
		set(a.users, f[2], f[7], false) // CREATE USER u IDENTIFIED WITH sha256_hash BY 'h'
	case strings.HasPrefix(q, "ALTER USER ") && f[3] == "IDENTIFIED":
		set(a.users, f[2], f[7], true)
	case strings.HasPrefix(q, "CREATE ROW POLICY "):
		// CREATE ROW POLICY p ON t FOR SELECT USING tenant = 'x' TO u
		set(a.policies, f[3]+"@"+f[5], strings.Join(f[9:12], " ")+" "+f[13], replace)
	}
	return nil
}
func (a *accessModel) QueryStrings(context.Context, string, ...any) ([][]string, error) {
	return nil, nil
}
func (a *accessModel) ServerVersion(context.Context) (string, error) { return "24.8.4.13", nil }

// TestBIUserChangeApplied: `wardstream migrate` is how BI users are
// configured (bi_users: name, tenant, password_env), and on compat servers
// it rewrites the users.d file. On modern servers every statement was
// IF NOT EXISTS, so a rerun after a user was moved to another tenant kept
// the old tenant's row policies (the user went on reading the old
// tenant's rows and none of the new one's, while migrate printed the new
// tenant), and a rotated password left the old one working.
func TestBIUserChangeApplied(t *testing.T) {
	tg := chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Modern)}
	a := &accessModel{users: map[string]string{}, policies: map[string]string{}}
	ctx := context.Background()
	if err := chschema.ApplyBIAccess(ctx, a, tg, []chschema.BIUser{{Name: "bi_x", Tenant: "hospital-a", Password: "old"}}); err != nil {
		t.Fatal(err)
	}
	if len(a.policies) == 0 || len(a.users) != 1 {
		t.Fatalf("model understood none of the statements: %v %v", a.users, a.policies)
	}
	if err := chschema.ApplyBIAccess(ctx, a, tg, []chschema.BIUser{{Name: "bi_x", Tenant: "hospital-b", Password: "new"}}); err != nil {
		t.Fatal(err)
	}
	for k, cond := range a.policies {
		if cond != "tenant = 'hospital-b' bi_x" {
			t.Errorf("policy %s after moving bi_x to hospital-b: %q", k, cond)
		}
	}
	sum := sha256.Sum256([]byte("new"))
	if got, want := a.users["bi_x"], "'"+hex.EncodeToString(sum[:])+"'"; got != want {
		t.Errorf("bi_x password hash after rotation %s, want the new password's %s", got, want)
	}
}
