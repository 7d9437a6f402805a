package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// Observer reads what the pipeline made queryable in ClickHouse: row
// counts, probe visibility, and the outcomes the correctness check needs.
// Every query is filtered by the run's tenant and by the run's ids (its
// devices, or for outcomes, adherence and alerts its patients): a --shared
// run reads the topology's own tenant, whose other rows are not the run's.
type Observer struct {
	conn   driver.Conn
	db     string
	tenant string
	// runID prefixes every simulated device id: rows of other sources
	// that land in the same tenant (the connector's default tenant) are
	// not counted.
	runID string
	// partsCount makes FastCount read the row count from the active
	// parts' metadata (system.parts) instead of scanning the table: set
	// when the database holds only this run's rows and the tables are
	// local (not sharded).
	partsCount bool
}

// CountFromParts makes FastCount answer from system.parts (metadata, no
// scan; see Observer.partsCount). The harness sets it for runs in their
// own, unsharded database: the progress poll then costs ClickHouse
// nothing, where a count() filtered by tenant and devices reads two
// string columns of the whole table every poll (on a large run that was a
// sizeable share of ClickHouse's CPU, taken from the pipeline under test).
func (o *Observer) CountFromParts(on bool) { o.partsCount = on }

// OpenObserver connects to ClickHouse (cfg's address) for database db.
func OpenObserver(ctx context.Context, cfg config.ClickHouse, password, db, tenant, runID string) (*Observer, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        cfg.Addr,
		Auth:        clickhouse.Auth{Database: "default", Username: cfg.Username, Password: password},
		DialTimeout: cfg.DialTimeout.D(),
	})
	if err != nil {
		return nil, fmt.Errorf("opening clickhouse %v: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pinging clickhouse %v: %w", cfg.Addr, err)
	}
	return &Observer{conn: conn, db: db, tenant: tenant, runID: runID}, nil
}

// Close closes the connection.
func (o *Observer) Close() error { return o.conn.Close() }

// Migrate applies the wardstream migrations to the observer's database
// (the same code `wardstream migrate` runs).
func (o *Observer) Migrate(ctx context.Context, cluster string) (chschema.Result, error) {
	m := &chschema.Migrator{Conn: chschema.Adapt(o.conn), Database: o.db, Cluster: cluster}
	res, err := m.Migrate(ctx)
	if err != nil {
		return res, fmt.Errorf("migrating clickhouse database %s: %w", o.db, err)
	}
	return res, nil
}

// DropDatabase removes the run's database (after a run, unless kept).
func (o *Observer) DropDatabase(ctx context.Context) error {
	return o.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(o.db))
}

func (o *Observer) t(name string) string { return quoteIdent(o.db) + "." + quoteIdent(name) }

// Counts is what one data table holds for the run.
type Counts struct {
	Rows     uint64 // every row, duplicates included
	Unique   uint64 // distinct event ids
	FinalRow uint64 // rows a FINAL query answers with
}

// Count returns the row counts of table for the run's tenant. final adds
// the FINAL count (costly on large tables: the harness asks once, at the end).
func (o *Observer) Count(ctx context.Context, table string, final bool) (Counts, error) {
	var c Counts
	q := fmt.Sprintf("SELECT count(), uniqExact(event_id) FROM %s WHERE tenant = ? AND device_id >= ? AND device_id < ?", o.t(table))
	if err := o.conn.QueryRow(ctx, q, o.tenant, o.runID, o.runID+"~").Scan(&c.Rows, &c.Unique); err != nil {
		return c, fmt.Errorf("counting %s: %w", table, err)
	}
	if final {
		q := fmt.Sprintf("SELECT count() FROM %s FINAL WHERE tenant = ? AND device_id >= ? AND device_id < ?", o.t(table))
		if err := o.conn.QueryRow(ctx, q, o.tenant, o.runID, o.runID+"~").Scan(&c.FinalRow); err != nil {
			return c, fmt.Errorf("counting %s FINAL: %w", table, err)
		}
	}
	return c, nil
}

