package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

func TestAuthentication(t *testing.T) {
	h := newHarness(t, nil)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := api.NewSigningKey(other)
	mint := func(k *api.SigningKey, req api.TokenRequest, at time.Time) string {
		tok, err := k.Mint(h.cfg.Auth, req, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := api.TokenRequest{User: "nurse", Tenant: "hospital-a", Roles: []string{api.RoleMedicalStaff}, Issuer: "https://idp.test", Audience: "wardstream", TTL: time.Hour}
	with := func(f func(*api.TokenRequest)) api.TokenRequest { r := good; f(&r); return r }
	// A token whose tenant claim is missing: mint with a different claim name.
	noTenantCfg := h.cfg.Auth
	noTenantCfg.TenantClaim = "org"
	noTenant, _ := h.key.Mint(noTenantCfg, good, time.Now())

	tests := []struct {
		name   string
		header string
		code   int
		errSub string
	}{
		{"no token", "", 401, "missing bearer token"},
		{"not bearer", "Basic dXNlcjpwYXNz", 401, "invalid token"},
		{"garbage", "Bearer not.a.jwt", 401, "malformed"},
		{"valid", "Bearer " + mint(h.key, good, time.Now()), 200, ""},
		{"lowercase scheme", "bearer " + mint(h.key, good, time.Now()), 200, ""},
		{"expired", "Bearer " + mint(h.key, good, time.Now().Add(-2*time.Hour)), 401, "expired"},
		{"other key", "Bearer " + mint(otherKey, good, time.Now()), 401, "invalid token"},
		{"wrong issuer", "Bearer " + mint(h.key, with(func(r *api.TokenRequest) { r.Issuer = "https://evil" }), time.Now()), 401, "wrong issuer"},
		{"wrong audience", "Bearer " + mint(h.key, with(func(r *api.TokenRequest) { r.Audience = "other" }), time.Now()), 401, "wrong audience"},
		{"no tenant", "Bearer " + noTenant, 403, "tenant"},
		{"unknown roles only", "Bearer " + mint(h.key, with(func(r *api.TokenRequest) { r.Roles = []string{"janitor"} }), time.Now()), 403, "none of the roles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "/api/v1/me", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			w := newRecorder()
			h.h.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if tc.code == 200 {
				return
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body is not JSON: %s", w.Body)
			}
			if msg, _ := body["error"].(string); !strings.Contains(msg, tc.errSub) {
				t.Fatalf("error %q does not mention %q", msg, tc.errSub)
			}
			if tc.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestAuthorizationByRole(t *testing.T) {
	h := newHarness(t, nil)
	h.store.alerts["hospital-a"] = []*pb.Alert{alert("hospital-a", "a1", pb.AlertState_OPEN, 1)}
	schedule := `{"patientId":"p-1","medicationId":"m-1","timezone":"Europe/Berlin","times":["08:00"]}`
	tests := []struct {
		role         string
		method, path string
		body         string
		code         int
	}{
		{api.RoleAnalyst, "GET", "/api/v1/alerts", "", 200},
		{api.RoleAnalyst, "GET", "/api/v1/wards/adherence", "", 200},
		{api.RoleAnalyst, "GET", "/api/v1/patients/p-1/adherence", "", 403},
		{api.RoleAnalyst, "GET", "/api/v1/devices/d-1/shadow", "", 403},
		{api.RoleAnalyst, "POST", "/api/v1/alerts/a1/ack", "{}", 403},
		{api.RoleAnalyst, "POST", "/api/v1/schedules", schedule, 403},
		{api.RoleMedicalStaff, "POST", "/api/v1/schedules", schedule, 201},
		{api.RoleMedicalStaff, "GET", "/api/v1/patients/p-1/adherence", "", 200},
		{api.RoleMedicalStaff, "PUT", "/api/v1/devices/d-1/shadow/desired", `{"desired":{"volume":3}}`, 403},
		{api.RoleMedicalStaff, "POST", "/api/v1/devices/d-1/commands", `{"commandType":"TRIGGER_REMINDER"}`, 202},
		{api.RoleMedicalStaff, "POST", "/api/v1/devices/d-1/commands", `{"commandType":"FACTORY_RESET"}`, 403},
		{api.RoleAdmin, "POST", "/api/v1/devices/d-1/commands", `{"commandType":"FACTORY_RESET"}`, 202},
		{api.RoleAdmin, "PUT", "/api/v1/devices/d-1/shadow/desired", `{"desired":{"volume":3}}`, 202},
		{api.RoleAdmin, "GET", "/api/v1/audit", "", 200},
		{api.RoleMedicalStaff, "GET", "/api/v1/audit", "", 403},
		{api.RoleAnalyst, "GET", "/api/v1/audit", "", 403},
	}
	for _, tc := range tests {
		t.Run(tc.role+" "+tc.method+" "+tc.path, func(t *testing.T) {
			r := h.do(tc.method, tc.path, h.token("u-"+tc.role, "hospital-a", tc.role), tc.body)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
		})
	}
	// Every write attempt by an authenticated user is audited, refused ones too.
	audits := h.pub.byTopic(topics.Audit)
	writes := 0
	for _, tc := range tests {
		if tc.method != "GET" {
			writes++
		}
	}
	if len(audits) != writes {
		t.Fatalf("%d audit records for %d write attempts", len(audits), writes)
	}
	denied := 0
	for _, a := range audits {
		if a.Value.(*pb.AuditEvent).Status == 403 {
			denied++
		}
	}
	if denied != 4 {
		t.Fatalf("%d audited 403s, want 4", denied)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t, nil)
	h.store.alerts["hospital-a"] = []*pb.Alert{alert("hospital-a", "a-of-a", pb.AlertState_OPEN, 1)}
	h.store.alerts["hospital-b"] = []*pb.Alert{alert("hospital-b", "a-of-b", pb.AlertState_OPEN, 1)}
	tokB := h.token("nurse-b", "hospital-b", api.RoleMedicalStaff)

	r := h.do("GET", "/api/v1/alerts", tokB, "")
	if r.code != 200 {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	if strings.Contains(string(r.body), "a-of-a") || !strings.Contains(string(r.body), "a-of-b") {
		t.Fatalf("tenant b sees %s", r.body)
	}
	// Another tenant's alert is not found, and acknowledging it publishes nothing.
	if r := h.do("GET", "/api/v1/alerts/a-of-a", tokB, ""); r.code != 404 {
		t.Fatalf("get other tenant's alert: %d %s", r.code, r.body)
	}
	if r := h.do("POST", "/api/v1/alerts/a-of-a/ack", tokB, "{}"); r.code != 404 {
		t.Fatalf("ack other tenant's alert: %d %s", r.code, r.body)
	}
	if n := len(h.pub.byTopic(topics.AlertAcks)); n != 0 {
		t.Fatalf("%d acks published for another tenant's alert", n)
	}
	// Every store call carried the caller's tenant; writes are stamped with it.
	for _, c := range h.store.calls {
		if !strings.HasSuffix(c, ":hospital-b") {
			t.Fatalf("store called with %s", c)
		}
	}
	if r := h.do("POST", "/api/v1/devices/d-9/commands", tokB, `{"commandType":"PING"}`); r.code != 202 {
		t.Fatalf("command: %d %s", r.code, r.body)
	}
	for _, rec := range h.pub.recs {
		if m := rec.Value.ProtoReflect().Descriptor().Fields().ByName("meta"); m != nil {
			meta := rec.Value.ProtoReflect().Get(m).Message().Interface().(*pb.Meta)
			if meta.Tenant != "hospital-b" {
				t.Fatalf("%s record stamped with tenant %q", rec.Topic, meta.Tenant)
			}
		}
	}
}

func TestCommandsOnlyToOwnDevices(t *testing.T) {
	h := newHarness(t, nil)
	h.store.devices["hospital-b"] = []string{"pill-b"}
	tok := h.token("nurse-b", "hospital-b", api.RoleAdmin)
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/api/v1/devices/pill-b/commands", `{"commandType":"PING"}`, 202},
		{"POST", "/api/v1/devices/pill-of-a/commands", `{"commandType":"PING"}`, 404},
		{"PUT", "/api/v1/devices/pill-of-a/shadow/desired", `{"desired":{"x":1}}`, 404},
		{"POST", "/api/v1/schedules", `{"patientId":"p","medicationId":"m","deviceId":"pill-of-a","timezone":"UTC","times":["08:00"]}`, 404},
		{"POST", "/api/v1/schedules", `{"patientId":"p","medicationId":"m","deviceId":"pill-b","timezone":"UTC","times":["08:00"]}`, 201},
	} {
		if r := h.do(c.method, c.path, tok, c.body); r.code != c.code {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	for _, r := range append(h.pub.byTopic(topics.Commands), h.pub.byTopic(topics.ShadowDesired)...) {
		if r.Key != "pill-b" {
			t.Fatalf("published for device %s", r.Key)
		}
	}
	// With the check off (devices provisioned elsewhere), the write goes through.
	h2 := newHarness(t, func(c *api.Config) { c.RequireKnownDevice = false })
	h2.store.devices["hospital-b"] = []string{}
	if r := h2.do("POST", "/api/v1/devices/new-pill/commands", h2.token("n", "hospital-b", api.RoleAdmin), `{"commandType":"PING"}`); r.code != 202 {
		t.Fatalf("require_known_device off: %d", r.code)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.RateLimit.RequestsPerSecond = 1; c.RateLimit.Burst = 3 })
	tok := h.token("busy", "hospital-a", api.RoleAnalyst)
	for i := 0; i < 3; i++ {
		if r := h.do("GET", "/api/v1/me", tok, ""); r.code != 200 {
			t.Fatalf("request %d: %d", i, r.code)
		}
	}
	r := h.do("GET", "/api/v1/me", tok, "")
	if r.code != 429 {
		t.Fatalf("4th request: %d, want 429", r.code)
	}
	body := r.json(t)
	if body["error"] == nil || body["retryAfterSeconds"] == nil || r.header.Get("Retry-After") != "1" {
		t.Fatalf("429 body %s, Retry-After %q", r.body, r.header.Get("Retry-After"))
	}
	// Another user of the same tenant has their own bucket.
	if r := h.do("GET", "/api/v1/me", h.token("calm", "hospital-a", api.RoleAnalyst), ""); r.code != 200 {
		t.Fatalf("other user: %d", r.code)
	}
	// The bucket refills with time.
	h.now = h.now.Add(1100 * time.Millisecond)
	if r := h.do("GET", "/api/v1/me", tok, ""); r.code != 200 {
		t.Fatalf("after refill: %d", r.code)
	}
	if got := metricValue(t, h, "wardstream_api_rate_limited_total"); got != 1 {
		t.Fatalf("rate_limited_total %v, want 1", got)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.MaxBodyBytes = 1024 })
	h.store.alerts["hospital-a"] = []*pb.Alert{alert("hospital-a", "a1", pb.AlertState_OPEN, 1), alert("hospital-a", "done", pb.AlertState_RESOLVED, 3)}
	tok := h.token("admin", "hospital-a", api.RoleAdmin)
	big := `{"desired":{"x":"` + strings.Repeat("a", 2000) + `"}}`
	tests := []struct {
		name         string
		method, path string
		body         string
		ctype        string
		code         int
		errSub       string
	}{
		{"unknown route", "GET", "/api/v1/nope", "", "", 404, "no such API route"},
		{"wrong method", "DELETE", "/api/v1/alerts", "", "", 405, "not allowed"},
		{"bad id", "GET", "/api/v1/alerts/a%20b", "", "", 400, "not a valid alert id"},
		{"bad device id", "GET", "/api/v1/devices/a%7Cb/shadow", "", "", 400, "not a valid id"},
		{"bad state", "GET", "/api/v1/alerts?state=SLEEPING", "", "", 400, "state"},
		{"bad limit", "GET", "/api/v1/alerts?limit=0", "", "", 400, "limit"},
		{"huge limit", "GET", "/api/v1/alerts?limit=100000", "", "", 400, "limit"},
		{"bad since", "GET", "/api/v1/alerts?since=yesterday", "", "", 400, "since"},
		{"bad day", "GET", "/api/v1/wards/adherence?from=2026-13-01", "", "", 400, "from"},
		{"from after to", "GET", "/api/v1/wards/adherence?from=2026-03-05&to=2026-03-01", "", "", 400, "after"},
		{"range too long", "GET", "/api/v1/wards/adherence?from=2024-01-01&to=2026-03-01", "", "", 400, "366"},
		{"bad minScore", "GET", "/api/v1/anomalies?minScore=11", "", "", 400, "minScore"},
		{"missed from after to", "GET", "/api/v1/wards/ward-1/missed-doses?from=2026-03-05&to=2026-03-01", "", "", 400, "before"},
		{"empty schedule", "POST", "/api/v1/schedules", " ", "", 400, "JSON object"},
		{"not json", "POST", "/api/v1/schedules", "{oops", "", 400, "invalid schedule"},
		{"unknown field", "POST", "/api/v1/schedules", `{"patientId":"p","medicationId":"m","timezone":"UTC","times":["08:00"],"colour":"red"}`, "", 400, "colour"},
		{"bad schedule", "POST", "/api/v1/schedules", `{"patientId":"p|x","medicationId":"m","timezone":"Mars/Base","times":["25:00","08:00","08:00"],"daysOfWeek":[7],"startDate":"2026-03-10","endDate":"2026-03-01"}`, "", 400, "timezone"},
		{"server fields", "POST", "/api/v1/schedules", `{"patientId":"p","medicationId":"m","timezone":"UTC","times":["08:00"],"version":"5"}`, "", 400, "version is set by the server"},
		{"path mismatch", "PUT", "/api/v1/schedules/p-1/m-1", `{"patientId":"p-2","medicationId":"m-1","timezone":"UTC","times":["08:00"]}`, "", 400, "path names"},
		{"wrong content type", "POST", "/api/v1/devices/d-1/commands", `{"commandType":"PING"}`, "text/plain", 415, "Content-Type"},
		{"too large", "PUT", "/api/v1/devices/d-1/shadow/desired", big, "", 413, "larger than"},
		{"unknown command", "POST", "/api/v1/devices/d-1/commands", `{"commandType":"SELF_DESTRUCT"}`, "", 400, "commandType"},
		{"payload not object", "POST", "/api/v1/devices/d-1/commands", `{"commandType":"PING","payload":[1]}`, "", 400, "payload"},
		{"bad timeout", "POST", "/api/v1/devices/d-1/commands", `{"commandType":"PING","timeoutMs":-1}`, "", 400, "timeoutMs"},
		{"command unknown field", "POST", "/api/v1/devices/d-1/commands", `{"commandType":"PING","urgent":true}`, "", 400, "urgent"},
		{"trailing data", "POST", "/api/v1/devices/d-1/commands", `{"commandType":"PING"} {}`, "", 400, "trailing"},
		{"empty desired", "PUT", "/api/v1/devices/d-1/shadow/desired", `{"desired":{}}`, "", 400, "non-empty"},
		{"ack resolved", "POST", "/api/v1/alerts/done/ack", `{}`, "", 409, "resolved"},
		{"ack missing", "POST", "/api/v1/alerts/nope/ack", `{}`, "", 404, "not found"},
		{"ack long note", "POST", "/api/v1/alerts/a1/ack", `{"note":"` + strings.Repeat("n", 1001) + `"}`, "", 400, "note"},
		{"no shadow", "GET", "/api/v1/devices/d-unknown/shadow", "", "", 404, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+tok)
			ct := tc.ctype
			if ct == "" && tc.body != "" {
				ct = "application/json"
			}
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			w := newRecorder()
			h.h.ServeHTTP(w, req)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
				t.Fatalf("not a JSON error: %s", w.Body)
			}
			if !strings.Contains(body.Error, tc.errSub) {
				t.Fatalf("error %q does not mention %q", body.Error, tc.errSub)
			}
		})
	}
	if n := len(h.pub.byTopic(topics.Commands)) + len(h.pub.byTopic(topics.Schedules)) + len(h.pub.byTopic(topics.ShadowDesired)) + len(h.pub.byTopic(topics.AlertAcks)); n != 0 {
		t.Fatalf("bad requests published %d domain records", n)
	}
}

func TestScheduleWrites(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("dr-who", "hospital-a", api.RoleMedicalStaff)
	r := h.do("POST", "/api/v1/schedules", tok, `{"patientId":"p-1","medicationId":"m-1","deviceId":"pill-7","timezone":"Europe/Berlin","times":["20:00","08:00"],"graceMinutes":30,"ward":"ward-1"}`)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	res := r.json(t)
	if res["commandId"] == nil {
		t.Fatalf("no command id: %s", r.body)
	}
	scheds := h.pub.byTopic(topics.Schedules)
	cmds := h.pub.byTopic(topics.Commands)
	if len(scheds) != 1 || len(cmds) != 1 {
		t.Fatalf("published %d schedules, %d commands", len(scheds), len(cmds))
	}
	sc := scheds[0].Value.(*pb.DoseSchedule)
	if scheds[0].Key != topics.ScheduleKey("p-1", "m-1") || sc.Version != testNow.UnixMilli() || sc.Meta.Tenant != "hospital-a" ||
		sc.StartDate != "2026-03-10" || sc.DosesPerTime != 1 || strings.Join(sc.Times, ",") != "08:00,20:00" {
		t.Fatalf("schedule record %s %v", scheds[0].Key, sc)
	}
	cmd := cmds[0].Value.(*pb.DeviceCommand)
	if cmds[0].Key != "pill-7" || cmd.CommandType != pb.CommandType_UPDATE_SCHEDULE || cmd.IssuedBy != "dr-who" ||
		cmd.CommandId != res["commandId"] || cmd.State != pb.CommandState_COMMAND_PENDING || cmd.TimeoutMs != (5*time.Minute).Milliseconds() {
		t.Fatalf("command %v", cmd)
	}
	var carried pb.DoseSchedule
	if err := codec.FromJSON([]byte(cmd.PayloadJson), &carried); err != nil || carried.PatientId != "p-1" || carried.Version != sc.Version {
		t.Fatalf("command payload %q: %v", cmd.PayloadJson, err)
	}

	// An update in the same millisecond still gets a higher version.
	r = h.do("PUT", "/api/v1/schedules/p-1/m-1", tok, `{"timezone":"Europe/Berlin","times":["09:00"]}`)
	if r.code != 200 {
		t.Fatalf("update: %d %s", r.code, r.body)
	}
	if r.json(t)["commandId"] != nil {
		t.Fatal("update without a device sent a command")
	}
	scheds = h.pub.byTopic(topics.Schedules)
	if v := scheds[1].Value.(*pb.DoseSchedule).Version; v <= sc.Version {
		t.Fatalf("update version %d not above %d", v, sc.Version)
	}
	// Delete publishes a deleted version, and tells the device when named.
	r = h.do("DELETE", "/api/v1/schedules/p-1/m-1?deviceId=pill-7", tok, "")
	if r.code != 200 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	scheds = h.pub.byTopic(topics.Schedules)
	if d := scheds[2].Value.(*pb.DoseSchedule); !d.Deleted || d.Version <= scheds[1].Value.(*pb.DoseSchedule).Version {
		t.Fatalf("delete record %v", d)
	}
	if n := len(h.pub.byTopic(topics.Commands)); n != 2 {
		t.Fatalf("%d commands after delete, want 2", n)
	}
	// Each write is audited with its status and body.
	audits := h.pub.byTopic(topics.Audit)
	if len(audits) != 3 {
		t.Fatalf("%d audit records, want 3", len(audits))
	}
	a := audits[0].Value.(*pb.AuditEvent)
	if a.User != "dr-who" || a.Action != "createSchedule" || a.Status != 201 || !strings.Contains(a.BodyJson, "pill-7") ||
		a.Resource != "POST /api/v1/schedules" || a.Role != api.RoleMedicalStaff || audits[0].Key != "dr-who" {
		t.Fatalf("audit %v", a)
	}
}

func TestAckAlert(t *testing.T) {
	for _, direct := range []bool{false, true} {
		name := "via processor"
		if direct {
			name = "publish acked alert"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(c *api.Config) { c.PublishAckedAlert = direct })
			h.store.alerts["hospital-a"] = []*pb.Alert{alert("hospital-a", "a1", pb.AlertState_OPEN, 4), alert("hospital-a", "a2", pb.AlertState_ACKNOWLEDGED, 2),
				alert("hospital-a", "MISSED_DOSE|patient|p-1|metformin|1767254400000|0", pb.AlertState_OPEN, 1)}
			tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
			r := h.do("POST", "/api/v1/alerts/a1/ack", tok, `{"note":"on it"}`)
			if r.code != 202 {
				t.Fatalf("ack: %d %s", r.code, r.body)
			}
			acks := h.pub.byTopic(topics.AlertAcks)
			if len(acks) != 1 {
				t.Fatalf("%d acks", len(acks))
			}
			ack := acks[0].Value.(*pb.AlertAck)
			if acks[0].Key != "a1" || ack.AlertId != "a1" || ack.User != "nurse" || ack.Note != "on it" || ack.Meta.Tenant != "hospital-a" {
				t.Fatalf("ack %v", ack)
			}
			alerts := h.pub.byTopic(topics.Alerts)
			if !direct {
				if len(alerts) != 0 {
					t.Fatalf("published %d alerts without publish_acked_alert", len(alerts))
				}
			} else {
				if len(alerts) != 1 {
					t.Fatalf("published %d alerts", len(alerts))
				}
				a := alerts[0].Value.(*pb.Alert)
				if alerts[0].Key != "p-1" || a.State != pb.AlertState_ACKNOWLEDGED || a.Version != 5 || a.AckedBy != "nurse" ||
					a.AckedTimeMs != testNow.UnixMilli() || a.OpenedTimeMs != testNow.Add(-time.Hour).UnixMilli() || a.Meta.EventId != "a1:v5" {
					t.Fatalf("acked alert %v", a)
				}
			}
			// Alert ids as the alerts processor composes them ("|"-joined, percent-encoded in the path).
			if r := h.do("POST", "/api/v1/alerts/MISSED_DOSE%7Cpatient%7Cp-1%7Cmetformin%7C1767254400000%7C0/ack", tok, ""); r.code != 202 {
				t.Fatalf("ack of a composed id: %d %s", r.code, r.body)
			}
			if a := h.pub.byTopic(topics.AlertAcks); len(a) != 2 || a[1].Key != "MISSED_DOSE|patient|p-1|metformin|1767254400000|0" {
				t.Fatalf("acks %v", a)
			}
			// Acknowledging an acknowledged alert is a no-op.
			r = h.do("POST", "/api/v1/alerts/a2/ack", tok, "")
			if r.code != 200 || r.json(t)["alreadyAcknowledged"] != true {
				t.Fatalf("second ack: %d %s", r.code, r.body)
			}
			if n := len(h.pub.byTopic(topics.AlertAcks)); n != 2 {
				t.Fatalf("%d acks after no-op", n)
			}
		})
	}
}

