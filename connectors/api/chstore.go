package api

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// ClickHouseStore is the [Store] on wardstream's ClickHouse schema
// (schemas/clickhouse). It reads the base state tables with the argMax
// pattern the BI views use (latest version per key, exact on every server
// version, unlike FINAL under a WHERE on old servers), but with the tenant
// and time filters inside the aggregation so that a dashboard query reads
// one tenant's recent parts rather than the whole table. Event tables
// (anomaly scores, video events) may hold a redelivered event twice until
// a merge; LIMIT 1 BY event_id hides that.
//
// Every query binds the tenant; no method can return another tenant's row.
type ClickHouseStore struct {
	conn driver.Conn
	db   string
}

// NewClickHouseStore opens a connection pool to cfg (lazily: no I/O until
// the first query).
func NewClickHouseStore(cfg config.ClickHouse) (*ClickHouseStore, error) {
	opts := &clickhouse.Options{
		Addr:        cfg.Addr,
		Auth:        clickhouse.Auth{Database: "default", Username: cfg.Username, Password: os.Getenv(cfg.PasswordEnv)},
		DialTimeout: cfg.DialTimeout.D(),
		// The API's queries are small and concurrent (one per dashboard
		// panel); a handful of connections serve many users.
		MaxOpenConns:    16,
		MaxIdleConns:    4,
		ConnMaxLifetime: time.Hour,
	}
	if cfg.TLS.Enabled {
		tc, err := kafka.TLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls: %w", err)
		}
		opts.TLS = tc
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening clickhouse %v: %w", cfg.Addr, err)
	}
	return &ClickHouseStore{conn: conn, db: cfg.Database}, nil
}

// NewClickHouseStoreConn uses an open connection and database (tests).
func NewClickHouseStoreConn(conn driver.Conn, database string) *ClickHouseStore {
	return &ClickHouseStore{conn: conn, db: database}
}

// Close closes the connection pool.
func (c *ClickHouseStore) Close() error { return c.conn.Close() }

// Ping implements [Store].
func (c *ClickHouseStore) Ping(ctx context.Context) error {
	if err := c.conn.Ping(ctx); err != nil {
		return fmt.Errorf("pinging clickhouse: %w", err)
	}
	return nil
}

// t returns the qualified name of table.
func (c *ClickHouseStore) t(table string) string { return "`" + c.db + "`.`" + table + "`" }

// unixSec binds a time as a DateTime expression valid on every server.
func unixSec(t time.Time) int64 { return t.Unix() }

