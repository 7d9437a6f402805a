package api_test

// Review tests (rev-api): each states a contract clause and failed on the
// code before its fix. They use the package's harness (helpers_test.go).
// The ones that run what the API publishes through the processors' parser
// (pipelines/schedule.Parse) import another role, so they live in
// cmd/wardstream/role_api_schedule_test.go.

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
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

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
