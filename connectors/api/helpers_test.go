package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/connectors/api"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// fakeStore is an in-memory Store keyed by tenant. It applies the filters
// the handlers rely on, so that tenant isolation is observable.
type fakeStore struct {
	mu        sync.Mutex
	alerts    map[string][]*pb.Alert // tenant -> alerts
	missed    map[string][]*pb.DoseOutcome
	adherence map[string][]*pb.AdherenceWindow
	wards     map[string][]api.WardAdherence
	anomalies map[string][]*pb.AnomalyScore
	video     map[string][]*pb.VideoEvent
	shadows   map[string]map[string]*pb.DeviceShadow
	schedules map[string][]*pb.DoseSchedule
	commands  map[string][]*pb.DeviceCommand
	// devices lists a tenant's known devices; a tenant without an entry
	// knows every device.
	devices map[string][]string
	fail    error
	calls   []string
	// wardRanges are the from/to days WardAdherence was asked for.
	wardRanges [][2]time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{alerts: map[string][]*pb.Alert{}, missed: map[string][]*pb.DoseOutcome{}, adherence: map[string][]*pb.AdherenceWindow{},
		wards: map[string][]api.WardAdherence{}, anomalies: map[string][]*pb.AnomalyScore{}, video: map[string][]*pb.VideoEvent{},
		shadows: map[string]map[string]*pb.DeviceShadow{}, schedules: map[string][]*pb.DoseSchedule{}, commands: map[string][]*pb.DeviceCommand{}, devices: map[string][]string{}}
}

func (f *fakeStore) call(name, tenant string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name+":"+tenant)
	return f.fail
}