func TestWriteFailures(t *testing.T) {
	t.Run("kafka down", func(t *testing.T) {
		h := newHarness(t, nil)
		h.pub.failTopic = topics.Commands
		r := h.do("POST", "/api/v1/devices/d-1/commands", h.token("n", "hospital-a", api.RoleMedicalStaff), `{"commandType":"PING"}`)
		if r.code != 503 || !strings.Contains(string(r.body), "Kafka") {
			t.Fatalf("%d %s", r.code, r.body)
		}
		if a := h.pub.byTopic(topics.Audit); len(a) != 1 || a[0].Value.(*pb.AuditEvent).Status != 503 {
			t.Fatalf("audit of the failed write: %v", a)
		}
	})
	t.Run("audit down", func(t *testing.T) {
		h := newHarness(t, nil)
		h.pub.failTopic = topics.Audit
		r := h.do("POST", "/api/v1/devices/d-1/commands", h.token("n", "hospital-a", api.RoleMedicalStaff), `{"commandType":"PING"}`)
		if r.code != 503 || !strings.Contains(string(r.body), "audit") {
			t.Fatalf("%d %s", r.code, r.body)
		}
		if got := metricValue(t, h, "wardstream_api_audit_failures_total"); got != 1 {
			t.Fatalf("audit failures %v", got)
		}
	})
	t.Run("store down", func(t *testing.T) {
		h := newHarness(t, nil)
		h.store.fail = errors.New("connection refused")
		r := h.do("GET", "/api/v1/alerts", h.token("n", "hospital-a", api.RoleAnalyst), "")
		if r.code != 503 || strings.Contains(string(r.body), "refused") {
			t.Fatalf("store failure leaks or wrong status: %d %s", r.code, r.body)
		}
		// The dashboard still answers, naming the failed panels.
		r = h.do("GET", "/api/v1/dashboard", h.token("n", "hospital-a", api.RoleAnalyst), "")
		if r.code != 200 {
			t.Fatalf("dashboard: %d", r.code)
		}
		if errs, _ := r.json(t)["errors"].(map[string]any); len(errs) != 5 {
			t.Fatalf("dashboard errors %v", errs)
		}
	})
}

