package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/testutil"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// itEnv is a migrated, uniquely named ClickHouse database on the real
// server, and the real Kafka's brokers.
type itEnv struct {
	svc   testutil.Services
	conn  driver.Conn
	db    string
	store *api.ClickHouseStore
}

func openIT(t *testing.T) *itEnv {
	t.Helper()
	svc := testutil.Integration(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db := testutil.Unique(t, "wsapi")
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := (&chschema.Migrator{Conn: chschema.Adapt(conn), Database: db}).Migrate(ctx); err != nil {
		t.Fatalf("migrating %s: %v", db, err)
	}
	return &itEnv{svc: svc, conn: conn, db: db, store: api.NewClickHouseStoreConn(conn, db)}
}

// insert writes one row into table, naming only the given columns (the
// others take their defaults), as INSERT ... SELECT so that old servers do
// not wait for a data block. Values are cast by the schema's column types.
func (e *itEnv) insert(t testing.TB, table string, row map[string]any) {
	t.Helper()
	tb, ok := chschema.LookupTable(table)
	if !ok {
		t.Fatalf("no table %s in the schema", table)
	}
	var cols, exprs []string
	var args []any
	for _, c := range tb.Columns {
		v, ok := row[c.Name]
		if !ok {
			continue
		}
		cols = append(cols, "`"+c.Name+"`")
		switch c.Type {
		case chschema.Time:
			exprs = append(exprs, "toDateTime(?, 'UTC')")
			args = append(args, v.(time.Time).Unix())
		case chschema.Date:
			exprs = append(exprs, "toDate(?)")
		case chschema.F64:
			exprs = append(exprs, "toFloat64(?)")
		case chschema.F32:
			exprs = append(exprs, "toFloat32(?)")
		case chschema.I32:
			exprs = append(exprs, "toInt32(?)")
		case chschema.I64:
			exprs = append(exprs, "toInt64(?)")
		case chschema.U64:
			exprs = append(exprs, "toUInt64(?)")
		case chschema.Bool:
			exprs = append(exprs, "toUInt8(?)")
		default:
			exprs = append(exprs, "?")
		}
		if c.Type != chschema.Time {
			args = append(args, v)
		}
		delete(row, c.Name)
	}
	if len(row) > 0 {
		t.Fatalf("columns %v are not in table %s", row, table)
	}
	q := fmt.Sprintf("INSERT INTO `%s`.`%s` (%s) SELECT %s", e.db, table, strings.Join(cols, ", "), strings.Join(exprs, ", "))
	if err := e.conn.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("seeding %s: %v", table, err)
	}
}

func meta(tenant, id string, at time.Time) map[string]any {
	return map[string]any{"tenant": tenant, "event_id": id, "event_time": at, "ingest_time": at, "source": "test"}
}

func with(base map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		base[kv[i].(string)] = kv[i+1]
	}
	return base
}

func (e *itEnv) insertAlert(t testing.TB, a *pb.Alert) {
	t.Helper()
	at := time.UnixMilli(a.GetMeta().GetEventTimeMs())
	e.insert(t, chschema.TAlerts, with(meta(a.GetMeta().GetTenant(), a.GetMeta().GetEventId(), at),
		"alert_id", a.AlertId, "alert_type", a.AlertType.String(), "priority", a.Priority.String(), "state", a.State.String(),
		"subject_type", a.SubjectType, "subject_id", a.SubjectId, "patient_id", a.PatientId, "device_id", a.DeviceId,
		"camera_id", a.CameraId, "medication_id", a.MedicationId, "ward", a.Ward, "message", a.Message,
		"opened_time", time.UnixMilli(a.OpenedTimeMs), "acked_time", time.UnixMilli(a.AckedTimeMs),
		"resolved_time", time.UnixMilli(a.ResolvedTimeMs), "escalation_level", a.EscalationLevel, "acked_by", a.AckedBy,
		"version", uint64(a.Version)))
}