func (f *fakeStore) Alerts(_ context.Context, tenant string, flt api.AlertFilter) ([]*pb.Alert, error) {
	if err := f.call("alerts", tenant); err != nil {
		return nil, err
	}
	var out []*pb.Alert
	for _, a := range f.alerts[tenant] {
		if len(flt.States) > 0 && !slices.Contains(flt.States, a.State) {
			continue
		}
		if flt.Ward != "" && a.Ward != flt.Ward {
			continue
		}
		out = append(out, a)
		if len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeStore) Alert(_ context.Context, tenant, id string) (*pb.Alert, error) {
	if err := f.call("alert", tenant); err != nil {
		return nil, err
	}
	for _, a := range f.alerts[tenant] {
		if a.AlertId == id {
			return a, nil
		}
	}
	return nil, api.ErrNotFound
}

func (f *fakeStore) PatientAdherence(_ context.Context, tenant, patient string, from, to time.Time) ([]*pb.AdherenceWindow, error) {
	if err := f.call("patientAdherence", tenant); err != nil {
		return nil, err
	}
	var out []*pb.AdherenceWindow
	for _, w := range f.adherence[tenant] {
		if w.PatientId == patient {
			out = append(out, w)
		}
	}
	return out, nil
}

func (f *fakeStore) WardAdherence(_ context.Context, tenant, ward string, from, to time.Time) ([]api.WardAdherence, error) {
	if err := f.call("wardAdherence", tenant); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.wardRanges = append(f.wardRanges, [2]time.Time{from, to})
	f.mu.Unlock()
	var out []api.WardAdherence
	for _, w := range f.wards[tenant] {
		if ward == "" || w.Ward == ward {
			out = append(out, w)
		}
	}
	return out, nil
}

func (f *fakeStore) MissedDoses(_ context.Context, tenant string, flt api.DoseFilter) ([]*pb.DoseOutcome, error) {
	if err := f.call("missedDoses", tenant); err != nil {
		return nil, err
	}
	var out []*pb.DoseOutcome
	for _, d := range f.missed[tenant] {
		if (flt.PatientID == "" || d.PatientId == flt.PatientID) && (flt.Ward == "" || d.Ward == flt.Ward) &&
			(flt.LocalDate == "" || d.LocalDate == flt.LocalDate) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeStore) Anomalies(_ context.Context, tenant string, flt api.AnomalyFilter) ([]*pb.AnomalyScore, error) {
	if err := f.call("anomalies", tenant); err != nil {
		return nil, err
	}
	var out []*pb.AnomalyScore
	for _, a := range f.anomalies[tenant] {
		if a.Score >= flt.MinScore {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeStore) CameraEvents(_ context.Context, tenant string, _ time.Time, _ int) ([]*pb.VideoEvent, error) {
	if err := f.call("cameraEvents", tenant); err != nil {
		return nil, err
	}
	return f.video[tenant], nil
}

func (f *fakeStore) PatientElsewhere(_ context.Context, tenant, patient string) (bool, error) {
	if err := f.call("PatientElsewhere", tenant); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for t, list := range f.schedules {
		for _, sc := range list {
			if t != tenant && sc.GetPatientId() == patient {
				return true, nil
			}
		}
	}
	return false, nil
}

func (f *fakeStore) Shadow(_ context.Context, tenant, device string) (*pb.DeviceShadow, error) {
	if err := f.call("shadow", tenant); err != nil {
		return nil, err
	}
	if sh, ok := f.shadows[tenant][device]; ok {
		return sh, nil
	}
	return nil, api.ErrNotFound
}

func (f *fakeStore) Schedules(_ context.Context, tenant, patient string) ([]*pb.DoseSchedule, error) {
	if err := f.call("schedules", tenant); err != nil {
		return nil, err
	}
	var out []*pb.DoseSchedule
	for _, sc := range f.schedules[tenant] {
		if sc.PatientId == patient {
			out = append(out, sc)
		}
	}
	return out, nil
}

func (f *fakeStore) Commands(_ context.Context, tenant, device string, limit int) ([]*pb.DeviceCommand, error) {
	if err := f.call("commands", tenant); err != nil {
		return nil, err
	}
	var out []*pb.DeviceCommand
	for _, c := range f.commands[tenant] {
		if c.DeviceId == device && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeStore) Audit(_ context.Context, tenant, user string, _ time.Time, limit int) ([]*pb.AuditEvent, error) {
	if err := f.call("audit", tenant); err != nil {
		return nil, err
	}
	return []*pb.AuditEvent{{User: "someone", Action: "ackAlert", Status: 202}}, nil
}

func (f *fakeStore) DeviceKnown(_ context.Context, tenant, device string) (bool, error) {
	if err := f.call("deviceKnown", tenant); err != nil {
		return false, err
	}
	ds, ok := f.devices[tenant]
	return !ok || slices.Contains(ds, device), nil
}

func (f *fakeStore) Ping(context.Context) error { return f.fail }

// recPublisher records what would have been published.
type recPublisher struct {
	mu   sync.Mutex
	recs []api.Record
	fail error
	// failTopic fails only publishes that include this topic.
	failTopic string
}

func (p *recPublisher) Publish(_ context.Context, recs ...api.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	for _, r := range recs {
		if p.failTopic != "" && r.Topic == p.failTopic {
			return errors.New("broker down for " + r.Topic)
		}
	}
	p.recs = append(p.recs, recs...)
	return nil
}

func (p *recPublisher) byTopic(topic string) []api.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []api.Record
	for _, r := range p.recs {
		if r.Topic == topic {
			out = append(out, r)
		}
	}
	return out
}

// harness is a Server on fakes plus a signing key for minting tokens.
type harness struct {
	t     testing.TB
	srv   *api.Server
	h     http.Handler
	store *fakeStore
	pub   *recPublisher
	key   *api.SigningKey
	cfg   api.Config
	reg   *prometheus.Registry
	now   time.Time
}

var testNow = time.Date(2026, 3, 10, 14, 30, 0, 0, time.UTC)

func testConfig() api.Config {
	cfg := api.DefaultConfig()
	cfg.Auth.DemoKeyFile = "unused-with-WithKeys"
	cfg.Auth.Issuer = "https://idp.test"
	cfg.Auth.Audience = "wardstream"
	return cfg
}

func newHarness(t testing.TB, mutate func(*api.Config), opts ...api.Option) *harness {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := api.NewSigningKey(k)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: newFakeStore(), pub: &recPublisher{}, key: sk, cfg: cfg, reg: prometheus.NewRegistry(), now: testNow}
	base := []api.Option{api.WithStore(h.store), api.WithPublisher(h.pub), api.WithKeys(sk.Keys()),
		api.WithRegisterer(h.reg), api.WithClock(func() time.Time { return h.now })}
	srv, err := api.New(cfg, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.h = srv, srv.Handler()
	return h
}

// token mints a token valid at h.now (the verifier uses the wall clock for
// exp, so tokens are minted relative to time.Now()).
func (h *harness) token(user, tenant string, roles ...string) string {
	h.t.Helper()
	tok, err := h.key.Mint(h.cfg.Auth, api.TokenRequest{User: user, Tenant: tenant, Roles: roles, Issuer: h.cfg.Auth.Issuer,
		Audience: h.cfg.Auth.Audience, TTL: time.Hour}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

type resp struct {
	code   int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.code, err, r.body)
	}
	return m
}

func (h *harness) do(method, path, token, body string) resp {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, req)
	return resp{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

func alert(tenant, id string, state pb.AlertState, version int64) *pb.Alert {
	return &pb.Alert{Meta: &pb.Meta{Tenant: tenant}, AlertId: id, AlertType: pb.AlertType_MISSED_DOSE, Priority: pb.Priority_HIGH,
		State: state, SubjectType: "patient", SubjectId: "p-1", PatientId: "p-1", Ward: "ward-1", Message: "dose missed",
		Version: version, OpenedTimeMs: testNow.Add(-time.Hour).UnixMilli()}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func httpGet(path string) *http.Request { return httptest.NewRequest("GET", path, nil) }

// metricValue sums the samples of a counter or gauge family.
func metricValue(t testing.TB, h *harness, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	return 0
}
