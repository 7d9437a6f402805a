package clickhouse

import (
	"fmt"
	"strings"
)

// Type is an abstract column type, rendered per profile.
type Type int

// Column types.
const (
	// Str is String (ZSTD-compressed on modern servers).
	Str Type = iota
	// LC is a low-cardinality string: LowCardinality(String) on modern
	// servers, String otherwise.
	LC
	// Time is a UTC timestamp: DateTime64(3, 'UTC') on modern servers,
	// DateTime('UTC') (seconds) otherwise.
	Time
	// Date is a calendar date.
	Date
	// F64 is Float64 (Gorilla on modern servers).
	F64
	// F32 is Float32.
	F32
	// I64 is Int64 (Delta-compressed on modern servers).
	I64
	// I32 is Int32.
	I32
	// U64 is UInt64, used for versions.
	U64
	// Bool is UInt8 0/1 (18.16 has no Bool).
	Bool
	// Strs is Array(String).
	Strs
	// I32s is Array(Int32).
	I32s
)

// sql renders t for caps.
func (t Type) sql(c Caps) string {
	switch t {
	case Str:
		if c.Codecs {
			return "String CODEC(ZSTD(1))"
		}
		return "String"
	case LC:
		if c.LowCardinality {
			return "LowCardinality(String)"
		}
		return "String"
	case Time:
		if c.DateTime64 {
			return "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))"
		}
		return "DateTime('UTC')"
	case Date:
		return "Date"
	case F64:
		if c.Codecs {
			return "Float64 CODEC(Gorilla)"
		}
		return "Float64"
	case F32:
		return "Float32"
	case I64:
		if c.Codecs {
			return "Int64 CODEC(Delta, ZSTD(1))"
		}
		return "Int64"
	case I32:
		return "Int32"
	case U64:
		return "UInt64"
	case Bool:
		return "UInt8"
	case Strs:
		return "Array(String)"
	case I32s:
		return "Array(Int32)"
	}
	panic(fmt.Sprintf("clickhouse: unknown column type %d", t))
}

// Column is one table column.
type Column struct {
	Name string
	Type Type
	// Doc says what the column holds.
	Doc string
}

// Kind says how duplicates of a table collapse.
type Kind int

// Table kinds.
const (
	// Event tables hold immutable facts; ORDER BY ends with event_id, so a
	// redelivered event collapses into one row.
	Event Kind = iota
	// State tables hold the latest version per natural key
	// (ReplacingMergeTree(version)).
	State
)

// Table is a base table: the sink writes it, the rollups and views read it.
type Table struct {
	Name    string
	Kind    Kind
	Columns []Column
	// OrderBy is the sorting and dedup key.
	OrderBy []string
	// Version is the version column of State tables.
	Version string
	// PartitionBy is the partition expression ("" for a single partition).
	// It must be a function of the dedup key's row: duplicates only
	// collapse within a partition.
	PartitionBy string
	// TTLColumn and RetentionDays give the retention: a TTL on modern
	// servers, dropped month partitions on compat ones. 0 keeps forever.
	TTLColumn     string
	RetentionDays int
	// Doc says what the table holds.
	Doc string
}

// ColumnNames returns the names of t's columns in order: the explicit
// column list of every INSERT into t.
func (t Table) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// engine renders the table engine for target.
func engine(tg Target, family, name string, args ...string) string {
	if tg.Cluster != "" {
		shard := "{shard}"
		if tg.sharded() && name == MigrationsTable {
			// One migrations record for the whole cluster, whichever
			// shard's node ran the migration.
			shard = "all"
		}
		zk := quoteString("/clickhouse/tables/" + shard + "/" + tg.Database + "/" + name)
		args = append([]string{zk, "'{replica}'"}, args...)
		family = "Replicated" + family
	}
	return family + "(" + strings.Join(args, ", ") + ")"
}