// seeded is what seed wrote, for assertions.
type seeded struct {
	now   time.Time
	today string
}

// seed writes a small ward's worth of pipeline output for tenant
// "hosp-a" (and decoys for "hosp-b"), including superseded versions and a
// duplicated event, as the sink would.
func (e *itEnv) seed(t testing.TB) seeded {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	today := now.Format(time.DateOnly)
	yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
	// Doses scheduled early today (UTC) so that "today" holds them even
	// just after midnight.
	sched := time.Date(now.Year(), now.Month(), now.Day(), 0, 5, 0, 0, time.UTC)
	if now.Sub(sched) < 2*time.Minute {
		t.Skip("too close to midnight UTC for a stable 'today'")
	}
	alertAt := now.Add(-30 * time.Minute)
	mk := func(tenant, id string, state pb.AlertState, v int64, prio pb.Priority, patient string) *pb.Alert {
		return &pb.Alert{Meta: &pb.Meta{Tenant: tenant, EventId: fmt.Sprintf("%s:v%d", id, v), EventTimeMs: alertAt.Add(time.Duration(v) * time.Second).UnixMilli()},
			AlertId: id, AlertType: pb.AlertType_MISSED_DOSE, Priority: prio, State: state, SubjectType: "patient", SubjectId: patient,
			PatientId: patient, MedicationId: "med-1", Ward: "ward-1", Message: "08:00 dose of med-1 missed", Version: v, OpenedTimeMs: alertAt.UnixMilli()}
	}
	for _, a := range []*pb.Alert{
		mk("hosp-a", "alrt-open-1", pb.AlertState_OPEN, 1, pb.Priority_HIGH, "pat-100"),
		mk("hosp-a", "alrt-esc", pb.AlertState_OPEN, 1, pb.Priority_HIGH, "pat-101"),
		mk("hosp-a", "alrt-esc", pb.AlertState_ESCALATED, 2, pb.Priority_CRITICAL, "pat-101"),
		mk("hosp-a", "alrt-res", pb.AlertState_OPEN, 1, pb.Priority_MEDIUM, "pat-102"),
		mk("hosp-a", "alrt-res", pb.AlertState_RESOLVED, 2, pb.Priority_MEDIUM, "pat-102"),
		mk("hosp-b", "alrt-of-b", pb.AlertState_OPEN, 1, pb.Priority_HIGH, "pat-900"),
	} {
		e.insertAlert(t, a)
	}
	dose := func(tenant, id, patient, outcome string, v uint64, at time.Time) {
		e.insert(t, chschema.TDoseOutcomes, with(meta(tenant, id+fmt.Sprint(v), now), "dose_id", id, "patient_id", patient,
			"medication_id", "med-1", "device_id", "pill-"+patient, "ward", "ward-1", "scheduled_time", at, "local_date", at.Format(time.DateOnly),
			"outcome", outcome, "version", v))
	}
	dose("hosp-a", "dose-1", "pat-100", "MISSED", 1, sched)
	dose("hosp-a", "dose-2", "pat-101", "MISSED", 1, sched)
	dose("hosp-a", "dose-2", "pat-101", "TAKEN_LATE", 2, sched) // corrected: a late intake arrived
	dose("hosp-b", "dose-9", "pat-900", "MISSED", 1, sched)
	adh := func(tenant, patient, day string, due, taken int32, v uint64) {
		e.insert(t, chschema.TAdherence, with(meta(tenant, patient+day+fmt.Sprint(v), now), "patient_id", patient, "medication_id", "med-1",
			"ward", "ward-1", "day", day, "daily_due", due, "daily_taken", taken, "daily_ratio", float64(taken)/float64(due),
			"ratio_7d", 0.75, "version", v))
	}
	adh("hosp-a", "pat-100", today, 2, 1, 1)
	adh("hosp-a", "pat-100", today, 2, 2, 2) // a later version wins
	adh("hosp-a", "pat-101", today, 2, 0, 1)
	adh("hosp-a", "pat-100", yesterday, 2, 2, 1)
	adh("hosp-b", "pat-900", today, 4, 0, 1)
	anomaly := func(tenant, id string, score float64, level string) {
		e.insert(t, chschema.TAnomalyScores, with(meta(tenant, id, now.Add(-10*time.Minute)), "device_id", "mon-1", "patient_id", "pat-100",
			"ward", "ward-1", "reading_event_id", "r-"+id, "score", score, "level", level, "reasons", []string{"spo2 below 90"}, "spo2", 86.0))
	}
	anomaly("hosp-a", "an-1", 8.7, "EMERGENCY")
	anomaly("hosp-a", "an-1", 8.7, "EMERGENCY") // redelivered by the sink
	anomaly("hosp-a", "an-2", 1.0, "NORMAL")
	anomaly("hosp-b", "an-9", 9.5, "EMERGENCY")
	e.insert(t, chschema.TVideoEvents, with(meta("hosp-a", "ve-1", now.Add(-5*time.Minute)), "camera_id", "cam-1", "ward", "ward-1",
		"zone", "bed-3", "event_type", "UNAUTHORIZED_ACCESS", "confidence", float32(0.91), "person_count", int32(2),
		"start_time", now.Add(-5*time.Minute), "end_time", now.Add(-4*time.Minute)))
	for v, desired := range []string{`{"volume":1}`, `{"volume":2}`} {
		e.insert(t, chschema.TDeviceShadows, with(meta("hosp-a", fmt.Sprint("sh", v), now), "device_id", "pill-1", "desired_json", desired,
			"reported_json", `{"volume":1}`, "delta_json", `{"volume":2}`, "online", uint8(1), "last_seen", now, "version", uint64(v+1)))
	}
	sched1 := func(med string, v uint64, deleted uint8, times []string) {
		e.insert(t, chschema.TSchedules, with(meta("hosp-a", fmt.Sprint("sc", med, v), now), "patient_id", "pat-100", "medication_id", med,
			"device_id", "pill-1", "ward", "ward-1", "timezone", "Europe/Berlin", "times", times, "start_date", today,
			"doses_per_time", int32(1), "grace_minutes", int32(30), "deleted", deleted, "version", v))
	}
	sched1("med-1", 1, 0, []string{"08:00"})
	sched1("med-1", 2, 0, []string{"08:00", "20:00"})
	sched1("med-2", 1, 0, []string{"12:00"})
	sched1("med-2", 2, 1, nil) // removed
	cmd := func(id, state string, v uint64, at time.Time) {
		e.insert(t, chschema.TDeviceCommands, with(meta("hosp-a", id+state, at), "command_id", id, "device_id", "pill-1",
			"command_type", "TRIGGER_REMINDER", "state", state, "issued_by", "nurse", "timeout_ms", int64(60000), "version", v))
	}
	cmd("cmd-1", "COMMAND_PENDING", 1, now.Add(-2*time.Minute))
	cmd("cmd-1", "COMMAND_ACKED", 3, now.Add(-time.Minute))
	cmd("cmd-2", "COMMAND_PENDING", 1, now.Add(-30*time.Second))
	e.insert(t, chschema.TDeviceStatus, with(meta("hosp-a", "st-pump-1", now), "device_id", "pump-1", "device_type", "infusion_pump",
		"ward", "ward-1", "online", uint8(1), "battery_level", 80.0, "status", "ok"))
	return seeded{now: now, today: today}
}

