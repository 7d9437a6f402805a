package clickhouse_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/testutil"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

func TestProfileFor(t *testing.T) {
	for _, c := range []struct {
		version string
		want    chschema.Profile
	}{
		{"18.16.1", chschema.Compat}, {"21.8.15.7", chschema.Compat}, {"22.2.1", chschema.Compat},
		{"22.3.2.1", chschema.Modern}, {"24.8.4.13", chschema.Modern}, {"25.3", chschema.Modern},
		{"", chschema.Compat}, {"garbage", chschema.Compat}, {"x.y", chschema.Compat},
	} {
		if got := chschema.ProfileFor(c.version); got != c.want {
			t.Errorf("ProfileFor(%q) = %s, want %s", c.version, got, c.want)
		}
	}
}

func plan(p chschema.Profile, cluster string) string {
	return strings.Join(chschema.Plan(chschema.Target{Database: "wardstream", Cluster: cluster, Caps: chschema.CapsFor(p)}), ";\n")
}

// TestPlanVariants checks the generated DDL of the three variants: what
// each must contain and what it must not.
func TestPlanVariants(t *testing.T) {
	cases := []struct {
		name         string
		ddl          string
		must, mustNo []string
	}{
		{"compat", plan(chschema.Compat, ""),
			[]string{"DateTime('UTC')", "ENGINE = ReplacingMergeTree(version)", "ENGINE = ReplacingMergeTree()", "PARTITION BY toYYYYMM(event_time)",
				"ORDER BY (tenant, device_id, event_time, event_id)", "ORDER BY (tenant, patient_id, dose_id)", "ORDER BY (tenant, alert_id)",
				"AggregatingMergeTree()", "quantileIfState(0.95)(heart_rate, heart_rate > 0)", "CREATE VIEW IF NOT EXISTS wardstream.bi_adherence_daily"},
			[]string{"DateTime64", "LowCardinality", "CODEC", "TTL", "ON CLUSTER", "Replicated", "CREATE ROLE", "GRANT", "non_replicated_deduplication_window"}},
		{"modern", plan(chschema.Modern, ""),
			[]string{"DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))", "LowCardinality(String)", "Float64 CODEC(Gorilla)",
				"TTL toDateTime(event_time) + INTERVAL 90 DAY", "TTL day + INTERVAL 800 DAY", "SETTINGS non_replicated_deduplication_window = 1000",
				"CREATE ROLE IF NOT EXISTS wardstream_bi", "GRANT SELECT ON wardstream.bi_alerts TO wardstream_bi", "GRANT SELECT ON wardstream.dose_outcomes TO wardstream_bi"},
			[]string{"ON CLUSTER", "Replicated", "DateTime('UTC') CODEC"}},
		{"modern cluster", plan(chschema.Modern, "ward-cluster"),
			[]string{"CREATE DATABASE IF NOT EXISTS wardstream ON CLUSTER `ward-cluster`",
				"CREATE TABLE IF NOT EXISTS wardstream.vitals ON CLUSTER `ward-cluster`",
				"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wardstream/vitals', '{replica}')",
				"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wardstream/alerts', '{replica}', version)",
				"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/wardstream/vitals_1m', '{replica}')",
				"CREATE MATERIALIZED VIEW IF NOT EXISTS wardstream.vitals_1m_mv ON CLUSTER `ward-cluster` TO wardstream.vitals_1m",
				"CREATE VIEW IF NOT EXISTS wardstream.bi_alerts ON CLUSTER `ward-cluster`", "GRANT ON CLUSTER `ward-cluster` SELECT"},
			[]string{"non_replicated_deduplication_window", "ENGINE = ReplacingMergeTree", "ENGINE = AggregatingMergeTree"}},
		{"compat cluster", plan(chschema.Compat, "c1"),
			[]string{"ON CLUSTER c1", "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wardstream/intakes', '{replica}')"},
			[]string{"DateTime64", "TTL", "CREATE ROLE"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, m := range c.must {
				if !strings.Contains(c.ddl, m) {
					t.Errorf("DDL lacks %q", m)
				}
			}
			for _, m := range c.mustNo {
				if strings.Contains(c.ddl, m) {
					t.Errorf("DDL has %q", m)
				}
			}
		})
	}
}

