package clickhouse

import (
	"fmt"
	"strings"
)

// Rollup is an AggregatingMergeTree table fed by a materialized view.
type Rollup struct {
	// Name is the rollup table; its view is Name + "_mv".
	Name string
	// Columns are "name type" pairs (types are the same on every profile).
	Columns [][2]string
	OrderBy []string
	// PartitionBy is the partition expression.
	PartitionBy string
	// Select is the view's SELECT with {db} for the database; it reads
	// From ("FROM {db}.<From> ").
	Select string
	From   string
	Doc    string
}

// selectFor renders r's SELECT for tg: it reads the local table of its
// source when sharded (a materialized view sees the inserts of its node).
func (r Rollup) selectFor(tg Target) string {
	sel := r.Select
	if tg.sharded() {
		sel = strings.Replace(sel, "{db}."+r.From+" ", "{db}."+tg.Local(r.From)+" ", 1)
	}
	return strings.ReplaceAll(sel, "{db}", quoteIdent(tg.Database))
}

// Rollup names.
const (
	RVitals1m     = "vitals_1m"
	RAdherenceDay = "adherence_daily"
	RDetections1m = "detections_1m"
	RAlerts1h     = "alerts_1h"
)

func agg(fn string, args ...string) string {
	return "AggregateFunction(" + fn + ", " + strings.Join(args, ", ") + ")"
}

// vitalStats are the vitals rolled up per minute; 0 means "not measured"
// (proto3 default), so every aggregate is conditional on a positive value.
var vitalStats = []struct{ col, prefix string }{
	{"heart_rate", "hr"}, {"spo2", "spo2"}, {"systolic_bp", "sbp"}, {"temperature", "temp"},
}

// v2Rollups are the rollups of migration 2 (frozen, like v1Tables).
//
// Counts use uniqExact over the row identity (event_id, and det_index for
// detections; alert_id for alerts) so that a batch the sink inserts twice
// after a crash does not count twice. Averages and quantiles cannot be made
// idempotent that way; they can be skewed by replayed rows until the next
// rebuild, which we accept for dashboards. Adherence is versioned state, so
// its rollup keeps argMax(value, version) states per patient, which stay
// exact under duplicates and corrections.
func v2Rollups() []Rollup {
	vit := Rollup{Name: RVitals1m, Doc: "vitals per minute per device: readings, avg/min/max/p95 per vital",
		Columns:     [][2]string{{"tenant", "String"}, {"ward", "String"}, {"device_id", "String"}, {"minute", "DateTime('UTC')"}, {"readings", agg("uniqExact", "String")}},
		OrderBy:     []string{"tenant", "ward", "device_id", "minute"},
		PartitionBy: "toYYYYMM(minute)",
	}
	sel := []string{"tenant", "ward", "device_id", "toStartOfMinute(event_time) AS minute", "uniqExactState(event_id) AS readings"}
	for _, v := range vitalStats {
		for _, f := range []struct{ suffix, fn, params string }{{"avg", "avgIf", ""}, {"min", "minIf", ""}, {"max", "maxIf", ""}, {"p95", "quantileIf", "(0.95)"}} {
			name := v.prefix + "_" + f.suffix
			vit.Columns = append(vit.Columns, [2]string{name, agg(f.fn+f.params, "Float64", "UInt8")})
			sel = append(sel, fmt.Sprintf("%sState%s(%s, %s > 0) AS %s", f.fn, f.params, v.col, v.col, name))
		}
	}
	vit.Select = "SELECT " + strings.Join(sel, ", ") + " FROM {db}.vitals GROUP BY tenant, ward, device_id, minute"
	vit.From = TVitals

	return []Rollup{
		vit,
		{Name: RAdherenceDay, From: TAdherence, Doc: "adherence per day per tenant/ward/medication (argMax states per patient: exact under versions)",
			Columns: [][2]string{{"tenant", "String"}, {"day", "Date"}, {"ward", "String"}, {"medication_id", "String"}, {"patient_id", "String"},
				{"due_state", agg("argMax", "Int32", "UInt64")}, {"taken_state", agg("argMax", "Int32", "UInt64")}},
			OrderBy: []string{"tenant", "day", "ward", "medication_id", "patient_id"}, PartitionBy: "toYYYYMM(day)",
			Select: "SELECT tenant, day, ward, medication_id, patient_id, argMaxState(daily_due, version) AS due_state, " +
				"argMaxState(daily_taken, version) AS taken_state FROM {db}.adherence GROUP BY tenant, day, ward, medication_id, patient_id"},
		{Name: RDetections1m, From: TDetections, Doc: "detections per minute per camera and class",
			Columns: [][2]string{{"tenant", "String"}, {"ward", "String"}, {"camera_id", "String"}, {"class_name", "String"}, {"minute", "DateTime('UTC')"},
				{"detections", agg("uniqExact", "String", "Int32")}, {"max_confidence", agg("max", "Float32")}, {"avg_confidence", agg("avg", "Float32")}},
			OrderBy: []string{"tenant", "ward", "camera_id", "class_name", "minute"}, PartitionBy: "toYYYYMM(minute)",
			Select: "SELECT tenant, ward, camera_id, class_name, toStartOfMinute(event_time) AS minute, uniqExactState(event_id, det_index) AS detections, " +
				"maxState(confidence) AS max_confidence, avgState(confidence) AS avg_confidence FROM {db}.detections GROUP BY tenant, ward, camera_id, class_name, minute"},
		{Name: RAlerts1h, From: TAlerts, Doc: "alerts opened per hour by type and priority (distinct alert ids)",
			Columns: [][2]string{{"tenant", "String"}, {"hour", "DateTime('UTC')"}, {"ward", "String"}, {"alert_type", "String"}, {"priority", "String"},
				{"alerts", agg("uniqExact", "String")}},
			OrderBy: []string{"tenant", "hour", "ward", "alert_type", "priority"}, PartitionBy: "toYYYYMM(hour)",
			Select: "SELECT tenant, toStartOfHour(opened_time) AS hour, ward, alert_type, priority, uniqExactState(alert_id) AS alerts " +
				"FROM {db}.alerts GROUP BY tenant, hour, ward, alert_type, priority"},
	}
}

