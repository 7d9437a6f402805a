package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
	chsink "github.com/wardstream/wardstream/sinks/clickhouse"
)

// TestIntegrationAPIWithSinkEndToEnd runs what `wardstream run --roles
// sink,api` runs, in-process, on the real Kafka and ClickHouse with a topic
// prefix and database of its own: pipeline output seeded through Kafka
// reaches the dashboard through the real sink, and an acknowledgement
// clicked in headless Chromium travels API -> Kafka -> sink -> ClickHouse
// (the alert turns ACKNOWLEDGED; the ack and its audit record land in
// their tables) and back to the page over the live stream.
func TestIntegrationAPIWithSinkEndToEnd(t *testing.T) {
	svc := testutil.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db := testutil.Unique(t, "wsapie2e")
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	if _, err := (&chschema.Migrator{Conn: chschema.Adapt(conn), Database: db}).Migrate(ctx); err != nil {
		t.Fatalf("migrating %s: %v", db, err)
	}
	prefix := testutil.Unique(t, "apie2e") + "."
	group := testutil.Unique(t, "apie2e-sink")
	sunk := []string{topics.Alerts, topics.AlertAcks, topics.Audit, topics.DoseOutcomes, topics.Adherence, topics.AnomalyScores, topics.VideoEvents,
		topics.Schedules, topics.Commands, topics.DeviceStatus}
	cl, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var names []string
	for _, n := range append(append([]string{}, sunk...), topics.DeadLetters, topics.ShadowDesired) {
		names = append(names, prefix+n)
	}
	if _, err := adm.CreateTopics(ctx, 3, 1, nil, names...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, names...)
		_, _ = adm.DeleteGroup(ctx, group)
	})

	keyFile := filepath.Join(t.TempDir(), "demo-key.pem")
	sinkTopics, _ := json.Marshal(sunk)
	root, err := config.Parse([]byte(fmt.Sprintf(`
tenant: hosp-e2e
kafka: {brokers: [%s]}
clickhouse: {addr: [%s], database: %s}
drain_timeout: 20s
sinks:
  clickhouse: {topics: %s, topic_prefix: %q, group: %q, batch_age: 200ms, session_timeout: 6s}
api:
  listen: 127.0.0.1:0
  topic_prefix: %q
  auth: {demo_key_file: %q}
  stream_interval: 500ms
  health_interval: 1s
  publish_acked_alert: true
`, strings.Join(svc.KafkaBrokers, ", "), svc.ClickHouseAddr, db, sinkTopics, prefix, group, prefix, keyFile)))
	if err != nil {
		t.Fatal(err)
	}
	sinkCfg, err := chsink.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := chsink.New(root, sinkCfg, chsink.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.FromRoot(root, api.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rolesCtx, stopRoles := context.WithCancel(ctx)
	sinkDone, apiDone := make(chan error, 1), make(chan error, 1)
	go func() { sinkDone <- sink.Run(rolesCtx) }()
	go func() { apiDone <- srv.Serve(rolesCtx, ln) }()
	defer func() {
		stopRoles()
		for name, ch := range map[string]chan error{"sink": sinkDone, "api": apiDone} {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(40 * time.Second):
				t.Errorf("%s did not stop", name)
			}
		}
	}()

	// The seeded run: pipeline output on Kafka, as the processors would
	// publish it.
	now := time.Now().UTC().Truncate(time.Second)
	m := func(id string, at time.Time) *pb.Meta {
		return &pb.Meta{Tenant: "hosp-e2e", EventId: id, EventTimeMs: at.UnixMilli(), IngestTimeMs: at.UnixMilli(), Source: "e2e"}
	}
	opened := now.Add(-20 * time.Minute)
	// An id as the alerts processor composes it: "|"-joined, so the page
	// must percent-encode it in the acknowledge URL.
	alertID := fmt.Sprintf("MISSED_DOSE|patient|pat-7|med-2|%d|0", opened.UnixMilli())
	sched := time.Date(now.Year(), now.Month(), now.Day(), 0, 5, 0, 0, time.UTC)
	if now.Sub(sched) < 2*time.Minute {
		t.Skip("too close to midnight UTC for a stable 'today'")
	}
	seed := []struct {
		topic, key string
		v          proto.Message
	}{
		{topics.Alerts, "pat-7", &pb.Alert{Meta: m(alertID+"@OPEN", opened), AlertId: alertID, AlertType: pb.AlertType_MISSED_DOSE,
			Priority: pb.Priority_HIGH, State: pb.AlertState_OPEN, SubjectType: "patient", SubjectId: "pat-7", PatientId: "pat-7",
			MedicationId: "med-2", Ward: "ward-e2e", Message: "morning dose missed", Version: 1, OpenedTimeMs: opened.UnixMilli()}},
		{topics.DoseOutcomes, "pat-7", &pb.DoseOutcome{Meta: m("dose-e2e:v1", now), DoseId: "dose-e2e", PatientId: "pat-7", MedicationId: "med-2",
			ScheduledTimeMs: sched.UnixMilli(), Outcome: pb.Outcome_MISSED, Version: 1, Ward: "ward-e2e", LocalDate: sched.Format(time.DateOnly)}},
		{topics.Adherence, "pat-7", &pb.AdherenceWindow{Meta: m("adh-e2e:v1", now), PatientId: "pat-7", MedicationId: "med-2",
			Day: sched.Format(time.DateOnly), DailyDue: 2, DailyTaken: 1, DailyRatio: 0.5, Version: 1, Ward: "ward-e2e"}},
		{topics.AnomalyScores, "mon-7", &pb.AnomalyScore{Meta: m("anom-e2e", now.Add(-time.Minute)), DeviceId: "mon-7", PatientId: "pat-7",
			Score: 9.1, Level: "EMERGENCY", Reasons: []string{"heart rate 148"}, HeartRate: 148, Ward: "ward-e2e"}},
		{topics.DeviceStatus, "pill-7", &pb.DeviceStatus{Meta: m("st-pill-7", now), DeviceId: "pill-7", DeviceType: "pillcase",
			Online: true, BatteryLevel: 90, Status: "ok", Ward: "ward-e2e"}},
		{topics.VideoEvents, "cam-7", &pb.VideoEvent{Meta: m("ve-e2e", now.Add(-2*time.Minute)), CameraId: "cam-7", Zone: "door",
			EventType: pb.VideoEventType_PERSON_DETECTED, Confidence: 0.8, PersonCount: 1, StartTimeMs: now.Add(-2 * time.Minute).UnixMilli(), Ward: "ward-e2e"}},
	}
	for _, s := range seed {
		v, err := codec.Marshal(s.v)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: prefix + s.topic, Key: []byte(s.key), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	key, err := api.LoadOrCreateSigningKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	apiCfg, _ := api.LoadConfig(root)
	tok, err := key.Mint(apiCfg.Auth, api.TokenRequest{User: "nurse-e2e", Tenant: "hosp-e2e", Roles: []string{api.RoleMedicalStaff}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	get := func(path string) string {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Wait for the seeded run to be queryable through the API.
	var dash string
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(250 * time.Millisecond) {
		dash = get("/api/v1/dashboard")
		if strings.Contains(dash, alertID) && strings.Contains(dash, "dose-e2e") && strings.Contains(dash, `"ward":"ward-e2e"`) &&
			strings.Contains(dash, "anom-e2e") && strings.Contains(dash, "cam-7") {
			break
		}
	}
	for _, want := range []string{alertID, "dose-e2e", `"ward":"ward-e2e"`, "anom-e2e", "cam-7"} {
		if !strings.Contains(dash, want) {
			t.Fatalf("dashboard never showed %s: %s", want, dash)
		}
	}

	chrome := ""
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		t.Fatal("chromium is not installed: run deploy/local/deps.sh (make test does)")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	row := `#alerts tbody tr[data-alert-id="` + alertID + `"]`
	if err := chromedp.Do(browser,
		chromedp.Navigate(base+"/#token="+tok),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
	); err != nil {
		t.Fatalf("loading the dashboard: %v", err)
	}
	for sel, want := range map[string]string{`#missed tbody`: "pat-7", `#wards tbody`: "ward-e2e", `#anomalies tbody`: "heart rate 148", `#camera tbody`: "PERSON_DETECTED"} {
		got, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%s shows %q (err %v), want %q", sel, got, err, want)
		}
	}
	clicked := time.Now()
	// Click in the page's own context: the live stream re-renders the table
	// every stream_interval, and a node chromedp found can be replaced
	// before its click lands ("Could not find node with given id").
	clickJS := `(() => { const b = document.querySelector('button.ack[data-alert-id="` + alertID + `"]'); if (!b) return false; b.click(); return true; })()`
	for try := 0; ; try++ {
		ok, err := chromedp.Run(browser, chromedp.Evaluate[bool](clickJS))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if try == 20 {
			t.Fatal("the alert's acknowledge button is gone before it was clicked")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := chromedp.Do(browser, chromedp.WaitNotPresent(chromedp.CSS(row))); err != nil {
		t.Fatalf("acknowledged alert stays on the page: %v", err)
	}
	t.Logf("click -> acknowledged in ClickHouse and gone from the page: %v", time.Since(clicked).Round(time.Millisecond))

	// In ClickHouse: the alert's latest version, the ack, the audit record.
	var state, ackedBy string
	var version uint64
	if err := conn.QueryRow(ctx, "SELECT argMax(state, version), argMax(acked_by, version), max(version) FROM "+db+".alerts WHERE tenant = 'hosp-e2e' AND alert_id = ?", alertID).
		Scan(&state, &ackedBy, &version); err != nil {
		t.Fatal(err)
	}
	if state != "ACKNOWLEDGED" || ackedBy != "nurse-e2e" || version != 2 {
		t.Fatalf("alert in ClickHouse: state %s by %s version %d", state, ackedBy, version)
	}
	waitRows := func(q string) {
		t.Helper()
		for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
			var n uint64
			if err := conn.QueryRow(ctx, q).Scan(&n); err == nil && n == 1 {
				return
			}
		}
		t.Fatalf("no row for %s", q)
	}
	waitRows("SELECT count() FROM " + db + ".alert_acks WHERE tenant = 'hosp-e2e' AND alert_id = '" + alertID + "' AND user = 'nurse-e2e'")
	waitRows("SELECT count() FROM " + db + ".audit WHERE tenant = 'hosp-e2e' AND action = 'ackAlert' AND status = 202 AND user = 'nurse-e2e'")
	// Admins read the audit trail back through the API.
	adminTok, err := key.Mint(apiCfg.Auth, api.TokenRequest{User: "admin-e2e", Tenant: "hosp-e2e", Roles: []string{api.RoleAdmin}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	areq, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/audit?user=nurse-e2e", nil)
	areq.Header.Set("Authorization", "Bearer "+adminTok)
	aresp, err := http.DefaultClient.Do(areq)
	if err != nil {
		t.Fatal(err)
	}
	audit, _ := io.ReadAll(aresp.Body)
	aresp.Body.Close()
	if aresp.StatusCode != 200 || !strings.Contains(string(audit), `"action":"ackAlert"`) || !strings.Contains(string(audit), `"status":202`) {
		t.Fatalf("audit through the API: %d %s", aresp.StatusCode, audit)
	}

	// A schedule written through the API is read back through the sink,
	// and so is the UPDATE_SCHEDULE command it sent the pillcase.
	body := `{"patientId":"pat-7","medicationId":"med-9","deviceId":"pill-7","timezone":"Europe/Berlin","times":["07:30"],"ward":"ward-e2e"}`
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/schedules", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create schedule: %d", resp.StatusCode)
	}
	var scheds, cmds string
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
		scheds, cmds = get("/api/v1/patients/pat-7/schedules"), get("/api/v1/devices/pill-7/commands")
		if strings.Contains(scheds, `"medicationId":"med-9"`) && strings.Contains(cmds, `"commandType":"UPDATE_SCHEDULE"`) {
			break
		}
	}
	if !strings.Contains(scheds, `"times":["07:30"]`) || !strings.Contains(cmds, `"state":"COMMAND_PENDING"`) {
		t.Fatalf("schedule written through the API not read back: %s / %s", scheds, cmds)
	}
}

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, api string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("tenant: hosp-t\n"+api), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	demo := write("demo.yaml", "api:\n  auth: {demo_key_file: "+filepath.Join(dir, "k.pem")+"}\n")
	idp := write("idp.yaml", "api:\n  auth: {jwks_url: https://idp.example/jwks, issuer: https://idp.example, audience: wardstream}\n")
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"token", "--config", demo, "--role", "analyst,admin"}, 0, ""},
		{[]string{"token", "--config", demo, "--role", "janitor"}, 2, "janitor"},
		{[]string{"token", "--config", idp}, 1, "identity provider"},
	} {
		var stderr strings.Builder
		if code := run(context.Background(), tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%v: exit %d (%s), want %d with %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	// The minted token verifies with the key file's public key.
	key, err := api.LoadOrCreateSigningKey(filepath.Join(dir, "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := key.Mint(api.DefaultConfig().Auth, api.TokenRequest{User: "u", Tenant: "hosp-t", Roles: []string{"analyst"}, TTL: time.Minute}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err := api.NewVerifier(api.DefaultConfig().Auth, key.Keys()).Verify(context.Background(), tok); err != nil || p.Tenant != "hosp-t" {
		t.Fatalf("%+v %v", p, err)
	}
}
