package api_test

// Review tests (rev-api): each states a contract clause and failed on the
// code before its fix. They use the package's harness (helpers_test.go).

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Contract (README routes): DELETE /api/v1/schedules/{p}/{m} publishes a
// deleted DoseSchedule version that the processors apply. The adherence
// processor runs schedule.Parse on every schedule record and dead-letters
// the ones it rejects; the deleted version the API published had no
// timezone and no start date, so Parse refused it and the schedule went on
// generating doses.
func TestDeleteScheduleAcceptedByProcessors(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
	if r := h.do("DELETE", "/api/v1/schedules/p-1/m-1", tok, ""); r.code != 200 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	recs := h.pub.byTopic(topics.Schedules)
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

// Contract (brief, README): schedule writes are validated so that a 201/200
// means the processors will apply the schedule; they refuse (dead-letter)
// one whose early or late window is shorter than its grace period, with
// the defaults (grace 15, early 60, late 240) standing in for zeros. The
// API accepted such schedules.
func TestScheduleWindowsShorterThanGraceRefused(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("nurse", "hospital-a", api.RoleMedicalStaff)
	for _, body := range []string{
		`{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"graceMinutes":120}`,
		`{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"graceMinutes":30,"lateWindowMinutes":10}`,
		`{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"earlyWindowMinutes":10}`,
	} {
		if r := h.do("POST", "/api/v1/schedules", tok, body); r.code != 400 {
			t.Errorf("%s: %d, want 400: %s", body, r.code, r.body)
		}
	}
	if n := len(h.pub.byTopic(topics.Schedules)); n != 0 {
		t.Fatalf("published %d schedules the processors refuse", n)
	}
	// Windows at least the grace (or defaulted) are fine.
	ok := `{"patientId":"p-1","medicationId":"m-1","timezone":"UTC","times":["08:00"],"graceMinutes":60,"earlyWindowMinutes":0,"lateWindowMinutes":60}`
	if r := h.do("POST", "/api/v1/schedules", tok, ok); r.code != 201 {
		t.Fatalf("%s: %d %s", ok, r.code, r.body)
	}
	if _, err := schedule.Parse(h.pub.byTopic(topics.Schedules)[0].Value.(*pb.DoseSchedule)); err != nil {
		t.Fatalf("accepted schedule refused downstream: %v", err)
	}
}

// Contract (AuthConfig.Leeway: "tolerates clock skew on exp/nbf/iat"): a
// token issued in the future, beyond the leeway, is not valid. The parser
// never checked iat, so such a token was accepted.
func TestTokenIssuedInFutureRefused(t *testing.T) {
	h := newHarness(t, nil)
	now := time.Now()
	tk := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "u", "tenant": "hospital-a", "roles": "admin",
		"iss": h.cfg.Auth.Issuer, "aud": h.cfg.Auth.Audience, "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})
	tk.Header["kid"] = h.key.Kid
	tok, err := tk.SignedString(h.key.Key)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.do("GET", "/api/v1/me", tok, ""); r.code != 401 {
		t.Fatalf("token issued an hour from now: %d, want 401: %s", r.code, r.body)
	}
	// Within the leeway (30 s) it is fine.
	tk = jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "u", "tenant": "hospital-a", "roles": "admin",
		"iss": h.cfg.Auth.Issuer, "aud": h.cfg.Auth.Audience, "iat": now.Add(10 * time.Second).Unix(), "exp": now.Add(time.Hour).Unix()})
	tk.Header["kid"] = h.key.Kid
	tok, _ = tk.SignedString(h.key.Key)
	if r := h.do("GET", "/api/v1/me", tok, ""); r.code != 200 {
		t.Fatalf("token issued 10 s from now: %d, want 200: %s", r.code, r.body)
	}
}

// Contract (README): "A live stream ends when its token expires." A client
// that stops reading fills the socket buffers; the handler then blocks in
// Write, never reaches its expiry timer, and the stream (and its slot in
// max_streams / max_streams_per_user) outlives the token indefinitely.
func TestStalledStreamEndsWhenTokenExpires(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.StreamInterval = config.Duration(10 * time.Millisecond) })
	big := strings.Repeat("x", 10_000)
	for i := 0; i < 100; i++ {
		a := alert("hospital-a", fmt.Sprintf("a-%d", i), pb.AlertState_OPEN, 1)
		a.Message = big
		h.store.alerts["hospital-a"] = append(h.store.alerts["hospital-a"], a)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	tok, err := h.key.Mint(h.cfg.Auth, api.TokenRequest{User: "stalled", Tenant: "hospital-a", Roles: []string{api.RoleAnalyst},
		Issuer: h.cfg.Auth.Issuer, Audience: h.cfg.Auth.Audience, TTL: 1500 * time.Millisecond}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	for metricValue(t, h, "wardstream_api_stream_clients") != 1 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stream never opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Never read: the server's writes block once the buffers are full.
	deadline := start.Add(8 * time.Second)
	for metricValue(t, h, "wardstream_api_stream_clients") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a stalled live stream is still open 6 s after its token expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