// statements renders the rollup table and its materialized view.
func (r Rollup) statements(tg Target) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s\n(\n", tg.q(tg.Local(r.Name)), tg.onCluster())
	for i, c := range r.Columns {
		sep := ","
		if i == len(r.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s %s%s\n", quoteIdent(c[0]), c[1], sep)
	}
	fmt.Fprintf(&b, ")\nENGINE = %s\nPARTITION BY %s\nORDER BY (%s)", engine(tg, "AggregatingMergeTree", tg.Local(r.Name)), r.PartitionBy, strings.Join(r.OrderBy, ", "))
	mv := fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS\n%s",
		tg.q(r.Name+"_mv"), tg.onCluster(), tg.q(tg.Local(r.Name)), r.selectFor(tg))
	if !tg.sharded() {
		return []string{b.String(), mv}
	}
	// Each shard aggregates its own rows; queries merge the states of all
	// shards through the Distributed table (rand(): nothing inserts into it).
	return []string{b.String(), mv, distributed(tg, r.Name, "rand()")}
}

// View is a BI view: a stable, documented query surface for analysts.
type View struct {
	Name string
	// Columns documents every output column, in order.
	Columns [][2]string
	// Reads are the tables the view reads (granted to BI users, with
	// tenant filters).
	Reads  []string
	Select string
	Doc    string
}

// BI view names.
const (
	VAdherenceDaily = "bi_adherence_daily"
	VMissedDoses    = "bi_missed_doses"
	VFleetHealth    = "bi_fleet_health"
	VCameraActivity = "bi_camera_activity"
	VAlerts         = "bi_alerts"
)