// TestGoldenCompatVitals pins one full statement, so that an accidental
// change to a shipped migration shows up in review as a diff here too.
func TestGoldenCompatVitals(t *testing.T) {
	for _, q := range chschema.Plan(chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Compat)}) {
		if !strings.HasPrefix(q, "CREATE TABLE IF NOT EXISTS wardstream.alerts\n") {
			continue
		}
		want := "CREATE TABLE IF NOT EXISTS wardstream.alerts\n(\n    tenant String,\n    event_id String,\n    event_time DateTime('UTC'),\n    ingest_time DateTime('UTC'),\n    source String,\n    alert_id String,\n    alert_type String,\n    priority String,\n    state String,\n    subject_type String,\n    subject_id String,\n    patient_id String,\n    device_id String,\n    camera_id String,\n    medication_id String,\n    ward String,\n    message String,\n    opened_time DateTime('UTC'),\n    acked_time DateTime('UTC'),\n    resolved_time DateTime('UTC'),\n    escalation_level Int32,\n    acked_by String,\n    version UInt64\n)\nENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(opened_time)\nORDER BY (tenant, alert_id)"
		if q != want {
			t.Fatalf("alerts DDL changed:\n%s\nwant\n%s", q, want)
		}
		return
	}
	t.Fatal("no alerts table in the plan")
}

// TestChecksumsStable: checksums depend on the profile, not on the call.
func TestChecksumsStable(t *testing.T) {
	tg := chschema.Target{Database: "db", Caps: chschema.CapsFor(chschema.Compat)}
	seen := map[int]bool{}
	for i, m := range chschema.Migrations() {
		if m.Version != i+1 || seen[m.Version] {
			t.Fatalf("migration versions must be 1..n in order: %d at %d", m.Version, i)
		}
		seen[m.Version] = true
		if m.Checksum(tg) != m.Checksum(tg) {
			t.Fatalf("migration %d checksum not deterministic", m.Version)
		}
	}
	m := chschema.Migrations()[0]
	if m.Checksum(tg) == m.Checksum(chschema.CapsTarget(tg, chschema.Modern)) {
		t.Fatal("compat and modern DDL have the same checksum")
	}
}