func TestReads(t *testing.T) {
	h := newHarness(t, nil)
	ta := "hospital-a"
	h.store.missed[ta] = []*pb.DoseOutcome{{DoseId: "d1", PatientId: "p-1", MedicationId: "m-1", Ward: "ward-1", Outcome: pb.Outcome_MISSED, LocalDate: "2026-03-10", ScheduledTimeMs: testNow.Add(-time.Hour).UnixMilli()}}
	h.store.adherence[ta] = []*pb.AdherenceWindow{{PatientId: "p-1", MedicationId: "m-1", Day: "2026-03-10", DailyDue: 2, DailyTaken: 1, DailyRatio: 0.5}}
	h.store.wards[ta] = []api.WardAdherence{{Ward: "ward-1", Day: "2026-03-10", Patients: 3, Due: 6, Taken: 5, Missed: 1, Ratio: 5.0 / 6}}
	h.store.anomalies[ta] = []*pb.AnomalyScore{{DeviceId: "mon-1", Score: 8.5, Level: "EMERGENCY"}, {DeviceId: "mon-2", Score: 2}}
	h.store.video[ta] = []*pb.VideoEvent{{CameraId: "cam-1", EventType: pb.VideoEventType_PERSON_DETECTED}}
	h.store.shadows[ta] = map[string]*pb.DeviceShadow{"d-1": {DeviceId: "d-1", Version: 3, Online: true}}
	h.store.alerts[ta] = []*pb.Alert{alert(ta, "a1", pb.AlertState_OPEN, 1), alert(ta, "a2", pb.AlertState_ACKNOWLEDGED, 2)}
	h.store.schedules[ta] = []*pb.DoseSchedule{{PatientId: "p-1", MedicationId: "m-1", Times: []string{"08:00"}, Timezone: "UTC"}}
	h.store.commands[ta] = []*pb.DeviceCommand{{DeviceId: "d-1", CommandId: "c-1", CommandType: pb.CommandType_PING, State: pb.CommandState_COMMAND_ACKED}}
	tok := h.token("n", ta, api.RoleMedicalStaff)
	tests := []struct {
		path string
		want []string
		not  []string
	}{
		{"/api/v1/alerts?state=OPEN", []string{`"alertId":"a1"`, `"state":"OPEN"`, `"alertType":"MISSED_DOSE"`}, []string{"a2"}},
		{"/api/v1/alerts/a2", []string{`"state":"ACKNOWLEDGED"`}, nil},
		{"/api/v1/patients/p-1/missed-doses", []string{`"doseId":"d1"`, `"outcome":"MISSED"`}, nil},
		{"/api/v1/wards/ward-1/missed-doses?from=2026-03-01&to=2026-03-11", []string{`"doseId":"d1"`, `"from":"2026-03-01T00:00:00Z"`, `"to":"2026-03-12T00:00:00Z"`}, nil},
		// A date as to includes that day, as the adherence routes' to does:
		// from=D&to=D is day D (it was refused: from not before to).
		{"/api/v1/wards/ward-1/missed-doses?from=2026-03-10&to=2026-03-10", []string{`"from":"2026-03-10T00:00:00Z"`, `"to":"2026-03-11T00:00:00Z"`}, nil},
		{"/api/v1/wards/ward-1/missed-doses?from=2026-03-10T00:00:00Z&to=2026-03-10T12:00:00Z", []string{`"to":"2026-03-10T12:00:00Z"`}, nil},
		{"/api/v1/patients/p-1/adherence?from=2026-03-01", []string{`"dailyRatio":0.5`, `"from":"2026-03-01"`, `"to":"2026-03-10"`}, nil},
		{"/api/v1/wards/adherence", []string{`"ward":"ward-1"`, `"missed":1`}, nil},
		{"/api/v1/wards/ward-1/adherence", []string{`"patients":3`}, nil},
		{"/api/v1/anomalies", []string{`"deviceId":"mon-1"`}, []string{"mon-2"}},
		{"/api/v1/anomalies?minScore=0", []string{"mon-1", "mon-2"}, nil},
		{"/api/v1/camera-events", []string{`"eventType":"PERSON_DETECTED"`}, nil},
		{"/api/v1/devices/d-1/shadow", []string{`"deviceId":"d-1"`, `"online":true`}, nil},
		{"/api/v1/dashboard", []string{`"openAlerts":[{`, `"missedToday":[{`, `"today":"2026-03-10"`, `"pipeline":`}, []string{`"errors"`, "a2"}},
		{"/api/v1/pipeline/health", []string{`"kafka":{"ok":false`, `"clickhouse":{"ok":true}`}, nil},
		{"/api/v1/me", []string{`"canWrite":true`, `"tenant":"hospital-a"`}, nil},
		{"/api/v1/patients/p-1/schedules", []string{`{"schedules":[{`, `"times":["08:00"]`}, nil},
		{"/api/v1/patients/p-2/schedules", []string{`{"schedules":[]}`}, nil},
		{"/api/v1/devices/d-1/commands", []string{`"commandId":"c-1"`, `"state":"COMMAND_ACKED"`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := h.do("GET", tc.path, tok, "")
			if r.code != 200 {
				t.Fatalf("%d %s", r.code, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.body), w) {
					t.Errorf("missing %s in %s", w, r.body)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(string(r.body), n) {
					t.Errorf("unexpected %s in %s", n, r.body)
				}
			}
		})
	}
}

