package api_test

// Review tests: each one states a contract clause and fails on the current
// code. They use the package's own harness (helpers_test.go).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/connectors/api"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// doSafe is h.do, but reports a handler panic instead of crashing the test
// binary (net/http would recover it and reset the connection: the client
// gets no response at all, let alone a JSON 4xx).
func doSafe(h *harness, method, path, token, body string) (r resp, panicked any) {
	defer func() { panicked = recover() }()
	return h.do(method, path, token, body), nil
}

// Contract: "Bad requests get 4xx with a JSON error"; README: "every write
// attempt by an authenticated user, refused ones included, becomes an
// AuditEvent". A PUT schedule whose body is the JSON literal null panics in
// updateSchedule (assignment to a nil map), so the client gets no response
// and no audit record is written.
func TestUpdateScheduleNullBody(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
	r, p := doSafe(h, "PUT", "/api/v1/schedules/p-1/m-1", tok, "null")
	if p != nil {
		t.Fatalf("PUT /api/v1/schedules/p-1/m-1 with body null panicked: %v", p)
	}
	if r.code != 400 {
		t.Fatalf("status %d, want 400: %s", r.code, r.body)
	}
	if n := len(h.pub.byTopic(topics.Audit)); n != 1 {
		t.Fatalf("%d audit records for one refused write, want 1", n)
	}
}

// Contract: "per-user rate limits". A user whose role may not call a write
// route is never rate limited there: the role check answers 403 (and
// publishes an audit record to Kafka) before the user's bucket is consulted,
// so one analyst token can make unbounded requests and flood the audit topic.
func TestRoleRefusalsAreRateLimited(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.RateLimit.RequestsPerSecond = 1; c.RateLimit.Burst = 3 })
	tok := h.token("curious", "hospital-a", api.RoleAnalyst)
	codes := map[int]int{}
	for i := 0; i < 50; i++ {
		codes[h.do("POST", "/api/v1/devices/d-1/commands", tok, `{"commandType":"PING"}`).code]++
	}
	if codes[429] == 0 {
		t.Fatalf("50 refused writes within one second with burst 3: codes %v, no 429; %d audit records published",
			codes, len(h.pub.byTopic(topics.Audit)))
	}
}

// README (Security model, Audit): "every write attempt by an authenticated
// user, refused ones included, becomes an AuditEvent". A write refused by
// the rate limit (429) is not audited.
func TestRateLimitedWriteIsAudited(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.RateLimit.RequestsPerSecond = 1; c.RateLimit.Burst = 1 })
	tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
	if r := h.do("POST", "/api/v1/devices/d-1/commands", tok, `{"commandType":"PING"}`); r.code != 202 {
		t.Fatalf("first write: %d %s", r.code, r.body)
	}
	if r := h.do("POST", "/api/v1/devices/d-1/commands", tok, `{"commandType":"PING"}`); r.code != 429 {
		t.Fatalf("second write: %d, want 429", r.code)
	}
	var statuses []int32
	for _, rec := range h.pub.byTopic(topics.Audit) {
		statuses = append(statuses, rec.Value.(*pb.AuditEvent).Status)
	}
	if len(statuses) != 2 {
		t.Fatalf("audit statuses %v for two write attempts (202, 429), want both audited", statuses)
	}
}

// README: the JWKS is "refetched on unknown kid at most every 30 s"
// (MinRefresh). Once the cached set is older than MaxAge and the identity
// provider fails, every request (unknown kid or not) refetches: MinRefresh
// no longer bounds anything, so tokens with made-up kids hammer the IdP and
// each request that becomes the fetch leader waits on it.
func TestJWKSRefetchBoundedWhileStale(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	var fetches atomic.Int32
	var down atomic.Bool
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(api.JWKS{Keys: []api.JWK{rsaJWK(t, &k1.PublicKey, "k1")}})
	}))
	defer idp.Close()
	cache := &api.JWKSCache{URL: idp.URL, MaxAge: 50 * time.Millisecond, MinRefresh: time.Hour}
	ctx := context.Background()
	if _, err := cache.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	time.Sleep(80 * time.Millisecond) // the set is now stale
	before := fetches.Load()
	for i := 0; i < 20; i++ {
		_, _ = cache.Key(ctx, fmt.Sprintf("made-up-%d", i))
	}
	for i := 0; i < 20; i++ {
		if _, err := cache.Key(ctx, "k1"); err != nil {
			t.Fatalf("cached key lost while the provider is down: %v", err)
		}
	}
	// One refetch for staleness is expected; MinRefresh (1h) should stop the rest.
	if got := fetches.Load() - before; got > 1 {
		t.Fatalf("%d JWKS fetches for 40 requests within MinRefresh=1h while the provider is down, want <= 1", got)
	}
}

// Contract: "Bad requests get 4xx with a JSON error"; README: "Errors are
// always JSON". Outside /api/ the mux answers unknown paths and wrong
// methods with Go's text/plain bodies.
func TestNonAPIErrorsAreJSON(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/assets"},
		{"POST", "/"},
	} {
		r := h.do(c.method, c.path, "", "")
		var body struct{ Error string }
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || json.Unmarshal(r.body, &body) != nil || body.Error == "" {
			t.Errorf("%s %s: %d %q %q, want a JSON error", c.method, c.path, r.code, r.header.Get("Content-Type"), strings.TrimSpace(string(r.body)))
		}
	}
}