func TestUsersXML(t *testing.T) {
	doc, err := chschema.UsersXML("wardstream", []string{"10.0.0.0/8"}, []chschema.BIUser{{Name: "bi_a", Tenant: "hospital-'a", Password: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	for _, m := range []string{"<bi_a>", "<password_sha256_hex>", "<ip>10.0.0.0/8</ip>", "<profile>wardstream_bi_readonly</profile>",
		"<allow_databases>", "<database>" + chschema.TenantDatabase("wardstream", "hospital-'a") + "</database>", "<readonly>1</readonly>"} {
		if !strings.Contains(s, m) {
			t.Errorf("users.d xml lacks %q:\n%s", m, s)
		}
	}
	if strings.Contains(s, "s3cret") {
		t.Fatal("clear-text password in users.d xml")
	}
	for _, bad := range []chschema.BIUser{{Name: "", Tenant: "t", Password: "p"}, {Name: "a b", Tenant: "t", Password: "p"}, {Name: "a", Tenant: "t"}} {
		if _, err := chschema.UsersXML("wardstream", nil, []chschema.BIUser{bad}); err == nil {
			t.Errorf("UsersXML accepted %+v", bad)
		}
	}
	if _, err := chschema.UsersXML("1db", nil, nil); err == nil {
		t.Error("UsersXML accepted a database name that is not an XML name")
	}
}

func TestTenantStatements(t *testing.T) {
	tg := chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Compat)}
	stmts, err := chschema.TenantStatements(tg, "Hospital-A", map[string]bool{"alerts": true})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(stmts, "\n")
	// Not a clean tenant: the sanitized name plus a hash of the tenant.
	tdb := chschema.TenantDatabase("wardstream", "Hospital-A")
	if !strings.HasPrefix(tdb, "wardstream_bi_hospital_a_") || len(tdb) != len("wardstream_bi_hospital_a_")+16 {
		t.Fatalf("TenantDatabase(Hospital-A) = %s", tdb)
	}
	if got := chschema.TenantDatabase("wardstream", "hospital_a"); got != "wardstream_bi_hospital_a" {
		t.Fatalf("TenantDatabase(hospital_a) = %s, want the clean name unchanged", got)
	}
	all = strings.ReplaceAll(all, tdb, "wardstream_bi_hospital_a")
	for _, m := range []string{
		"CREATE DATABASE IF NOT EXISTS wardstream_bi_hospital_a",
		"CREATE TABLE IF NOT EXISTS wardstream_bi_hospital_a.dose_outcomes AS wardstream.dose_outcomes",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS wardstream_bi_hospital_a.dose_outcomes_feed TO wardstream_bi_hospital_a.dose_outcomes AS SELECT * FROM wardstream.dose_outcomes WHERE tenant = 'Hospital-A'",
		// bi_adherence_daily reads the adherence table since migration 5.
		"INSERT INTO wardstream_bi_hospital_a.adherence SELECT * FROM wardstream.adherence WHERE tenant = 'Hospital-A'",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS wardstream_bi_hospital_a.adherence_feed TO wardstream_bi_hospital_a.adherence AS SELECT * FROM wardstream.adherence WHERE tenant = 'Hospital-A'",
		"DROP TABLE IF EXISTS wardstream_bi_hospital_a.bi_adherence_daily",
		"FROM wardstream_bi_hospital_a.adherence GROUP BY tenant, day, medication_id, patient_id",
		"CREATE VIEW IF NOT EXISTS wardstream_bi_hospital_a.bi_missed_doses AS",
		"FROM wardstream_bi_hospital_a.dose_outcomes GROUP BY tenant, dose_id",
	} {
		if !strings.Contains(all, m) {
			t.Errorf("statements lack %q", m)
		}
	}
	if strings.Contains(all, "INSERT INTO wardstream_bi_hospital_a.alerts") {
		t.Error("an existing copy was backfilled again")
	}
	if strings.Contains(all, "FROM wardstream.bi_") {
		t.Error("a tenant view reads the shared database")
	}
	if _, err := chschema.TenantStatements(chschema.Target{Database: "w", Cluster: "c", Caps: tg.Caps}, "t", nil); err == nil {
		t.Error("cluster accepted")
	}
}

func TestUserStatements(t *testing.T) {
	tg := chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Modern)}
	stmts, err := chschema.UserStatements(tg, chschema.BIUser{Name: "bi_a", Tenant: "hospital-a", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(stmts, "\n")
	for _, m := range []string{"CREATE USER IF NOT EXISTS bi_a IDENTIFIED WITH sha256_hash BY", "DEFAULT ROLE wardstream_bi", "GRANT wardstream_bi TO bi_a",
		"CREATE ROW POLICY OR REPLACE tenant_bi_a ON wardstream.alerts FOR SELECT USING tenant = 'hospital-a' TO bi_a", "ALTER USER bi_a IDENTIFIED WITH sha256_hash BY"} {
		if !strings.Contains(all, m) {
			t.Errorf("statements lack %q:\n%s", m, all)
		}
	}
	if strings.Contains(all, "'pw'") {
		t.Fatal("clear-text password in SQL")
	}
	if _, err := chschema.UserStatements(chschema.CapsTarget(tg, chschema.Compat), chschema.BIUser{Name: "a", Tenant: "t", Password: "p"}); err == nil {
		t.Fatal("compat profile must refuse SQL users")
	}
}

func TestExpiredPartitions(t *testing.T) {
	tg := chschema.Target{Database: "wardstream", Caps: chschema.CapsFor(chschema.Compat)}
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	got := chschema.ExpiredPartitions(tg, map[string][]string{
		"vitals":     {"202607", "202608", "202609", "202610", "202611"}, // 90 days: cutoff 2026-08-24
		"schedules":  {"all"},                                            // no retention
		"detections": {"202609", "202610"},                               // 30 days: cutoff 2026-10-23
		"adherence":  {"202401", "202409"},                               // 800 days: cutoff 2024-09-13
	}, now)
	want := []string{
		"ALTER TABLE wardstream.vitals DROP PARTITION 202607",
		"ALTER TABLE wardstream.detections DROP PARTITION 202609",
		"ALTER TABLE wardstream.adherence DROP PARTITION 202401",
	}
	if strings.Join(sortStrings(got), "\n") != strings.Join(sortStrings(want), "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestDashboardsCommitted: the JSON in deploy/grafana is exactly what
// Dashboards generates, so the dashboards run the queries the integration
// tests run.
func TestDashboardsCommitted(t *testing.T) {
	root := testutil.RepoRoot()
	for _, d := range chschema.Dashboards() {
		want, err := chschema.DashboardJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", d.UID+".json"))
		if err != nil {
			t.Fatalf("%v (run go run ./deploy/grafana/gen)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/grafana/%s.json is stale: run go run ./deploy/grafana/gen", d.UID)
		}
	}
}

func TestExpandMacros(t *testing.T) {
	from, to := time.Unix(100, 0), time.Unix(200, 0)
	got := chschema.ExpandMacros("SELECT 1 FROM ${database}.t WHERE tenant = '${tenant}' AND $__timeFilter(event_time) AND d >= toDate($__fromTime)", from, to, "h'1", "db")
	want := "SELECT 1 FROM db.t WHERE tenant = 'h1' AND event_time >= toDateTime(100) AND event_time <= toDateTime(200) AND d >= toDate(toDateTime(100))"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestUsersXMLWellFormed: the document parses (ClickHouse refuses the whole
// users.d merge otherwise; "--" inside a comment once did that).
func TestUsersXMLWellFormed(t *testing.T) {
	doc, err := chschema.UsersXML("wardstream", []string{"::/0"}, []chschema.BIUser{{Name: "bi", Tenant: "<&>'\"", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("users.d xml does not parse: %v\n%s", err, doc)
		}
		if c, ok := tok.(xml.Comment); ok && strings.Contains(string(c), "--") {
			t.Fatalf("comment holds \"--\": %s", c)
		}
	}
}

// TestPlanSharded pins the sharded variant: every table is a replicated
// local table plus a Distributed table keyed so that every copy of a row
// lands on one shard; rollups aggregate per shard; views read the
// Distributed tables; the migrations record is shared by all shards.
func TestPlanSharded(t *testing.T) {
	tg := chschema.Target{Database: "wardstream", Cluster: "ws", Sharded: true, Caps: chschema.CapsFor(chschema.Modern)}
	stmts := chschema.Plan(tg)
	ddl := strings.Join(stmts, ";\n")
	for _, m := range []string{
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/wardstream/schema_migrations', '{replica}', applied_at)",
		"CREATE TABLE IF NOT EXISTS wardstream.vitals_local ON CLUSTER ws\n(",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wardstream/vitals_local', '{replica}')",
		"CREATE TABLE IF NOT EXISTS wardstream.vitals ON CLUSTER ws AS wardstream.vitals_local\nENGINE = Distributed('ws', 'wardstream', 'vitals_local', cityHash64(tenant, device_id))",
		"ENGINE = Distributed('ws', 'wardstream', 'dose_outcomes_local', cityHash64(tenant, patient_id))",
		"ENGINE = Distributed('ws', 'wardstream', 'alerts_local', cityHash64(tenant, alert_id))",
		"ENGINE = Distributed('ws', 'wardstream', 'detections_local', cityHash64(tenant, camera_id))",
		"ENGINE = Distributed('ws', 'wardstream', 'audit_local', cityHash64(tenant, event_id))",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS wardstream.vitals_1m_mv ON CLUSTER ws TO wardstream.vitals_1m_local AS",
		"FROM wardstream.vitals_local GROUP BY tenant, ward, device_id, minute",
		"FROM wardstream.adherence_local GROUP BY", "FROM wardstream.detections_local GROUP BY", "FROM wardstream.alerts_local GROUP BY",
		"ENGINE = Distributed('ws', 'wardstream', 'vitals_1m_local', rand())",
		"FROM wardstream.adherence_daily GROUP BY", "FROM wardstream.dose_outcomes GROUP BY tenant, dose_id",
		"GRANT ON CLUSTER ws SELECT ON wardstream.dose_outcomes_local TO wardstream_bi",
	} {
		if !strings.Contains(ddl, m) {
			t.Errorf("sharded DDL lacks %q", m)
		}
	}
	// Every table of the sink exists as a Distributed table over a local one.
	for _, tb := range chschema.Tables() {
		local, dist := false, false
		for _, s := range stmts {
			local = local || strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS wardstream."+tb.Name+"_local ON CLUSTER ws\n")
			dist = dist || strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS wardstream."+tb.Name+" ON CLUSTER ws AS wardstream."+tb.Name+"_local\nENGINE = Distributed(")
		}
		if !local || !dist {
			t.Errorf("table %s: local %v, distributed %v", tb.Name, local, dist)
		}
		// The shard key's columns are all part of the row's identity.
		key := strings.TrimSuffix(strings.TrimPrefix(tb.ShardKey(), "cityHash64("), ")")
		for _, c := range strings.Split(key, ", ") {
			if !strings.Contains(strings.Join(tb.OrderBy, ","), c) {
				t.Errorf("table %s: shard key column %s is not in ORDER BY %v", tb.Name, c, tb.OrderBy)
			}
		}
	}
	// Without a cluster, Sharded changes nothing.
	flat := chschema.Plan(chschema.Target{Database: "wardstream", Sharded: true, Caps: chschema.CapsFor(chschema.Modern)})
	if strings.Join(flat, ";\n") != plan(chschema.Modern, "") {
		t.Error("Sharded without a cluster changed the DDL")
	}
	// Row policies cover the local tables too (distributed reads run on
	// every shard as the invoker).
	us, err := chschema.UserStatements(tg, chschema.BIUser{Name: "bi_a", Tenant: "a", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(us, "\n"), "ON wardstream.alerts_local FOR SELECT USING tenant = 'a'") {
		t.Errorf("no row policy on the local alerts table:\n%s", strings.Join(us, "\n"))
	}
	// Retention drops partitions of the local tables.
	got := chschema.ExpiredPartitions(chschema.Target{Database: "wardstream", Cluster: "ws", Sharded: true, Caps: chschema.CapsFor(chschema.Compat)},
		map[string][]string{"vitals_local": {"202607"}, "vitals": {"202606"}}, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if strings.Join(got, "\n") != "ALTER TABLE wardstream.vitals_local ON CLUSTER ws DROP PARTITION 202607" {
		t.Errorf("sharded retention: %q", got)
	}
}