// v3Views are the BI views of migration 3 (frozen). They use the argMax
// pattern rather than FINAL: it is exact on every server version and under
// any WHERE, whereas old servers may apply a WHERE moved to PREWHERE before
// FINAL collapses versions.
func v3Views() []View {
	return []View{
		{Name: VAdherenceDaily, Reads: []string{RAdherenceDay},
			Doc: "adherence per local day, tenant, ward and medication: latest version of every patient's daily counts",
			Columns: [][2]string{{"tenant", "tenant"}, {"day", "patient's local date"}, {"ward", "ward"}, {"medication_id", "medication"},
				{"patients", "patients with doses due or taken that day"}, {"doses_due", "scheduled doses"}, {"doses_taken", "doses taken"},
				{"adherence_ratio", "doses_taken / doses_due, 0 when nothing was due"}},
			Select: "SELECT tenant, day, ward, medication_id, count() AS patients, sum(due) AS doses_due, sum(taken) AS doses_taken,\n" +
				"    if(doses_due = 0, 0, doses_taken / doses_due) AS adherence_ratio\n" +
				"FROM (SELECT tenant, day, ward, medication_id, patient_id, argMaxMerge(due_state) AS due, argMaxMerge(taken_state) AS taken\n" +
				"      FROM {db}.adherence_daily GROUP BY tenant, day, ward, medication_id, patient_id)\n" +
				"GROUP BY tenant, day, ward, medication_id"},
		{Name: VMissedDoses, Reads: []string{TDoseOutcomes},
			Doc: "every dose whose latest outcome is MISSED",
			Columns: [][2]string{{"tenant", ""}, {"day", "patient's local date of the dose"}, {"ward", ""}, {"patient_id", ""}, {"medication_id", ""},
				{"dose_id", ""}, {"scheduled_time", "UTC"}, {"device_id", "pillcase"}},
			Select: "SELECT tenant, l_day AS day, l_ward AS ward, l_patient AS patient_id, l_medication AS medication_id, dose_id,\n" +
				"    l_scheduled AS scheduled_time, l_device AS device_id\n" +
				"FROM (SELECT tenant, dose_id, argMax(outcome, version) AS l_outcome, argMax(local_date, version) AS l_day,\n" +
				"      argMax(ward, version) AS l_ward, argMax(patient_id, version) AS l_patient, argMax(medication_id, version) AS l_medication,\n" +
				"      argMax(scheduled_time, version) AS l_scheduled, argMax(device_id, version) AS l_device\n" +
				"      FROM {db}.dose_outcomes GROUP BY tenant, dose_id)\n" +
				"WHERE l_outcome = 'MISSED'"},
		{Name: VFleetHealth, Reads: []string{TDeviceStatus},
			Doc: "latest status of every device that ever reported",
			Columns: [][2]string{{"tenant", ""}, {"device_id", ""}, {"device_type", ""}, {"ward", ""}, {"online", "1/0"},
				{"battery_level", "percent"}, {"signal_strength", ""}, {"firmware_version", ""}, {"status", ""},
				{"last_seen", "time of the latest report (UTC)"}, {"reports", "distinct status reports"}},
			Select: "SELECT tenant, device_id, argMax(device_type, (event_time, event_id)) AS device_type, argMax(ward, (event_time, event_id)) AS ward,\n" +
				"    argMax(online, (event_time, event_id)) AS online, argMax(battery_level, (event_time, event_id)) AS battery_level,\n" +
				"    argMax(signal_strength, (event_time, event_id)) AS signal_strength, argMax(firmware_version, (event_time, event_id)) AS firmware_version,\n" +
				"    argMax(status, (event_time, event_id)) AS status, max(event_time) AS last_seen, uniqExact(event_id) AS reports\n" +
				"FROM {db}.device_status GROUP BY tenant, device_id"},
		{Name: VCameraActivity, Reads: []string{RDetections1m},
			Doc: "detections per camera, class and minute",
			Columns: [][2]string{{"tenant", ""}, {"ward", ""}, {"camera_id", ""}, {"class_name", ""}, {"minute", "UTC"},
				{"detections", "distinct detections"}, {"max_confidence", ""}, {"avg_confidence", ""}},
			Select: "SELECT tenant, ward, camera_id, class_name, minute, uniqExactMerge(detections) AS detections,\n" +
				"    maxMerge(max_confidence) AS max_confidence, avgMerge(avg_confidence) AS avg_confidence\n" +
				"FROM {db}.detections_1m GROUP BY tenant, ward, camera_id, class_name, minute"},
		{Name: VAlerts, Reads: []string{TAlerts},
			Doc: "every alert in its latest state",
			Columns: [][2]string{{"tenant", ""}, {"alert_id", ""}, {"alert_type", ""}, {"priority", ""}, {"state", ""}, {"ward", ""},
				{"subject_type", ""}, {"subject_id", ""}, {"patient_id", ""}, {"device_id", ""}, {"camera_id", ""},
				{"opened_time", ""}, {"acked_time", "epoch when not acknowledged"}, {"resolved_time", "epoch when open"},
				{"escalation_level", ""}, {"acked_by", ""}, {"message", ""}},
			Select: "SELECT tenant, alert_id, argMax(alert_type, version) AS alert_type, argMax(priority, version) AS priority,\n" +
				"    argMax(state, version) AS state, argMax(ward, version) AS ward, argMax(subject_type, version) AS subject_type,\n" +
				"    argMax(subject_id, version) AS subject_id, argMax(patient_id, version) AS patient_id, argMax(device_id, version) AS device_id,\n" +
				"    argMax(camera_id, version) AS camera_id, argMax(opened_time, version) AS opened_time, argMax(acked_time, version) AS acked_time,\n" +
				"    argMax(resolved_time, version) AS resolved_time, argMax(escalation_level, version) AS escalation_level,\n" +
				"    argMax(acked_by, version) AS acked_by, argMax(message, version) AS message\n" +
				"FROM {db}.alerts GROUP BY tenant, alert_id"},
	}
}