func ms(t time.Time) int64 {
	if t.Unix() <= 0 {
		return 0
	}
	return t.UnixMilli()
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// alertColumns are the latest-version columns of an alert, in scan order.
const alertColumns = `alert_id, argMax(alert_type, version) AS a_type, argMax(priority, version) AS a_priority,
    argMax(state, version) AS a_state, argMax(subject_type, version) AS a_subject_type, argMax(subject_id, version) AS a_subject_id,
    argMax(patient_id, version) AS a_patient, argMax(device_id, version) AS a_device, argMax(camera_id, version) AS a_camera,
    argMax(medication_id, version) AS a_medication, argMax(ward, version) AS a_ward, argMax(message, version) AS a_message,
    argMax(opened_time, version) AS a_opened, argMax(acked_time, version) AS a_acked, argMax(resolved_time, version) AS a_resolved,
    argMax(escalation_level, version) AS a_escalation, argMax(acked_by, version) AS a_acked_by, max(version) AS a_version`

func (c *ClickHouseStore) queryAlerts(ctx context.Context, tenant string, where string, whereArgs []any, having string, havingArgs []any, limit int) ([]*pb.Alert, error) {
	q := "SELECT " + alertColumns + " FROM " + c.t(chschema.TAlerts) + " WHERE tenant = ?" + where +
		" GROUP BY alert_id"
	if having != "" {
		q += " HAVING " + having
	}
	q += " ORDER BY a_opened DESC, alert_id LIMIT ?"
	args := append(append(append([]any{tenant}, whereArgs...), havingArgs...), limit)
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying alerts of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.Alert
	for rows.Next() {
		var (
			a                       pb.Alert
			typ, prio, state        string
			opened, acked, resolved time.Time
			esc                     int32
			version                 uint64
		)
		if err := rows.Scan(&a.AlertId, &typ, &prio, &state, &a.SubjectType, &a.SubjectId, &a.PatientId, &a.DeviceId,
			&a.CameraId, &a.MedicationId, &a.Ward, &a.Message, &opened, &acked, &resolved, &esc, &a.AckedBy, &version); err != nil {
			return nil, fmt.Errorf("reading alert row: %w", err)
		}
		a.AlertType = pb.AlertType(pb.AlertType_value[typ])
		a.Priority = pb.Priority(pb.Priority_value[prio])
		a.State = pb.AlertState(pb.AlertState_value[state])
		a.OpenedTimeMs, a.AckedTimeMs, a.ResolvedTimeMs = ms(opened), ms(acked), ms(resolved)
		a.EscalationLevel = esc
		a.Version = int64(version)
		a.Meta = &pb.Meta{Tenant: tenant}
		out = append(out, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading alerts of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// Alerts implements [Store].
func (c *ClickHouseStore) Alerts(ctx context.Context, tenant string, f AlertFilter) ([]*pb.Alert, error) {
	var where string
	var wargs []any
	if !f.Since.IsZero() {
		// opened_time is the partition key and never changes across
		// versions, so it may filter before the aggregation.
		where += " AND opened_time >= toDateTime(?)"
		wargs = append(wargs, unixSec(f.Since))
	}
	var having []string
	var hargs []any
	if len(f.States) > 0 {
		having = append(having, "a_state IN ("+placeholders(len(f.States))+")")
		for _, s := range f.States {
			hargs = append(hargs, s.String())
		}
	}
	if len(f.Types) > 0 {
		having = append(having, "a_type IN ("+placeholders(len(f.Types))+")")
		for _, t := range f.Types {
			hargs = append(hargs, t.String())
		}
	}
	for _, cv := range [][2]string{{"a_ward", f.Ward}, {"a_patient", f.PatientID}, {"a_device", f.DeviceID}} {
		if cv[1] != "" {
			having = append(having, cv[0]+" = ?")
			hargs = append(hargs, cv[1])
		}
	}
	return c.queryAlerts(ctx, tenant, where, wargs, strings.Join(having, " AND "), hargs, f.Limit)
}

// Alert implements [Store].
func (c *ClickHouseStore) Alert(ctx context.Context, tenant, alertID string) (*pb.Alert, error) {
	as, err := c.queryAlerts(ctx, tenant, " AND alert_id = ?", []any{alertID}, "", nil, 1)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, fmt.Errorf("alert: %w", ErrNotFound)
	}
	return as[0], nil
}

// PatientAdherence implements [Store].
func (c *ClickHouseStore) PatientAdherence(ctx context.Context, tenant, patientID string, from, to time.Time) ([]*pb.AdherenceWindow, error) {
	q := `SELECT medication_id, toString(day), argMax(ward, version), argMax(daily_due, version), argMax(daily_taken, version),
    argMax(daily_ratio, version), argMax(due_7d, version), argMax(taken_7d, version), argMax(ratio_7d, version),
    argMax(due_30d, version), argMax(taken_30d, version), argMax(ratio_30d, version), argMax(pdc_30d, version), max(version)
FROM ` + c.t(chschema.TAdherence) + `
WHERE tenant = ? AND patient_id = ? AND day >= toDate(?) AND day <= toDate(?)
GROUP BY medication_id, day ORDER BY day, medication_id`
	rows, err := c.conn.Query(ctx, q, tenant, patientID, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("querying adherence of a patient of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.AdherenceWindow
	for rows.Next() {
		w := &pb.AdherenceWindow{PatientId: patientID, Meta: &pb.Meta{Tenant: tenant}}
		var version uint64
		if err := rows.Scan(&w.MedicationId, &w.Day, &w.Ward, &w.DailyDue, &w.DailyTaken, &w.DailyRatio, &w.Due_7D, &w.Taken_7D,
			&w.Ratio_7D, &w.Due_30D, &w.Taken_30D, &w.Ratio_30D, &w.Pdc_30D, &version); err != nil {
			return nil, fmt.Errorf("reading adherence row: %w", err)
		}
		w.Version = int64(version)
		out = append(out, w)
	}
	return out, rows.Err()
}

// WardAdherence implements [Store]. It reads the adherence_daily rollup
// (argMax states per patient, exact under versions), sums per ward and
// day, derives the 7-day ratio from the six days before each day, and
// counts missed doses from dose_outcomes.
func (c *ClickHouseStore) WardAdherence(ctx context.Context, tenant, ward string, from, to time.Time) ([]WardAdherence, error) {
	wardCond := ""
	args := []any{tenant, from.AddDate(0, 0, -6).Format(time.DateOnly), to.Format(time.DateOnly)}
	if ward != "" {
		wardCond = " WHERE l_ward = ?"
		args = append(args, ward)
	}
	// Every patient's latest window of the day, its ward included, from
	// the adherence table (the adherence_daily rollup groups by ward, so a
	// patient moved between wards was counted in both); patients count
	// only with something due or taken.
	q := `SELECT l_ward, toString(day), uniqExactIf(patient_id, due > 0 OR taken > 0), sum(due), sum(taken)
FROM (SELECT day, medication_id, patient_id, argMax(ward, version) AS l_ward, argMax(daily_due, version) AS due,
             argMax(daily_taken, version) AS taken
      FROM ` + c.t(chschema.TAdherence) + `
      WHERE tenant = ? AND day >= toDate(?) AND day <= toDate(?)
      GROUP BY day, medication_id, patient_id)` + wardCond + `
GROUP BY l_ward, day ORDER BY l_ward, day`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying ward adherence of tenant %s: %w", tenant, err)
	}
	type key struct{ ward, day string }
	all := map[key]*WardAdherence{}
	for rows.Next() {
		var w WardAdherence
		var patients uint64
		var due, taken int64
		if err := rows.Scan(&w.Ward, &w.Day, &patients, &due, &taken); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading ward adherence row: %w", err)
		}
		w.Patients, w.Due, w.Taken = int64(patients), due, taken
		all[key{w.Ward, w.Day}] = &w
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("reading ward adherence of tenant %s: %w", tenant, err)
	}
	rows.Close()

	missed, err := c.missedPerWardDay(ctx, tenant, ward, from, to)
	if err != nil {
		return nil, err
	}
	var out []WardAdherence
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		day := d.Format(time.DateOnly)
		wards := map[string]bool{}
		for k := range all {
			if k.day == day {
				wards[k.ward] = true
			}
		}
		for k := range missed {
			if k[1] == day {
				wards[k[0]] = true
			}
		}
		names := make([]string, 0, len(wards))
		for w := range wards {
			names = append(names, w)
		}
		sort.Strings(names)
		for _, wn := range names {
			row := WardAdherence{Ward: wn, Day: day, Missed: missed[[2]string{wn, day}]}
			if w, ok := all[key{wn, day}]; ok {
				row.Patients, row.Due, row.Taken = w.Patients, w.Due, w.Taken
			}
			if row.Due > 0 {
				row.Ratio = float64(row.Taken) / float64(row.Due)
			}
			var due7, taken7 int64
			for i := 0; i < 7; i++ {
				if w, ok := all[key{wn, d.AddDate(0, 0, -i).Format(time.DateOnly)}]; ok {
					due7 += w.Due
					taken7 += w.Taken
				}
			}
			if due7 > 0 {
				row.Ratio7d = float64(taken7) / float64(due7)
			}
			out = append(out, row)
		}
	}
	return out, nil
}

// missedPerWardDay counts doses whose latest outcome is MISSED per ward and
// local day (the bi_missed_doses logic, filtered inside).
func (c *ClickHouseStore) missedPerWardDay(ctx context.Context, tenant, ward string, from, to time.Time) (map[[2]string]int64, error) {
	cond := ""
	// The scheduled time of a local day lies within a day either side of
	// it in UTC; filter on it (the partition key) then on local_date.
	args := []any{tenant, unixSec(from.AddDate(0, 0, -1)), unixSec(to.AddDate(0, 0, 2)), from.Format(time.DateOnly), to.Format(time.DateOnly)}
	if ward != "" {
		cond = " AND l_ward = ?"
		args = append(args, ward)
	}
	q := `SELECT l_ward, toString(l_day), count()
FROM (SELECT dose_id, argMax(outcome, version) AS l_outcome, argMax(ward, version) AS l_ward, argMax(local_date, version) AS l_day
      FROM ` + c.t(chschema.TDoseOutcomes) + `
      WHERE tenant = ? AND scheduled_time >= toDateTime(?) AND scheduled_time < toDateTime(?)
      GROUP BY dose_id)
WHERE l_outcome = 'MISSED' AND l_day >= toDate(?) AND l_day <= toDate(?)` + cond + `
GROUP BY l_ward, l_day`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("counting missed doses of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	out := map[[2]string]int64{}
	for rows.Next() {
		var w, d string
		var n uint64
		if err := rows.Scan(&w, &d, &n); err != nil {
			return nil, fmt.Errorf("reading missed-dose count: %w", err)
		}
		out[[2]string{w, d}] = int64(n)
	}
	return out, rows.Err()
}

// MissedDoses implements [Store].
func (c *ClickHouseStore) MissedDoses(ctx context.Context, tenant string, f DoseFilter) ([]*pb.DoseOutcome, error) {
	where := ""
	args := []any{tenant, unixSec(f.From), unixSec(f.To)}
	if f.PatientID != "" {
		// patient_id is in the sorting key: filter before aggregating.
		where = " AND patient_id = ?"
		args = append(args, f.PatientID)
	}
	outer := ""
	if f.Ward != "" {
		outer = " AND l_ward = ?"
		args = append(args, f.Ward)
	}
	if f.LocalDate != "" {
		outer += " AND l_day = toDate(?)"
		args = append(args, f.LocalDate)
	}
	args = append(args, f.Limit)
	q := `SELECT dose_id, l_patient, l_medication, l_device, l_ward, l_scheduled, toString(l_day), l_version
FROM (SELECT dose_id, argMax(outcome, version) AS l_outcome, argMax(patient_id, version) AS l_patient,
          argMax(medication_id, version) AS l_medication, argMax(device_id, version) AS l_device, argMax(ward, version) AS l_ward,
          argMax(scheduled_time, version) AS l_scheduled, argMax(local_date, version) AS l_day, max(version) AS l_version
      FROM ` + c.t(chschema.TDoseOutcomes) + `
      WHERE tenant = ? AND scheduled_time >= toDateTime(?) AND scheduled_time < toDateTime(?)` + where + `
      GROUP BY dose_id)
WHERE l_outcome = 'MISSED'` + outer + `
ORDER BY l_scheduled DESC, dose_id LIMIT ?`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying missed doses of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.DoseOutcome
	for rows.Next() {
		d := &pb.DoseOutcome{Meta: &pb.Meta{Tenant: tenant}, Outcome: pb.Outcome_MISSED}
		var sched time.Time
		var version uint64
		if err := rows.Scan(&d.DoseId, &d.PatientId, &d.MedicationId, &d.DeviceId, &d.Ward, &sched, &d.LocalDate, &version); err != nil {
			return nil, fmt.Errorf("reading missed-dose row: %w", err)
		}
		d.ScheduledTimeMs = ms(sched)
		d.Version = int64(version)
		out = append(out, d)
	}
	return out, rows.Err()
}

// Anomalies implements [Store].
func (c *ClickHouseStore) Anomalies(ctx context.Context, tenant string, f AnomalyFilter) ([]*pb.AnomalyScore, error) {
	cond := ""
	args := []any{tenant, unixSec(f.Since), f.MinScore}
	if f.Ward != "" {
		cond = " AND ward = ?"
		args = append(args, f.Ward)
	}
	args = append(args, f.Limit)
	q := `SELECT event_id, event_time, device_id, patient_id, ward, reading_event_id, score, rule_score, z_score, reasons, level,
    heart_rate, systolic_bp, spo2
FROM ` + c.t(chschema.TAnomalyScores) + `
WHERE tenant = ? AND event_time >= toDateTime(?) AND score >= ?` + cond + `
ORDER BY event_time DESC, event_id LIMIT 1 BY event_id LIMIT ?`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying anomaly scores of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.AnomalyScore
	for rows.Next() {
		a := &pb.AnomalyScore{Meta: &pb.Meta{Tenant: tenant}}
		var at time.Time
		if err := rows.Scan(&a.Meta.EventId, &at, &a.DeviceId, &a.PatientId, &a.Ward, &a.ReadingEventId, &a.Score, &a.RuleScore,
			&a.ZScore, &a.Reasons, &a.Level, &a.HeartRate, &a.SystolicBp, &a.Spo2); err != nil {
			return nil, fmt.Errorf("reading anomaly row: %w", err)
		}
		a.Meta.EventTimeMs = ms(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// CameraEvents implements [Store].
func (c *ClickHouseStore) CameraEvents(ctx context.Context, tenant string, since time.Time, limit int) ([]*pb.VideoEvent, error) {
	q := `SELECT event_id, event_time, camera_id, ward, zone, location, event_type, confidence, person_count, start_time, end_time, details
FROM ` + c.t(chschema.TVideoEvents) + `
WHERE tenant = ? AND event_time >= toDateTime(?)
ORDER BY event_time DESC, event_id LIMIT 1 BY event_id LIMIT ?`
	rows, err := c.conn.Query(ctx, q, tenant, unixSec(since), limit)
	if err != nil {
		return nil, fmt.Errorf("querying video events of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.VideoEvent
	for rows.Next() {
		e := &pb.VideoEvent{Meta: &pb.Meta{Tenant: tenant}}
		var at, start, end time.Time
		var typ string
		if err := rows.Scan(&e.Meta.EventId, &at, &e.CameraId, &e.Ward, &e.Zone, &e.Location, &typ, &e.Confidence,
			&e.PersonCount, &start, &end, &e.Details); err != nil {
			return nil, fmt.Errorf("reading video event row: %w", err)
		}
		e.Meta.EventTimeMs = ms(at)
		e.EventType = pb.VideoEventType(pb.VideoEventType_value[typ])
		e.StartTimeMs, e.EndTimeMs = ms(start), ms(end)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Schedules implements [Store].
func (c *ClickHouseStore) Schedules(ctx context.Context, tenant, patientID string) ([]*pb.DoseSchedule, error) {
	q := `SELECT medication_id, argMax(device_id, version), argMax(ward, version), argMax(medication_name, version),
    argMax(timezone, version), argMax(times, version), argMax(days_of_week, version), argMax(start_date, version),
    argMax(end_date, version), argMax(doses_per_time, version), argMax(grace_minutes, version),
    argMax(late_window_minutes, version), argMax(early_window_minutes, version), argMax(deleted, version) AS l_deleted, max(version)
FROM ` + c.t(chschema.TSchedules) + `
WHERE tenant = ? AND patient_id = ?
GROUP BY medication_id HAVING l_deleted = 0 ORDER BY medication_id`
	rows, err := c.conn.Query(ctx, q, tenant, patientID)
	if err != nil {
		return nil, fmt.Errorf("querying schedules of a patient of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.DoseSchedule
	for rows.Next() {
		sc := &pb.DoseSchedule{Meta: &pb.Meta{Tenant: tenant}, PatientId: patientID}
		var deleted uint8
		var version uint64
		if err := rows.Scan(&sc.MedicationId, &sc.DeviceId, &sc.Ward, &sc.MedicationName, &sc.Timezone, &sc.Times, &sc.DaysOfWeek,
			&sc.StartDate, &sc.EndDate, &sc.DosesPerTime, &sc.GraceMinutes, &sc.LateWindowMinutes, &sc.EarlyWindowMinutes, &deleted, &version); err != nil {
			return nil, fmt.Errorf("reading schedule row: %w", err)
		}
		sc.Version = int64(version)
		out = append(out, sc)
	}
	return out, rows.Err()
}

// Commands implements [Store].
func (c *ClickHouseStore) Commands(ctx context.Context, tenant, deviceID string, limit int) ([]*pb.DeviceCommand, error) {
	q := `SELECT command_id, argMax(command_type, version), argMax(state, version), argMax(payload_json, version),
    argMax(issued_by, version), argMax(timeout_ms, version), argMax(sent_time, version), argMax(ack_time, version),
    argMax(error, version), max(version), min(event_time) AS issued
FROM ` + c.t(chschema.TDeviceCommands) + `
WHERE tenant = ? AND device_id = ?
GROUP BY command_id ORDER BY issued DESC, command_id LIMIT ?`
	rows, err := c.conn.Query(ctx, q, tenant, deviceID, limit)
	if err != nil {
		return nil, fmt.Errorf("querying commands of a device of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.DeviceCommand
	for rows.Next() {
		cmd := &pb.DeviceCommand{Meta: &pb.Meta{Tenant: tenant}, DeviceId: deviceID}
		var typ, state string
		var sent, acked, issued time.Time
		var version uint64
		if err := rows.Scan(&cmd.CommandId, &typ, &state, &cmd.PayloadJson, &cmd.IssuedBy, &cmd.TimeoutMs, &sent, &acked,
			&cmd.Error, &version, &issued); err != nil {
			return nil, fmt.Errorf("reading command row: %w", err)
		}
		cmd.CommandType = pb.CommandType(pb.CommandType_value[typ])
		cmd.State = pb.CommandState(pb.CommandState_value[state])
		cmd.SentTimeMs, cmd.AckTimeMs, cmd.Meta.EventTimeMs = ms(sent), ms(acked), ms(issued)
		cmd.Version = int64(version)
		out = append(out, cmd)
	}
	return out, rows.Err()
}

// Audit implements [Store].
func (c *ClickHouseStore) Audit(ctx context.Context, tenant, user string, since time.Time, limit int) ([]*pb.AuditEvent, error) {
	cond := ""
	args := []any{tenant, unixSec(since)}
	if user != "" {
		cond = " AND user = ?"
		args = append(args, user)
	}
	args = append(args, limit)
	q := `SELECT event_id, event_time, user, role, action, resource, body_json, status
FROM ` + c.t(chschema.TAudit) + `
WHERE tenant = ? AND event_time >= toDateTime(?)` + cond + `
ORDER BY event_time DESC, event_id LIMIT 1 BY event_id LIMIT ?`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying audit records of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	var out []*pb.AuditEvent
	for rows.Next() {
		a := &pb.AuditEvent{Meta: &pb.Meta{Tenant: tenant}}
		var at time.Time
		if err := rows.Scan(&a.Meta.EventId, &at, &a.User, &a.Role, &a.Action, &a.Resource, &a.BodyJson, &a.Status); err != nil {
			return nil, fmt.Errorf("reading audit row: %w", err)
		}
		a.Meta.EventTimeMs = ms(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeviceKnown implements [Store].
func (c *ClickHouseStore) DeviceKnown(ctx context.Context, tenant, deviceID string) (bool, error) {
	q := `SELECT (SELECT count() FROM ` + c.t(chschema.TDeviceStatus) + ` WHERE tenant = ? AND device_id = ?)
    + (SELECT count() FROM ` + c.t(chschema.TDeviceShadows) + ` WHERE tenant = ? AND device_id = ?)`
	var n uint64
	if err := c.conn.QueryRow(ctx, q, tenant, deviceID, tenant, deviceID).Scan(&n); err != nil {
		return false, fmt.Errorf("looking up a device of tenant %s: %w", tenant, err)
	}
	return n > 0, nil
}

// PatientElsewhere implements [Store].
func (c *ClickHouseStore) PatientElsewhere(ctx context.Context, tenant, patientID string) (bool, error) {
	q := `SELECT (SELECT count() FROM ` + c.t(chschema.TSchedules) + ` WHERE patient_id = ? AND tenant != ?)
    + (SELECT count() FROM ` + c.t(chschema.TIntakes) + ` WHERE patient_id = ? AND tenant != ?)`
	var n uint64
	if err := c.conn.QueryRow(ctx, q, patientID, tenant, patientID, tenant).Scan(&n); err != nil {
		return false, fmt.Errorf("looking up a patient for tenant %s: %w", tenant, err)
	}
	return n > 0, nil
}

// Shadow implements [Store].
func (c *ClickHouseStore) Shadow(ctx context.Context, tenant, deviceID string) (*pb.DeviceShadow, error) {
	q := `SELECT argMax(desired_json, version), argMax(reported_json, version), argMax(delta_json, version), argMax(online, version),
    argMax(last_seen, version), argMax(desired_updated, version), argMax(reported_updated, version), max(version)
FROM ` + c.t(chschema.TDeviceShadows) + `
WHERE tenant = ? AND device_id = ? GROUP BY device_id`
	rows, err := c.conn.Query(ctx, q, tenant, deviceID)
	if err != nil {
		return nil, fmt.Errorf("querying the shadow of a device of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading shadow: %w", err)
		}
		return nil, fmt.Errorf("device shadow: %w", ErrNotFound)
	}
	var desired, reported, delta string
	var online uint8
	var lastSeen, desiredAt, reportedAt time.Time
	var version uint64
	if err := rows.Scan(&desired, &reported, &delta, &online, &lastSeen, &desiredAt, &reportedAt, &version); err != nil {
		return nil, fmt.Errorf("reading shadow row: %w", err)
	}
	sh := &pb.DeviceShadow{Meta: &pb.Meta{Tenant: tenant}, DeviceId: deviceID, Online: online == 1, LastSeenMs: ms(lastSeen),
		DesiredUpdatedMs: ms(desiredAt), ReportedUpdatedMs: ms(reportedAt), Version: int64(version)}
	for _, f := range []struct {
		raw string
		dst **structpb.Struct
	}{{desired, &sh.Desired}, {reported, &sh.Reported}, {delta, &sh.Delta}} {
		if f.raw == "" || f.raw == "null" {
			continue
		}
		st := &structpb.Struct{}
		if err := st.UnmarshalJSON([]byte(f.raw)); err != nil {
			return nil, fmt.Errorf("decoding shadow JSON of %s: %w", deviceID, err)
		}
		*f.dst = st
	}
	return sh, nil
}
