package main

// Cross-role contract: a schedule the API publishes is one the processors
// apply. The processors parse every schedule record with schedule.Parse
// and dead-letter the ones it rejects; these tests drive the api role
// through its public API (api.New on an in-memory store and a recording
// publisher) and run what it published through pipelines/schedule.Parse.
// They sit here because only cmd/ and bench/ may import several roles
// (STYLE.md dependency rule).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// scheduleStore answers what the schedule writes ask the store: the
// patient is known under no other tenant, and every device is known. The
// schedule endpoints call nothing else; any other method is the embedded
// nil Store's and panics, so a handler that starts reading more shows up
// here.
type scheduleStore struct{ api.Store }

func (scheduleStore) PatientElsewhere(context.Context, string, string) (bool, error) {
	return false, nil
}
func (scheduleStore) DeviceKnown(context.Context, string, string) (bool, error) { return true, nil }

// recordingPublisher keeps what the API published.
type recordingPublisher struct {
	mu   sync.Mutex
	recs []api.Record
}

func (p *recordingPublisher) Publish(_ context.Context, recs ...api.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs = append(p.recs, recs...)
	return nil
}

func (p *recordingPublisher) byTopic(topic string) []api.Record {
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

// scheduleAPI is an api.Server on scheduleStore and a recordingPublisher,
// configured as connectors/api's own unit tests configure theirs, with a
// fixed clock.
type scheduleAPI struct {
	t   *testing.T
	srv *api.Server
	pub *recordingPublisher
	tok string
}

func newScheduleAPI(t *testing.T) *scheduleAPI {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Auth.DemoKeyFile = "unused-with-WithKeys"
	cfg.Auth.Issuer = "https://idp.test"
	cfg.Auth.Audience = "wardstream"
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := api.NewSigningKey(k)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 14, 30, 0, 0, time.UTC)
	pub := &recordingPublisher{}
	srv, err := api.New(cfg, api.WithStore(scheduleStore{}), api.WithPublisher(pub), api.WithKeys(key.Keys()),
		api.WithRegisterer(prometheus.NewRegistry()), api.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := key.Mint(cfg.Auth, api.TokenRequest{User: "nurse", Tenant: "hospital-a", Roles: []string{api.RoleMedicalStaff},
		Issuer: cfg.Auth.Issuer, Audience: cfg.Auth.Audience, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &scheduleAPI{t: t, srv: srv, pub: pub, tok: tok}
}

// do sends a request as the medical-staff user and returns the status and
// body.
func (a *scheduleAPI) do(method, path, body string) (int, string) {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+a.tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	a.srv.Handler().ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// Contract (connectors/api README routes): DELETE
// /api/v1/schedules/{p}/{m} publishes a deleted DoseSchedule version that
// the processors apply. The adherence processor runs schedule.Parse on
// every schedule record and dead-letters the ones it rejects; the deleted
// version the API published had no timezone and no start date, so Parse
// refused it and the schedule went on generating doses.
func TestDeleteScheduleAcceptedByProcessors(t *testing.T) {
	a := newScheduleAPI(t)
	if code, body := a.do("DELETE", "/api/v1/schedules/p-1/m-1", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	recs := a.pub.byTopic(topics.Schedules)
	if len(recs) != 1 {
		t.Fatalf("%d schedule records, want 1", len(recs))
	}
	sc := recs[0].Value.(*pb.DoseSchedule)
	sp, err := schedule.Parse(sc)
	if err != nil {
		t.Fatalf("the deleted version the API published is rejected by the processors: %v", err)
	}
	if !sp.Deleted || sp.PatientID != "p-1" || sp.MedicationID != "m-1" {
		t.Fatalf("parsed %+v", sp)
	}
}

// Contract (brief, connectors/api README): schedule writes are validated
// so that a 201/200 means the processors will apply the schedule; they
// refuse (dead-letter) one whose early or late window is shorter than its
// grace period, with the defaults (grace 15, early 60, late 240) standing
// in for zeros. The API accepted such schedules.
func TestScheduleWindowsShorterThanGraceRefused(t *testing.T) {
	a := newScheduleAPI(t)
	for _, body := range []string{
		`{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"graceMinutes":120}`,
		`{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"graceMinutes":30,"lateWindowMinutes":10}`,
		`{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"earlyWindowMinutes":10}`,
	} {
		if code, resp := a.do("POST", "/api/v1/schedules", body); code != 400 {
			t.Errorf("%s: %d, want 400: %s", body, code, resp)
		}
	}
	if n := len(a.pub.byTopic(topics.Schedules)); n != 0 {
		t.Fatalf("published %d schedules the processors refuse", n)
	}
	// Windows at least the grace (or defaulted) are fine.
	ok := `{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"graceMinutes":60,"earlyWindowMinutes":0,"lateWindowMinutes":60}`
	if code, resp := a.do("POST", "/api/v1/schedules", ok); code != 201 {
		t.Fatalf("%s: %d %s", ok, code, resp)
	}
	if _, err := schedule.Parse(a.pub.byTopic(topics.Schedules)[0].Value.(*pb.DoseSchedule)); err != nil {
		t.Fatalf("accepted schedule refused downstream: %v", err)
	}
}