// Contract: "a user sees only its tenant"; README: "so one hospital cannot
// command another's device by guessing its id". Schedules are checked only
// when they name a device: a medical_staff user of hospital-b can create,
// replace or delete the schedule of hospital-a's patient p-1 just by naming
// the id. Downstream this is a cross-tenant write, not a separate patient:
// the adherence processor keys its state by patient id alone
// (pipelines/adherence/adherence.go:267 ctx.Loopback(s.GetPatientId(), &s))
// and adopts the schedule's tenant (adherence.go:308 st.Tenant = t), so
// hospital-a's schedule is replaced and p-1's later outcomes and alerts are
// emitted under hospital-b.
func TestScheduleForOtherTenantsPatient(t *testing.T) {
	h := newHarness(t, nil)
	h.store.schedules["hospital-a"] = []*pb.DoseSchedule{{Meta: &pb.Meta{Tenant: "hospital-a"}, PatientId: "p-1", MedicationId: "m-1",
		Timezone: "UTC", Times: []string{"08:00"}, Version: 1}}
	tok := h.token("mallory", "hospital-b", api.RoleMedicalStaff)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/schedules", `{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["03:00"]}`},
		{"PUT", "/api/v1/schedules/p-1/m-1", `{"timezone":"UTC","times":["03:00"]}`},
		{"DELETE", "/api/v1/schedules/p-1/m-1", ""},
	} {
		if r := h.do(c.method, c.path, tok, c.body); r.code < 400 {
			t.Errorf("hospital-b %s %s for hospital-a's patient p-1: %d (accepted), want 404", c.method, c.path, r.code)
		}
	}
	if n := len(h.pub.byTopic(topics.Schedules)); n != 0 {
		t.Errorf("%d schedules for hospital-a's patient published by hospital-b", n)
	}
}

// The OpenAPI document should describe the responses the routes actually
// give. Every write route reads its body through readBody (413 above
// max_body_bytes, 415 for a non-JSON Content-Type), and deleteSchedule with
// ?deviceId= answers 404 for an unknown device; the spec documents 413/415
// only on createSchedule and no 404 on deleteSchedule.
func TestOpenAPIDocumentsServedErrors(t *testing.T) {
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	responses := map[string]map[string]any{}
	for _, item := range spec.Paths {
		for _, v := range item {
			op, ok := v.(map[string]any)
			if !ok {
				continue // path-level parameters
			}
			id, _ := op["operationId"].(string)
			rs, _ := op["responses"].(map[string]any)
			responses[id] = rs
		}
	}
	h := newHarness(t, func(c *api.Config) { c.MaxBodyBytes = 1024 })
	h.store.devices["hospital-a"] = []string{"d-1"}
	tok := h.token("root", "hospital-a", api.RoleAdmin)
	// Served: an unknown device on deleteSchedule is a 404.
	if r := h.do("DELETE", "/api/v1/schedules/p-1/m-1?deviceId=d-unknown", tok, ""); r.code != 404 {
		t.Fatalf("deleteSchedule with unknown device: %d", r.code)
	}
	if _, ok := responses["deleteSchedule"]["404"]; !ok {
		t.Errorf("deleteSchedule answers 404 (unknown deviceId) but openapi.yaml does not document it")
	}
	for _, rt := range h.srv.Routes() {
		if !rt.Write {
			continue
		}
		for _, code := range []string{"413", "415"} {
			if _, ok := responses[rt.Name][code]; !ok {
				t.Errorf("%s (%s %s) can answer %s but openapi.yaml does not document it", rt.Name, rt.Method, rt.Path, code)
			}
		}
	}
}

// Contract: "Patient data values must never be logged"; the store's own
// errors avoid ids on purpose ("querying adherence of a patient of tenant
// %s"). But a plain 404 (store ErrNotFound is not an httpError) is logged at
// ERROR as "api request failed" with the store's message, which names the
// alert id, and alert ids embed the patient id (type|subject|window). Any
// caller can also fill the error log with 404s.
func TestNotFoundNotLoggedWithPatientID(t *testing.T) {
	var logs bytes.Buffer
	st := &chLikeStore{newFakeStore()}
	h := newHarness(t, nil, api.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))), api.WithStore(st))
	tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
	if r := h.do("GET", "/api/v1/alerts/MISSED_DOSE%7Cpatient-4711%7C2026-03-10T08:00", tok, ""); r.code != 404 {
		t.Fatalf("status %d", r.code)
	}
	if r := h.do("POST", "/api/v1/alerts/MISSED_DOSE%7Cpatient-4711%7C2026-03-10T08:00/ack", tok, "{}"); r.code != 404 {
		t.Fatalf("ack status %d", r.code)
	}
	if strings.Contains(logs.String(), "patient-4711") || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("a 404 was logged at ERROR with the patient id:\n%s", logs.String())
	}
}

// chLikeStore wraps not-found the way ClickHouseStore.Alert does
// (chstore.go:183: fmt.Errorf("alert %s: %w", alertID, ErrNotFound)).
type chLikeStore struct{ *fakeStore }

func (c *chLikeStore) Alert(ctx context.Context, tenant, id string) (*pb.Alert, error) {
	a, err := c.fakeStore.Alert(ctx, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("alert %s: %w", id, err)
	}
	return a, nil
}