func TestIntegrationClickHouseStore(t *testing.T) {
	e := openIT(t)
	s := e.seed(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := e.store
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	open, err := st.Alerts(ctx, "hosp-a", api.AlertFilter{States: []pb.AlertState{pb.AlertState_OPEN, pb.AlertState_ESCALATED}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, a := range open {
		states[a.AlertId] = a.State.String() + "/" + a.Priority.String()
	}
	if len(open) != 2 || states["alrt-open-1"] != "OPEN/HIGH" || states["alrt-esc"] != "ESCALATED/CRITICAL" {
		t.Fatalf("open alerts %v", states)
	}
	a, err := st.Alert(ctx, "hosp-a", "alrt-res")
	if err != nil || a.State != pb.AlertState_RESOLVED || a.Version != 2 || a.OpenedTimeMs != s.now.Add(-30*time.Minute).UnixMilli() {
		t.Fatalf("alrt-res: %v %v", a, err)
	}
	if _, err := st.Alert(ctx, "hosp-a", "alrt-of-b"); err == nil {
		t.Fatal("tenant a reads tenant b's alert")
	}
	if all, _ := st.Alerts(ctx, "hosp-a", api.AlertFilter{Limit: 10, Ward: "ward-1", PatientID: "pat-101"}); len(all) != 1 || all[0].AlertId != "alrt-esc" {
		t.Fatalf("filtered by patient: %v", all)
	}

	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	missed, err := st.MissedDoses(ctx, "hosp-a", api.DoseFilter{From: day(s.today), To: s.now.Add(time.Minute), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(missed) != 1 || missed[0].DoseId != "dose-1" || missed[0].PatientId != "pat-100" || missed[0].LocalDate != s.today {
		t.Fatalf("missed doses %v", missed)
	}
	wards, err := st.WardAdherence(ctx, "hosp-a", "", day(s.today), day(s.today))
	if err != nil {
		t.Fatal(err)
	}
	if len(wards) != 1 {
		t.Fatalf("wards %+v", wards)
	}
	w := wards[0]
	// Today: pat-100 2/2 (latest version), pat-101 0/2; one missed dose
	// (dose-2 was corrected); 7 days: yesterday's 2/2 as well.
	if w.Ward != "ward-1" || w.Patients != 2 || w.Due != 4 || w.Taken != 2 || w.Missed != 1 || w.Ratio != 0.5 || w.Ratio7d != 4.0/6 {
		t.Fatalf("ward adherence %+v", w)
	}
	pa, err := st.PatientAdherence(ctx, "hosp-a", "pat-100", day(s.today).AddDate(0, 0, -1), day(s.today))
	if err != nil || len(pa) != 2 || pa[1].DailyTaken != 2 || pa[1].Version != 2 {
		t.Fatalf("patient adherence %v %v", pa, err)
	}
	an, err := st.Anomalies(ctx, "hosp-a", api.AnomalyFilter{MinScore: 5, Since: s.now.Add(-time.Hour), Limit: 10})
	if err != nil || len(an) != 1 || an[0].Level != "EMERGENCY" || an[0].Reasons[0] != "spo2 below 90" {
		t.Fatalf("anomalies %v %v", an, err)
	}
	ve, err := st.CameraEvents(ctx, "hosp-a", s.now.Add(-time.Hour), 10)
	if err != nil || len(ve) != 1 || ve[0].EventType != pb.VideoEventType_UNAUTHORIZED_ACCESS || ve[0].PersonCount != 2 {
		t.Fatalf("camera events %v %v", ve, err)
	}
	sh, err := st.Shadow(ctx, "hosp-a", "pill-1")
	if err != nil || sh.Version != 2 || sh.Desired.Fields["volume"].GetNumberValue() != 2 || !sh.Online {
		t.Fatalf("shadow %v %v", sh, err)
	}
	if _, err := st.Shadow(ctx, "hosp-b", "pill-1"); err == nil {
		t.Fatal("tenant b reads tenant a's shadow")
	}
	for _, c := range []struct {
		tenant, device string
		known          bool
	}{{"hosp-a", "pill-1", true}, {"hosp-a", "pump-1", true}, {"hosp-b", "pump-1", false}, {"hosp-a", "nope", false}} {
		if known, err := st.DeviceKnown(ctx, c.tenant, c.device); err != nil || known != c.known {
			t.Fatalf("DeviceKnown(%s, %s) = %v %v", c.tenant, c.device, known, err)
		}
	}
	scs, err := st.Schedules(ctx, "hosp-a", "pat-100")
	if err != nil || len(scs) != 1 || scs[0].MedicationId != "med-1" || strings.Join(scs[0].Times, ",") != "08:00,20:00" || scs[0].Version != 2 || scs[0].GraceMinutes != 30 {
		t.Fatalf("schedules %v %v", scs, err)
	}
	cmds, err := st.Commands(ctx, "hosp-a", "pill-1", 10)
	if err != nil || len(cmds) != 2 || cmds[0].CommandId != "cmd-2" || cmds[1].State != pb.CommandState_COMMAND_ACKED || cmds[1].Version != 3 ||
		cmds[1].CommandType != pb.CommandType_TRIGGER_REMINDER {
		t.Fatalf("commands %v %v", cmds, err)
	}
}

// uniqueTopics creates this test's own copies of the topics the API writes.
func uniqueTopics(t *testing.T, e *itEnv) (api.Topics, *kgo.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p := testutil.Unique(t, "wsapi")
	tp := api.Topics{Schedules: p + ".schedules", Commands: p + ".commands", ShadowDesired: p + ".shadow-desired",
		AlertAcks: p + ".alert-acks", Alerts: p + ".alerts", Audit: p + ".audit"}
	tp.Watched = []string{tp.Schedules, tp.Commands, tp.ShadowDesired, tp.AlertAcks, tp.Alerts, tp.Audit}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, tp.Watched...); err != nil {
		t.Fatal(err)
	}
	// Created topics take a moment to have leaders (longer right after the
	// broker started): the writes below would time out into a 503.
	if err := kafka.WaitTopics(ctx, adm, tp.Watched, 25*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, tp.Watched...)
	})
	return tp, cl
}

// itServer builds the api role on the real Kafka and ClickHouse.
func itServer(t *testing.T, e *itEnv, tp api.Topics, cl *kgo.Client, mutate func(*api.Config)) (*api.Server, func(roles ...string) string) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Auth.DemoKeyFile = "unused"
	cfg.StreamInterval = 500e6
	cfg.HealthInterval = 1e9
	cfg.Listen = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sk, _ := api.NewSigningKey(k)
	srv, err := api.New(cfg, api.WithStore(e.store), api.WithPublisher(api.KafkaPublisher{Client: cl}),
		api.WithAdmin(kadm.NewClient(cl)), api.WithKeys(sk.Keys()), api.WithTopics(tp), api.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	return srv, func(roles ...string) string {
		tok, err := sk.Mint(cfg.Auth, api.TokenRequest{User: "it-" + roles[0], Tenant: "hosp-a", Roles: roles, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// consume reads n records from topics (from the start) on the real Kafka.
func consume(t *testing.T, e *itEnv, n int, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	if len(out) < n {
		t.Fatalf("read %d of %d records from %v", len(out), n, topics)
	}
	return out
}

// TestIntegrationWritesLandInKafka: every write the API accepts is on its
// topic, with its key, and audited; reads come from ClickHouse.
func TestIntegrationWritesLandInKafka(t *testing.T) {
	e := openIT(t)
	e.seed(t)
	tp, cl := uniqueTopics(t, e)
	srv, token := itServer(t, e, tp, cl, nil)
	h := srv.Handler()
	do := func(method, path, tok, body string) resp {
		req, _ := http.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		w := newRecorder()
		h.ServeHTTP(w, req)
		return resp{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
	}
	staff, admin := token(api.RoleMedicalStaff), token(api.RoleAdmin)
	for _, c := range []struct {
		method, path, tok, body string
		code                    int
	}{
		{"POST", "/api/v1/schedules", staff, `{"patientId":"pat-100","medicationId":"med-1","deviceId":"pill-1","timezone":"Europe/Berlin","times":["08:00","20:00"]}`, 201},
		{"POST", "/api/v1/devices/pump-1/commands", admin, `{"commandType":"SECURE_DEVICE"}`, 202},
		{"PUT", "/api/v1/devices/pill-1/shadow/desired", admin, `{"desired":{"volume":3}}`, 202},
		{"POST", "/api/v1/alerts/alrt-open-1/ack", staff, `{"note":"seen"}`, 202},
	} {
		if r := do(c.method, c.path, c.tok, c.body); r.code != c.code {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	recs := consume(t, e, 9, tp.Schedules, tp.Commands, tp.ShadowDesired, tp.AlertAcks, tp.Audit)
	byTopic := map[string][]*kgo.Record{}
	for _, r := range recs {
		byTopic[r.Topic] = append(byTopic[r.Topic], r)
	}
	want := map[string]int{tp.Schedules: 1, tp.Commands: 2, tp.ShadowDesired: 1, tp.AlertAcks: 1, tp.Audit: 4}
	for topic, n := range want {
		if len(byTopic[topic]) != n {
			t.Fatalf("%s: %d records, want %d", topic, len(byTopic[topic]), n)
		}
	}
	var sc pb.DoseSchedule
	if r := byTopic[tp.Schedules][0]; string(r.Key) != "pat-100|med-1" || codec.Unmarshal(r.Value, &sc) != nil || sc.Meta.Tenant != "hosp-a" || len(sc.Times) != 2 {
		t.Fatalf("schedule record %s %v", r.Key, &sc)
	}
	var ack pb.AlertAck
	if r := byTopic[tp.AlertAcks][0]; string(r.Key) != "alrt-open-1" || codec.Unmarshal(r.Value, &ack) != nil || ack.User != "it-medical_staff" || ack.Note != "seen" {
		t.Fatalf("ack record %s %v", r.Key, &ack)
	}
	types := map[string]bool{}
	for _, r := range byTopic[tp.Commands] {
		var c pb.DeviceCommand
		if err := codec.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		types[string(r.Key)+"/"+c.CommandType.String()] = true
	}
	if !types["pill-1/UPDATE_SCHEDULE"] || !types["pump-1/SECURE_DEVICE"] {
		t.Fatalf("commands %v", types)
	}
	// Reads come from ClickHouse, tenant-filtered.
	r := do("GET", "/api/v1/dashboard", staff, "")
	body := string(r.body)
	if r.code != 200 || !strings.Contains(body, "alrt-open-1") || strings.Contains(body, "alrt-of-b") || !strings.Contains(body, `"ward":"ward-1"`) ||
		!strings.Contains(body, "dose-1") || !strings.Contains(body, "UNAUTHORIZED_ACCESS") || strings.Contains(body, `"errors"`) {
		t.Fatalf("dashboard %d %s", r.code, body)
	}
	if r := do("GET", "/api/v1/pipeline/health", staff, ""); r.code != 200 || !strings.Contains(string(r.body), `"kafka":{"ok":true}`) || !strings.Contains(string(r.body), `"clickhouse":{"ok":true}`) {
		t.Fatalf("health %d %s", r.code, r.body)
	}
}

// alertLoader stands in for the sink role (sinks/clickhouse may not be
// imported here: roles never import siblings). It moves alert records from
// the test's alerts topic on the real Kafka into the real ClickHouse
// alerts table, the one step between the API's publish and the dashboard's
// read that is not this package's.
func alertLoader(ctx context.Context, t *testing.T, e *itEnv, topic string) *sync.WaitGroup {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cl.Close()
		for ctx.Err() == nil {
			for _, r := range cl.PollFetches(ctx).Records() {
				var a pb.Alert
				if err := codec.Unmarshal(r.Value, &a); err != nil {
					t.Errorf("alert record: %v", err)
					continue
				}
				e.insertAlert(t, &a)
			}
		}
	}()
	return &wg
}

// findChromium locates the Debian chromium, installing it with apt-get
// when missing (make test's deploy/local/deps.sh does the same).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Log("chromium not found; installing the Debian package")
	cmd := exec.Command("bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the dashboard browser test needs chromium; installing it failed (run deploy/local/deps.sh as root): %v\n%s", err, out)
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium still not found after installing it")
	}
	return p
}

// TestIntegrationDashboardBrowser drives the dashboard in headless
// Chromium: the page loads, shows the seeded ward's data from ClickHouse,
// and clicking Acknowledge changes the alert in ClickHouse (API -> Kafka ->
// ClickHouse), after which the live stream drops it from the page.
func TestIntegrationDashboardBrowser(t *testing.T) {
	e := openIT(t)
	s := e.seed(t)
	chrome := findChromium(t)
	tp, cl := uniqueTopics(t, e)
	// No alerts processor runs here, so the API publishes the
	// ACKNOWLEDGED version itself (api.publish_acked_alert).
	srv, token := itServer(t, e, tp, cl, func(c *api.Config) { c.PublishAckedAlert = true })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srvCtx, stopSrv := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(srvCtx, ln) }()
	loaderCtx, stopLoader := context.WithCancel(ctx)
	loader := alertLoader(loaderCtx, t, e, tp.Alerts)
	defer func() {
		stopLoader()
		loader.Wait()
		stopSrv()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1400, 1000))
	defer cancelAlloc()
	var consoleErrs []string
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(func(f string, a ...any) { consoleErrs = append(consoleErrs, fmt.Sprintf(f, a...)) }))
	defer cancelBrowser()

	base := "http://" + ln.Addr().String()
	row := `#alerts tbody tr[data-alert-id="alrt-open-1"]`
	if err := chromedp.Do(browser,
		chromedp.Navigate(base+"/#token="+token(api.RoleMedicalStaff)),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
	); err != nil {
		t.Fatalf("loading the dashboard: %v (browser errors: %v)", err, consoleErrs)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	alertsText, missedText := text(`#alerts tbody`), text(`#missed tbody`)
	for _, c := range []struct{ sel, want string }{
		{`#wards tbody`, "ward-1"}, {`#wards tbody`, "50%"},
		{`#missed tbody`, "pat-100"},
		{`#alerts tbody`, "pat-100"}, {`#alerts tbody`, "CRITICAL"},
		{`#anomalies tbody`, "EMERGENCY"}, {`#anomalies tbody`, "spo2 below 90"},
		{`#camera tbody`, "UNAUTHORIZED_ACCESS"},
		{`#who`, "hosp-a"}, {`#live`, "live"},
	} {
		if got := text(c.sel); !strings.Contains(got, c.want) {
			t.Errorf("%s shows %q, lacking %q", c.sel, got, c.want)
		}
	}
	for _, leak := range []string{"pat-900", "pat-102"} {
		if strings.Contains(alertsText+missedText, leak) {
			t.Errorf("page shows %s (another tenant's, or resolved)", leak)
		}
	}
	if shot := os.Getenv("WARDSTREAM_API_SCREENSHOT"); shot != "" {
		if png, err := chromedp.Run(browser, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Clean(shot), png, 0o644)
		}
	}

	// Acknowledge in the browser.
	clicked := time.Now()
	// Click in the page's own context: the live stream re-renders the table,
	// and a node chromedp found can be replaced before its click lands. A
	// re-render keeps a pending acknowledgement's button disabled.
	const clickJS = `(() => { const b = document.querySelector('button.ack[data-alert-id="alrt-open-1"]'); if (!b) return false; b.click(); return true; })()`
	if ok, err := chromedp.Run(browser, chromedp.Evaluate[bool](clickJS)); err != nil || !ok {
		t.Fatalf("clicking acknowledge: found %v, %v", ok, err)
	}
	// The button turns disabled while the acknowledgement is pending; the
	// whole round trip (API, Kafka, sink, ClickHouse, live stream) can also
	// remove the row before a check sees the button, so either counts. A
	// failed acknowledgement re-enables the button and shows #errors.
	ackedJS := `!!document.querySelector('button.ack[data-alert-id="alrt-open-1"][disabled]') || !document.querySelector('` + row + `')`
	pollCtx, cancelPoll := context.WithTimeout(browser, 30*time.Second)
	_, err = chromedp.Run(pollCtx, chromedp.Poll[bool](ackedJS, chromedp.WithPollingInterval(50*time.Millisecond)))
	cancelPoll()
	if err != nil {
		errsText, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#errors`)))
		t.Fatalf("clicking acknowledge: the button never turned disabled nor the row went: %v (page errors %q)", err, errsText)
	}
	// The alert changes in ClickHouse...
	var a *pb.Alert
	for time.Since(clicked) < 30*time.Second {
		if a, err = e.store.Alert(ctx, "hosp-a", "alrt-open-1"); err == nil && a.State == pb.AlertState_ACKNOWLEDGED {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a == nil || a.State != pb.AlertState_ACKNOWLEDGED || a.AckedBy != "it-medical_staff" || a.Version != 2 || a.AckedTimeMs < s.now.UnixMilli() {
		t.Fatalf("alert in ClickHouse after the click: %v (err %v)", a, err)
	}
	t.Logf("acknowledge click -> ACKNOWLEDGED row in ClickHouse: %v", time.Since(clicked).Round(time.Millisecond))
	// ...and the live stream removes it from the open alerts.
	if err := chromedp.Do(browser, chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("acknowledged alert still on the page: %v", err)
	}
	t.Logf("acknowledge click -> gone from the page: %v", time.Since(clicked).Round(time.Millisecond))
	if remaining := text(`#alerts tbody`); !strings.Contains(remaining, "pat-101") {
		t.Fatalf("the other open alert vanished too: %q", remaining)
	}
}

// TestIntegrationLatency measures request latency against the real
// ClickHouse and Kafka on loopback: 4 clients for 3 s each on the dashboard
// (5 queries per request), the alerts list, and device commands (a device
// lookup, then the command and its audit record produced with acks=all).
// It logs p50/p95/p99 and requests per second and fails only when requests
// fail or p99 exceeds 2 s.
func TestIntegrationLatency(t *testing.T) {
	e := openIT(t)
	e.seed(t)
	tp, cl := uniqueTopics(t, e)
	srv, token := itServer(t, e, tp, cl, func(c *api.Config) { c.RateLimit.RequestsPerSecond = 1e6; c.RateLimit.Burst = 1e6 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	tok := token(api.RoleMedicalStaff)
	for _, path := range []string{"/api/v1/dashboard", "/api/v1/alerts?state=OPEN,ESCALATED", "POST /api/v1/devices/pump-1/commands"} {
		var mu sync.Mutex
		var lat []time.Duration
		failures := 0
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < 3*time.Second {
					method, p, body := "GET", path, ""
					if strings.HasPrefix(path, "POST ") {
						method, p, body = "POST", strings.TrimPrefix(path, "POST "), `{"commandType":"PING"}`
					}
					req, _ := http.NewRequest(method, "http://"+ln.Addr().String()+p, strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					if body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					t0 := time.Now()
					resp, err := http.DefaultClient.Do(req)
					d := time.Since(t0)
					mu.Lock()
					if err != nil || resp.StatusCode/100 != 2 {
						failures++
					} else {
						lat = append(lat, d)
					}
					mu.Unlock()
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		if failures > 0 || len(lat) == 0 {
			t.Fatalf("%s: %d failed requests, %d ok", path, failures, len(lat))
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		t.Logf("%s: %d requests in %v (%.0f req/s, 4 clients): p50 %v p95 %v p99 %v", path, len(lat), el.Round(time.Millisecond),
			float64(len(lat))/el.Seconds(), q(0.50).Round(time.Millisecond), q(0.95).Round(time.Millisecond), q(0.99).Round(time.Millisecond))
		if q(0.99) > 2*time.Second {
			t.Errorf("%s: p99 %v above 2s", path, q(0.99))
		}
	}
}