func TestPublicRoutes(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html", `<script src="/assets/app.js"`},
		{"/assets/app.js", "text/javascript", "text/event-stream"},
		{"/assets/style.css", "text/css", ".card"},
		{"/openapi.yaml", "application/yaml", "openapi: 3"},
	} {
		r := h.do("GET", tc.path, "", "")
		if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), tc.ctype) {
			t.Fatalf("%s: %d %s", tc.path, r.code, r.header.Get("Content-Type"))
		}
		if !strings.Contains(string(r.body), tc.contains) {
			t.Fatalf("%s lacks %q", tc.path, tc.contains)
		}
	}
	if csp := h.do("GET", "/", "", "").header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	for _, p := range []string{"/assets/index.html", "/assets/..%2fapi.go", "/assets/nope.js"} {
		if r := h.do("GET", p, "", ""); r.code != 404 {
			t.Fatalf("%s: %d", p, r.code)
		}
	}
	// Without a demo key there is no JWKS to serve.
	if r := h.do("GET", "/.well-known/jwks.json", "", ""); r.code != 404 {
		t.Fatalf("jwks without demo key: %d", r.code)
	}
}

func TestDemoKeyJWKS(t *testing.T) {
	dir := t.TempDir()
	cfg := api.DefaultConfig()
	cfg.Auth.DemoKeyFile = dir + "/k.pem"
	srv, err := api.New(cfg, api.WithStore(newFakeStore()), api.WithPublisher(&recPublisher{}))
	if err != nil {
		t.Fatal(err)
	}
	w := newRecorder()
	srv.Handler().ServeHTTP(w, httpGet("/.well-known/jwks.json"))
	if w.Code != 200 {
		t.Fatalf("jwks: %d", w.Code)
	}
	keys, err := api.ParseJWKS(w.Body.Bytes())
	if err != nil || len(keys) != 1 {
		t.Fatalf("served JWKS %s: %v", w.Body, err)
	}
	// A token minted by `wardstream token` (same file) verifies against
	// the served JWKS, as an external verifier would.
	sk, err := api.LoadOrCreateSigningKey(cfg.Auth.DemoKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sk.Mint(cfg.Auth, api.TokenRequest{User: "u", Tenant: "t", Roles: []string{api.RoleAdmin}, TTL: time.Minute}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := api.NewVerifier(cfg.Auth, api.StaticKeys(keys)).Verify(context.Background(), tok)
	if err != nil || p.User != "u" || p.Tenant != "t" {
		t.Fatalf("verify: %v %v", p, err)
	}
	w = newRecorder()
	req := httpGet("/api/v1/me")
	req.Header.Set("Authorization", "Bearer "+tok)
	srv.Handler().ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("me with demo token: %d %s", w.Code, w.Body)
	}
}

func TestFailedAuthThrottledPerAddress(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.RateLimit.RequestsPerSecond = 1; c.RateLimit.Burst = 3 })
	codes := []int{}
	for i := 0; i < 5; i++ {
		codes = append(codes, h.do("GET", "/api/v1/me", "forged.token.here", "").code)
	}
	if fmt.Sprint(codes) != "[401 401 401 429 429]" {
		t.Fatalf("codes %v", codes)
	}
	// A valid token from the same address is its user's bucket, not the address's.
	if r := h.do("GET", "/api/v1/me", h.token("ok", "hospital-a", api.RoleAnalyst), ""); r.code != 200 {
		t.Fatalf("valid token after throttled failures: %d", r.code)
	}
}
