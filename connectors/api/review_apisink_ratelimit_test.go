package api_test

// Review test (rev-apisink): states a contract clause and failed on the
// code before its fix. It uses the package's harness (helpers_test.go).

import (
	"testing"

	"github.com/wardstream/wardstream/connectors/api"
)

// Contract (README, Rate limits): "a token bucket per tenant/user". The
// bucket key was tenant + "/" + user, and neither claim is restricted, so
// tenant "a/b" user "c" and tenant "a" user "b/c" (two people) shared one
// bucket: one could exhaust the other's rate.
func TestRateLimitKeysDoNotCollide(t *testing.T) {
	type who struct{ tenant, user string }
	for _, tc := range []struct {
		name string
		a, b who
	}{
		{"slash moves between tenant and user", who{"a/b", "c"}, who{"a", "b/c"}},
		{"slash at the edges", who{"a/", "b"}, who{"a", "/b"}},
		{"separator-like user", who{"h", "x/y/z"}, who{"h/x", "y/z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *api.Config) { c.RateLimit.Burst = 1; c.RateLimit.RequestsPerSecond = 0.001 })
			ta := h.token(tc.a.user, tc.a.tenant, api.RoleAnalyst)
			tb := h.token(tc.b.user, tc.b.tenant, api.RoleAnalyst)
			if r := h.do("GET", "/api/v1/me", ta, ""); r.code != 200 {
				t.Fatalf("first request of %v: %d %s", tc.a, r.code, r.body)
			}
			if r := h.do("GET", "/api/v1/me", ta, ""); r.code != 429 {
				t.Fatalf("second request of %v: %d, want 429 (burst 1)", tc.a, r.code)
			}
			if r := h.do("GET", "/api/v1/me", tb, ""); r.code != 200 {
				t.Fatalf("first request of %v: %d, want 200 (it shares %v's bucket): %s", tc.b, r.code, tc.a, r.body)
			}
		})
	}
}