// FastCount returns count() of table for the tenant (the progress poll),
// or, with CountFromParts, the rows of the run's database's table.
func (o *Observer) FastCount(ctx context.Context, table string) (uint64, error) {
	var n uint64
	if o.partsCount {
		// Every active part is queryable; rows include duplicates, as
		// count() does.
		if err := o.conn.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts WHERE database = ? AND table = ? AND active", o.db, table).Scan(&n); err != nil {
			return 0, fmt.Errorf("counting %s from system.parts: %w", table, err)
		}
		return n, nil
	}
	q := fmt.Sprintf("SELECT count() FROM %s WHERE tenant = ? AND device_id >= ? AND device_id < ?", o.t(table))
	if err := o.conn.QueryRow(ctx, q, o.tenant, o.runID, o.runID+"~").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting %s: %w", table, err)
	}
	return n, nil
}

// runIDs bounds the ids of the run: every simulated device and patient id
// starts with the run id (id >= lo AND id < hi).
func (o *Observer) runIDs() (lo, hi string) { return o.runID, o.runID + "~" }

// alertsOfRun is the WHERE condition of the run's alerts: those of its
// patients (MISSED_DOSE, ...) or of its devices (PUMP_FAILURE, ...). It
// takes the arguments of alertsOfRunArgs.
const alertsOfRun = "tenant = ? AND ((patient_id >= ? AND patient_id < ?) OR (device_id >= ? AND device_id < ?))"

func (o *Observer) alertsOfRunArgs() []any {
	lo, hi := o.runIDs()
	return []any{o.tenant, lo, hi, lo, hi}
}

// AlertRows counts the alert rows (every version) of the run.
func (o *Observer) AlertRows(ctx context.Context) (uint64, error) {
	var n uint64
	if err := o.conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE %s", o.t("alerts"), alertsOfRun), o.alertsOfRunArgs()...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting alerts: %w", err)
	}
	return n, nil
}

// CameraRows counts the rows of the run's cameras in a video table
// (frames, detections, video_events).
func (o *Observer) CameraRows(ctx context.Context, table string) (uint64, error) {
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM %s WHERE tenant = ? AND camera_id >= ? AND camera_id < ?", o.t(table))
	if err := o.conn.QueryRow(ctx, q, o.tenant, o.runID, o.runID+"~").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting %s: %w", table, err)
	}
	return n, nil
}