// ShardKey is the sharding expression of t's Distributed table: a hash of
// its first two ORDER BY columns (event_id instead of a time column), so
// that every copy of a row goes to the same shard.
func (t Table) ShardKey() string {
	k := t.OrderBy
	if len(k) > 2 {
		k = k[:2]
	}
	cols := append([]string(nil), k...)
	for i, c := range cols {
		if c == "event_time" {
			cols[i] = "event_id"
		}
	}
	return "cityHash64(" + strings.Join(cols, ", ") + ")"
}

// statements renders CREATE TABLE for t: one table, or when sharded the
// local table and the Distributed table over it.
func (t Table) statements(tg Target) []string {
	if !tg.sharded() {
		return []string{t.createTable(tg)}
	}
	return []string{t.createTable(tg), distributed(tg, t.Name, t.ShardKey())}
}

// distributed renders the Distributed table name over tg.Local(name).
func distributed(tg Target, name, shardKey string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s, %s)",
		tg.q(name), tg.onCluster(), tg.q(tg.Local(name)), quoteString(tg.Cluster), quoteString(tg.Database), quoteString(tg.Local(name)), shardKey)
}

// createTable renders CREATE TABLE for t's rows on a node (t itself, or its
// local table when sharded).
func (t Table) createTable(tg Target) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s\n(\n", tg.q(tg.Local(t.Name)), tg.onCluster())
	for i, c := range t.Columns {
		sep := ","
		if i == len(t.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s %s%s\n", quoteIdent(c.Name), c.Type.sql(tg.Caps), sep)
	}
	b.WriteString(")\n")
	var args []string
	if t.Kind == State {
		args = append(args, t.Version)
	}
	fmt.Fprintf(&b, "ENGINE = %s\n", engine(tg, "ReplacingMergeTree", tg.Local(t.Name), args...))
	if t.PartitionBy != "" {
		fmt.Fprintf(&b, "PARTITION BY %s\n", t.PartitionBy)
	}
	fmt.Fprintf(&b, "ORDER BY (%s)", strings.Join(t.OrderBy, ", "))
	if tg.Caps.TTL && t.RetentionDays > 0 {
		ttlExpr := t.TTLColumn
		if t.columnType(t.TTLColumn) == Time {
			ttlExpr = "toDateTime(" + t.TTLColumn + ")"
		}
		fmt.Fprintf(&b, "\nTTL %s + INTERVAL %d DAY", ttlExpr, t.RetentionDays)
	}
	if tg.Caps.InsertDedupToken && tg.Cluster == "" {
		// Plain MergeTree dedups retried inserts only with a window;
		// Replicated* engines always keep one.
		b.WriteString("\nSETTINGS non_replicated_deduplication_window = 1000")
	}
	return b.String()
}

func (t Table) columnType(name string) Type {
	for _, c := range t.Columns {
		if c.Name == name {
			return c.Type
		}
	}
	return Str
}

// Table names. The sink writes exactly these.
const (
	TIntakes        = "intakes"
	TSchedules      = "schedules"
	TDeviceStatus   = "device_status"
	TVitals         = "vitals"
	TDeviceCommands = "device_commands"
	TDeviceShadows  = "device_shadows"
	TShadowDesired  = "shadow_desired"
	TFrames         = "frames"
	TDetections     = "detections"
	TVideoEvents    = "video_events"
	TCameraControls = "camera_controls"
	TDoseOutcomes   = "dose_outcomes"
	TAdherence      = "adherence"
	TAnomalyScores  = "anomaly_scores"
	TAlerts         = "alerts"
	TAlertAcks      = "alert_acks"
	TDeadLetters    = "dead_letters"
	TAudit          = "audit"
)

// meta are the leading columns of every table (from wardstream.v1.Meta).
func meta() []Column {
	return []Column{
		{"tenant", LC, "tenant (hospital network) the row belongs to"},
		{"event_id", Str, "stable id of the source event; the dedup key of event tables"},
		{"event_time", Time, "when it happened (UTC)"},
		{"ingest_time", Time, "when wardstream received it (UTC)"},
		{"source", LC, "component that produced the record"},
	}
}

func cols(extra ...Column) []Column { return append(meta(), extra...) }

const monthOfEvent = "toYYYYMM(event_time)"

// v1Tables are the tables of migration 1. They are frozen: a change is a
// new migration (ALTER TABLE ... ADD COLUMN), never an edit here, or the
// migrator refuses the modified migration on every existing database.
func v1Tables() []Table {
	return []Table{
		{Name: TIntakes, Kind: Event, Doc: "medication intakes reported by pillcases",
			Columns: cols(
				Column{"device_id", Str, "pillcase"}, Column{"patient_id", Str, ""}, Column{"medication_id", Str, ""},
				Column{"ward", LC, ""}, Column{"intake_time", Time, "when the dose was taken"},
				Column{"status", LC, "device-reported intake status"}, Column{"dosage", F64, ""}, Column{"unit", LC, ""},
				Column{"location", Str, ""}, Column{"method", LC, ""}, Column{"verification", LC, ""},
			),
			OrderBy: []string{"tenant", "patient_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 400},
		{Name: TSchedules, Kind: State, Doc: "dose schedules, latest version per patient and medication",
			Columns: cols(
				Column{"patient_id", Str, ""}, Column{"medication_id", Str, ""}, Column{"device_id", Str, ""},
				Column{"ward", LC, ""}, Column{"medication_name", Str, ""}, Column{"timezone", LC, ""},
				Column{"times", Strs, "local HH:MM times"}, Column{"days_of_week", I32s, "0=Sunday..6; empty is every day"},
				Column{"start_date", Str, ""}, Column{"end_date", Str, ""}, Column{"doses_per_time", I32, ""},
				Column{"grace_minutes", I32, ""}, Column{"late_window_minutes", I32, ""}, Column{"early_window_minutes", I32, ""},
				Column{"deleted", Bool, "1 when the schedule was removed"}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "patient_id", "medication_id"}, Version: "version"},
		{Name: TDeviceStatus, Kind: Event, Doc: "device status reports, last wills and offline notices",
			Columns: cols(
				Column{"device_id", Str, ""}, Column{"device_type", LC, ""}, Column{"ward", LC, ""},
				Column{"online", Bool, ""}, Column{"battery_level", F64, "percent"}, Column{"signal_strength", F64, ""},
				Column{"firmware_version", LC, ""}, Column{"status", LC, ""}, Column{"patient_id", Str, ""},
				Column{"location", Str, ""}, Column{"reported_json", Str, "reported state as JSON"},
			),
			OrderBy: []string{"tenant", "device_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 90},
		{Name: TVitals, Kind: Event, Doc: "vitals, pump readings and device alerts",
			Columns: cols(
				Column{"device_id", Str, ""}, Column{"device_type", LC, ""}, Column{"patient_id", Str, ""},
				Column{"ward", LC, ""}, Column{"kind", LC, "vitals, readings, alerts or status"},
				Column{"heart_rate", F64, "0 when absent"}, Column{"systolic_bp", F64, ""}, Column{"diastolic_bp", F64, ""},
				Column{"spo2", F64, ""}, Column{"temperature", F64, ""}, Column{"respiratory_rate", F64, ""},
				Column{"glucose", F64, ""}, Column{"medication_dose", F64, ""}, Column{"administration_rate", F64, ""},
				Column{"battery_level", F64, ""}, Column{"severity", I32, ""}, Column{"alert_type", LC, ""},
				Column{"message", Str, ""}, Column{"quality", LC, ""}, Column{"batch_id", Str, ""},
				Column{"present", Strs, "numeric fields the device sent"},
				Column{"extra_keys", Strs, "extra numeric fields: names"}, Column{"extra_values", Strs, "extra numeric fields: values as text"},
			),
			OrderBy: []string{"tenant", "device_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 90},
		{Name: TDeviceCommands, Kind: State, Doc: "device commands, latest state per command",
			Columns: cols(
				Column{"command_id", Str, ""}, Column{"device_id", Str, ""}, Column{"command_type", LC, ""},
				Column{"state", LC, ""}, Column{"payload_json", Str, ""}, Column{"issued_by", Str, ""},
				Column{"timeout_ms", I64, ""}, Column{"sent_time", Time, ""}, Column{"ack_time", Time, ""},
				Column{"error", Str, ""}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "device_id", "command_id"}, Version: "version"},
		{Name: TDeviceShadows, Kind: State, Doc: "device shadows, latest version per device",
			Columns: cols(
				Column{"device_id", Str, ""}, Column{"desired_json", Str, ""}, Column{"reported_json", Str, ""},
				Column{"delta_json", Str, ""}, Column{"online", Bool, ""}, Column{"last_seen", Time, ""},
				Column{"desired_updated", Time, ""}, Column{"reported_updated", Time, ""}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "device_id"}, Version: "version"},
		{Name: TShadowDesired, Kind: Event, Doc: "desired-state updates requested for device shadows",
			Columns: cols(
				Column{"device_id", Str, ""}, Column{"desired_json", Str, ""}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "device_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 90},
		{Name: TFrames, Kind: Event, Doc: "one row per analysed camera frame",
			Columns: cols(
				Column{"camera_id", Str, ""}, Column{"ward", LC, ""}, Column{"zone", LC, ""}, Column{"location", Str, ""},
				Column{"frame_time", Time, ""}, Column{"sequence", I64, ""}, Column{"model_name", LC, ""},
				Column{"model_version", LC, ""}, Column{"inference_ms", F32, ""}, Column{"width", I32, ""},
				Column{"height", I32, ""}, Column{"detections", I32, "number of detections in the frame"},
			),
			OrderBy: []string{"tenant", "camera_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 30},
		{Name: TDetections, Kind: Event, Doc: "one row per detection in a frame",
			Columns: cols(
				Column{"camera_id", Str, ""}, Column{"ward", LC, ""}, Column{"zone", LC, ""},
				Column{"det_index", I32, "position in the frame's detections; with event_id the dedup key"},
				Column{"class_name", LC, ""}, Column{"class_id", I32, ""}, Column{"confidence", F32, ""},
				Column{"box_x", F32, ""}, Column{"box_y", F32, ""}, Column{"box_w", F32, ""}, Column{"box_h", F32, ""},
			),
			OrderBy: []string{"tenant", "camera_id", "event_time", "event_id", "det_index"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 30},
		videoTable(TVideoEvents, "debounced video events", 400),
		videoTable(TCameraControls, "camera sampling-rate changes", 30),
		{Name: TDoseOutcomes, Kind: State, Doc: "outcome of every scheduled dose, latest version per dose_id",
			Columns: cols(
				Column{"dose_id", Str, ""}, Column{"patient_id", Str, ""}, Column{"medication_id", Str, ""},
				Column{"device_id", Str, ""}, Column{"ward", LC, ""}, Column{"scheduled_time", Time, ""},
				Column{"local_date", Date, "patient's local date of the scheduled dose"},
				Column{"outcome", LC, "TAKEN_ON_TIME, TAKEN_EARLY, TAKEN_LATE, MISSED or EXTRA"},
				Column{"intake_event_id", Str, ""}, Column{"intake_time", Time, ""}, Column{"delay_minutes", F64, ""},
				Column{"verification", LC, ""}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "patient_id", "dose_id"}, Version: "version",
			PartitionBy: "toYYYYMM(scheduled_time)", TTLColumn: "scheduled_time", RetentionDays: 400},
		{Name: TAdherence, Kind: State, Doc: "adherence per patient, medication and day, latest version",
			Columns: cols(
				Column{"patient_id", Str, ""}, Column{"medication_id", Str, ""}, Column{"ward", LC, ""},
				Column{"day", Date, "patient's local date"},
				Column{"daily_due", I32, ""}, Column{"daily_taken", I32, ""}, Column{"daily_ratio", F64, ""},
				Column{"due_7d", I32, ""}, Column{"taken_7d", I32, ""}, Column{"ratio_7d", F64, ""},
				Column{"due_30d", I32, ""}, Column{"taken_30d", I32, ""}, Column{"ratio_30d", F64, ""},
				Column{"pdc_30d", F64, ""}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "patient_id", "medication_id", "day"}, Version: "version",
			PartitionBy: "toYYYYMM(day)", TTLColumn: "day", RetentionDays: 800},
		{Name: TAnomalyScores, Kind: Event, Doc: "anomaly score of every vitals reading",
			Columns: cols(
				Column{"device_id", Str, ""}, Column{"patient_id", Str, ""}, Column{"ward", LC, ""},
				Column{"reading_event_id", Str, ""}, Column{"score", F64, ""}, Column{"rule_score", F64, ""},
				Column{"z_score", F64, ""}, Column{"reasons", Strs, ""}, Column{"level", LC, ""},
				Column{"heart_rate", F64, ""}, Column{"systolic_bp", F64, ""}, Column{"spo2", F64, ""},
			),
			OrderBy: []string{"tenant", "device_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 90},
		{Name: TAlerts, Kind: State, Doc: "alerts, latest version per alert_id",
			Columns: cols(
				Column{"alert_id", Str, ""}, Column{"alert_type", LC, ""}, Column{"priority", LC, ""},
				Column{"state", LC, "OPEN, ACKNOWLEDGED, RESOLVED or ESCALATED"}, Column{"subject_type", LC, ""},
				Column{"subject_id", Str, ""}, Column{"patient_id", Str, ""}, Column{"device_id", Str, ""},
				Column{"camera_id", Str, ""}, Column{"medication_id", Str, ""}, Column{"ward", LC, ""},
				Column{"message", Str, ""}, Column{"opened_time", Time, "partition key: must not change across versions"},
				Column{"acked_time", Time, ""}, Column{"resolved_time", Time, ""},
				Column{"escalation_level", I32, ""}, Column{"acked_by", Str, ""}, Column{"version", U64, ""},
			),
			OrderBy: []string{"tenant", "alert_id"}, Version: "version",
			PartitionBy: "toYYYYMM(opened_time)", TTLColumn: "opened_time", RetentionDays: 400},
		{Name: TAlertAcks, Kind: Event, Doc: "alert acknowledgements",
			Columns: cols(Column{"alert_id", Str, ""}, Column{"user", Str, ""}, Column{"note", Str, ""}),
			OrderBy: []string{"tenant", "alert_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 400},
		{Name: TDeadLetters, Kind: Event, Doc: "rejected input with its reason (raw bytes hex-encoded)",
			Columns: cols(
				Column{"stage", LC, ""}, Column{"source_topic", LC, ""}, Column{"source_partition", I32, ""},
				Column{"source_offset", I64, ""}, Column{"key_hex", Str, ""}, Column{"raw_hex", Str, ""},
				Column{"reason", LC, ""}, Column{"error", Str, ""},
			),
			OrderBy: []string{"tenant", "stage", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 30},
		{Name: TAudit, Kind: Event, Doc: "API writes",
			Columns: cols(
				Column{"user", Str, ""}, Column{"role", LC, ""}, Column{"action", LC, ""}, Column{"resource", Str, ""},
				Column{"body_json", Str, ""}, Column{"status", I32, ""},
			),
			OrderBy: []string{"tenant", "event_time", "event_id"}, PartitionBy: monthOfEvent,
			TTLColumn: "event_time", RetentionDays: 400},
	}
}

func videoTable(name, doc string, days int) Table {
	return Table{Name: name, Kind: Event, Doc: doc,
		Columns: cols(
			Column{"camera_id", Str, ""}, Column{"ward", LC, ""}, Column{"zone", LC, ""}, Column{"location", Str, ""},
			Column{"event_type", LC, ""}, Column{"confidence", F32, ""}, Column{"person_count", I32, ""},
			Column{"start_time", Time, ""}, Column{"end_time", Time, ""}, Column{"details", Str, ""},
		),
		OrderBy: []string{"tenant", "camera_id", "event_time", "event_id"}, PartitionBy: monthOfEvent,
		TTLColumn: "event_time", RetentionDays: days}
}

// Tables returns the base tables as of the newest migration, the ones the
// sink writes.
func Tables() []Table { return v1Tables() }

// LookupTable returns the current definition of the base table name.
func LookupTable(name string) (Table, bool) {
	for _, t := range Tables() {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}
