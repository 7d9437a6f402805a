package api_test

// Review test (rev-apisink): states a contract clause and failed on the
// code before its fix. It uses the package's harness (helpers_test.go).

import (
	"errors"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/internal/runtime"
)

// Contract (README, Errors): "internal errors are logged, not shown".
// Pipeline health (readable by every role, analysts included, and part of
// every dashboard snapshot) carried the raw error text of the ClickHouse
// driver, kadm and the roles' checks: server addresses, user names,
// driver messages.
func TestPipelineHealthHidesInternalErrors(t *testing.T) {
	const secret = "10.20.30.40"
	health := runtime.NewHealth()
	health.Set("sink", errors.New("clickhouse: dial tcp "+secret+":9000: connect: connection refused"))
	h := newHarness(t, nil, api.WithHealth(health))
	h.store.fail = errors.New("code: 516, message: default: Authentication failed (user wardstream at " + secret + ":9000)")
	for _, tc := range []struct{ user, role string }{
		{"ana", api.RoleAnalyst},
		{"nurse", api.RoleMedicalStaff},
		{"root", api.RoleAdmin},
	} {
		for _, path := range []string{"/api/v1/pipeline/health", "/api/v1/dashboard"} {
			t.Run(tc.role+path, func(t *testing.T) {
				r := h.do("GET", path, h.token(tc.user, "hospital-a", tc.role), "")
				if r.code != 200 {
					t.Fatalf("%d %s", r.code, r.body)
				}
				if strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), "Authentication failed") {
					t.Fatalf("response shows internal error text: %s", r.body)
				}
				m := r.json(t)
				p := m
				if path == "/api/v1/dashboard" {
					p = m["pipeline"].(map[string]any)
				}
				ch := p["clickhouse"].(map[string]any)
				if ch["ok"] != false || ch["error"] == "" || ch["error"] == nil {
					t.Fatalf("clickhouse component %v: want not ok with a generic error", ch)
				}
			})
		}
	}
}