// Visible returns which of the probes (all of one table) are present.
// The query names the probes' devices and a lower bound of their event
// times, so ClickHouse reads only those devices' granules (the tables are
// ordered by tenant, device, event time) instead of scanning the run.
func (o *Observer) Visible(ctx context.Context, table string, ps []probe) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ps) == 0 {
		return out, nil
	}
	ids := make([]string, len(ps))
	devs := map[string]bool{}
	var devList []string
	oldest := ps[0].eventTime
	for i, p := range ps {
		ids[i] = p.id
		if !devs[p.device] {
			devs[p.device] = true
			devList = append(devList, p.device)
		}
		if p.eventTime.Before(oldest) {
			oldest = p.eventTime
		}
	}
	// event_time has second resolution on old servers: floor, minus a margin.
	q := fmt.Sprintf(`SELECT DISTINCT event_id FROM %s WHERE tenant = ? AND device_id IN (%s)
		AND event_time >= toDateTime(%d) AND event_id IN (%s)`, o.t(table), inList(devList), oldest.Unix()-2, inList(ids))
	rows, err := o.conn.Query(ctx, q, o.tenant)
	if err != nil {
		return nil, fmt.Errorf("looking up probes in %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scanning probes of %s: %w", table, err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// OutcomeRow is the latest version of one dose outcome.
type OutcomeRow struct {
	PatientID, MedicationID, Outcome string
	Scheduled                        time.Time
}

// Outcomes returns the final (highest version) outcome of every dose of
// the run.
func (o *Observer) Outcomes(ctx context.Context) ([]OutcomeRow, error) {
	q := fmt.Sprintf(`SELECT argMax(patient_id, version), argMax(medication_id, version),
		toUInt32(argMax(scheduled_time, version)), argMax(outcome, version)
		FROM %s WHERE tenant = ? AND patient_id >= ? AND patient_id < ? GROUP BY dose_id`, o.t("dose_outcomes"))
	lo, hi := o.runIDs()
	rows, err := o.conn.Query(ctx, q, o.tenant, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("reading dose_outcomes: %w", err)
	}
	defer rows.Close()
	var out []OutcomeRow
	for rows.Next() {
		var r OutcomeRow
		var sched uint32
		if err := rows.Scan(&r.PatientID, &r.MedicationID, &sched, &r.Outcome); err != nil {
			return nil, fmt.Errorf("scanning dose_outcomes: %w", err)
		}
		r.Scheduled = time.Unix(int64(sched), 0)
		out = append(out, r)
	}
	return out, rows.Err()
}

// AdherenceRow is the latest adherence of a patient and medication on a day.
type AdherenceRow struct {
	PatientID, MedicationID              string
	DailyDue, DailyTaken, Due7d, Taken7d int32
}

// Adherence returns the latest adherence rows of the run for day
// (YYYY-MM-DD, the patients' local date).
func (o *Observer) Adherence(ctx context.Context, day string) ([]AdherenceRow, error) {
	q := fmt.Sprintf(`SELECT patient_id, medication_id, argMax(daily_due, version), argMax(daily_taken, version),
		argMax(due_7d, version), argMax(taken_7d, version)
		FROM %s WHERE tenant = ? AND day = toDate(?) AND patient_id >= ? AND patient_id < ?
		GROUP BY patient_id, medication_id`, o.t("adherence"))
	lo, hi := o.runIDs()
	rows, err := o.conn.Query(ctx, q, o.tenant, day, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("reading adherence: %w", err)
	}
	defer rows.Close()
	var out []AdherenceRow
	for rows.Next() {
		var r AdherenceRow
		if err := rows.Scan(&r.PatientID, &r.MedicationID, &r.DailyDue, &r.DailyTaken, &r.Due7d, &r.Taken7d); err != nil {
			return nil, fmt.Errorf("scanning adherence: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AlertRow is the latest version of one alert.
type AlertRow struct {
	AlertID, Type, State, PatientID, MedicationID, DeviceID string
}

// Alerts returns the latest version of every alert of the run, optionally
// only of one type.
func (o *Observer) Alerts(ctx context.Context, alertType string) ([]AlertRow, error) {
	q := fmt.Sprintf(`SELECT alert_id, argMax(alert_type, version), argMax(state, version), argMax(patient_id, version),
		argMax(medication_id, version), argMax(device_id, version)
		FROM %s WHERE %s GROUP BY alert_id`, o.t("alerts"), alertsOfRun)
	args := o.alertsOfRunArgs()
	if alertType != "" {
		q += " HAVING argMax(alert_type, version) = ?"
		args = append(args, alertType)
	}
	rows, err := o.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading alerts: %w", err)
	}
	defer rows.Close()
	var out []AlertRow
	for rows.Next() {
		var r AlertRow
		if err := rows.Scan(&r.AlertID, &r.Type, &r.State, &r.PatientID, &r.MedicationID, &r.DeviceID); err != nil {
			return nil, fmt.Errorf("scanning alerts: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeadLetters returns the run's dead letters per "stage/reason".
func (o *Observer) DeadLetters(ctx context.Context) (map[string]uint64, error) {
	// The run's dead letters name its device in the MQTT topic or carry
	// its device id as the Kafka key.
	q := fmt.Sprintf(`SELECT concat(stage, '/', reason), uniqExact(event_id) FROM %s WHERE tenant = ?
		AND (position(source_topic, ?) > 0 OR position(lower(key_hex), lower(hex(?))) > 0) GROUP BY stage, reason`, o.t("dead_letters"))
	rows, err := o.conn.Query(ctx, q, o.tenant, o.runID, o.runID)
	if err != nil {
		return nil, fmt.Errorf("reading dead_letters: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var r string
		var n uint64
		if err := rows.Scan(&r, &n); err != nil {
			return nil, fmt.Errorf("scanning dead_letters: %w", err)
		}
		out[r] = n
	}
	return out, rows.Err()
}

// quoteIdent back-quotes a ClickHouse identifier.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(s) + "`"
}

// inList renders ids as a quoted, escaped SQL list (18.16 rejects an
// array parameter on the right of IN).
func inList(ids []string) string {
	var b strings.Builder
	r := strings.NewReplacer("\\", "\\\\", "'", "\\'")
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\'')
		b.WriteString(r.Replace(id))
		b.WriteByte('\'')
	}
	return b.String()
}