// v5AdherenceDaily is bi_adherence_daily as of migration 5. Migration 3's
// read the adherence_daily rollup, which groups by ward: a patient moved
// to another ward has a day's later windows under the new ward, and the
// rollup kept the superseded version counted under the old ward too; and
// it counted a patient whose latest window of the day has nothing due (a
// schedule version retracted the day's doses). This one takes every
// patient's latest window of the day, ward included, from the adherence
// table itself (one row per window version: small next to the readings).
func v5AdherenceDaily() View {
	return View{Name: VAdherenceDaily, Reads: []string{TAdherence},
		Doc: "adherence per local day, tenant, ward and medication: latest version of every patient's daily counts",
		Columns: [][2]string{{"tenant", "tenant"}, {"day", "patient's local date"}, {"ward", "the patient's ward in the day's latest window"},
			{"medication_id", "medication"}, {"patients", "patients with doses due or taken that day"}, {"doses_due", "scheduled doses"},
			{"doses_taken", "doses taken"}, {"adherence_ratio", "doses_taken / doses_due, 0 when nothing was due"}},
		Select: "SELECT tenant, day, ward, medication_id, countIf(due > 0 OR taken > 0) AS patients, sum(due) AS doses_due, sum(taken) AS doses_taken,\n" +
			"    if(doses_due = 0, 0, doses_taken / doses_due) AS adherence_ratio\n" +
			"FROM (SELECT tenant, day, medication_id, patient_id, argMax(ward, version) AS ward, argMax(daily_due, version) AS due,\n" +
			"      argMax(daily_taken, version) AS taken\n" +
			"      FROM {db}.adherence GROUP BY tenant, day, medication_id, patient_id)\n" +
			"GROUP BY tenant, day, ward, medication_id"}
}

// Views returns the BI views as of the newest migration.
func Views() []View {
	vs := v3Views()
	for i := range vs {
		if vs[i].Name == VAdherenceDaily {
			vs[i] = v5AdherenceDaily()
		}
	}
	return vs
}

// v6Vitals1m is vitals_1m as of migration 6, which rebuilds it. The
// sink inserts a table's rows every 500 ms, so an insert holds about one
// reading per device and the view writes one row of states per reading:
// the cost of the rollup is the cost of its states, paid at ~17k rows/s
// and again in every merge. Migration 2's states cost 12.7 s of server CPU
// per million readings on 18.16, twice the 6.8 s of the vitals insert
// itself (bench/README.md, "2026-12-03"); these cost 5.4 s:
//   - readings counts uniqExact over cityHash64(event_id), not the string:
//     a set of 8-byte keys instead of copies of every id. A 64-bit
//     collision among one device's readings of one minute (~120) has a
//     probability of ~4e-16.
//   - p95 is quantileTiming, whose state for a minute's readings is a small
//     array of 16-bit integers instead of quantile's reservoir of 8192
//     slots; it is exact for values below 1024 taken in whole units, which
//     heart rate (bpm), SpO2 (%) and systolic pressure (mmHg) are.
//     Temperature has no p95 (whole degrees would say nothing); its
//     avg/min/max stay.
func v6Vitals1m() Rollup {
	vit := Rollup{Name: RVitals1m, From: TVitals,
		Doc:         "vitals per minute per device: readings, avg/min/max per vital, p95 (whole units) of heart rate, SpO2 and systolic pressure",
		Columns:     [][2]string{{"tenant", "String"}, {"ward", "String"}, {"device_id", "String"}, {"minute", "DateTime('UTC')"}, {"readings", agg("uniqExact", "UInt64")}},
		OrderBy:     []string{"tenant", "ward", "device_id", "minute"},
		PartitionBy: "toYYYYMM(minute)",
	}
	sel := []string{"tenant", "ward", "device_id", "toStartOfMinute(event_time) AS minute", "uniqExactState(cityHash64(event_id)) AS readings"}
	for _, v := range vitalStats {
		fns := []struct{ suffix, fn, params string }{{"avg", "avgIf", ""}, {"min", "minIf", ""}, {"max", "maxIf", ""}, {"p95", "quantileTimingIf", "(0.95)"}}
		if v.prefix == "temp" {
			fns = fns[:3]
		}
		for _, f := range fns {
			name := v.prefix + "_" + f.suffix
			vit.Columns = append(vit.Columns, [2]string{name, agg(f.fn+f.params, "Float64", "UInt8")})
			sel = append(sel, fmt.Sprintf("%sState%s(%s, %s > 0) AS %s", f.fn, f.params, v.col, v.col, name))
		}
	}
	vit.Select = "SELECT " + strings.Join(sel, ", ") + " FROM {db}.vitals GROUP BY tenant, ward, device_id, minute"
	return vit
}

// rebuild renders the statements that replace r (a newer definition of a
// rollup of the same name) and refill it from its source table: the
// view, the table (and its shards' tables), the new ones, and one INSERT
// ... SELECT over every source row. It is idempotent: run again, it drops
// what a first run built and builds it again. Rows the sink inserts while
// it runs may be counted twice in averages and quantiles (as replayed rows
// are; counts stay exact): run it with the sink stopped for exact ones.
func (r Rollup) rebuild(tg Target) []string {
	out := []string{fmt.Sprintf("DROP TABLE IF EXISTS %s%s", tg.q(r.Name+"_mv"), tg.onCluster())}
	if tg.sharded() {
		out = append(out, fmt.Sprintf("DROP TABLE IF EXISTS %s%s", tg.q(r.Name), tg.onCluster()))
	}
	out = append(out, fmt.Sprintf("DROP TABLE IF EXISTS %s%s", tg.q(tg.Local(r.Name)), tg.onCluster()))
	out = append(out, r.statements(tg)...)
	cols := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		cols[i] = quoteIdent(c[0])
	}
	// Through the Distributed tables when sharded: every shard's rows,
	// states spread at random (queries merge the states of all shards).
	return append(out, fmt.Sprintf("INSERT INTO %s (%s) %s", tg.q(r.Name), strings.Join(cols, ", "),
		strings.ReplaceAll(r.Select, "{db}", quoteIdent(tg.Database))))
}

// Rollups returns the rollups as of the newest migration.
func Rollups() []Rollup {
	rs := v2Rollups()
	for i := range rs {
		if rs[i].Name == RVitals1m {
			rs[i] = v6Vitals1m()
		}
	}
	return rs
}

func (v View) statement(tg Target) string {
	return fmt.Sprintf("CREATE VIEW IF NOT EXISTS %s%s AS\n%s", tg.q(v.Name), tg.onCluster(),
		strings.ReplaceAll(v.Select, "{db}", quoteIdent(tg.Database)))
}
