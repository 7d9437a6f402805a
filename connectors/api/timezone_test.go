package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/api"
)

// TestTenantTimezones: a hospital network spanning zones. At 20:00 UTC
// it is already tomorrow in Tokyo: a Tokyo tenant's dashboard, default
// day range and YYYY-MM-DD parameters mean Tokyo days; other tenants keep
// api.timezone.
func TestTenantTimezones(t *testing.T) {
	h := newHarness(t, func(c *api.Config) {
		c.Timezone = "UTC"
		c.TenantTimezones = map[string]string{"hosp-tokyo": "Asia/Tokyo", "hosp-ny": "America/New_York"}
	})
	h.now = time.Date(2026, 3, 10, 20, 0, 0, 0, time.UTC)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	cases := []struct {
		tenant, today, zone string
		loc                 *time.Location
	}{
		{"hosp-tokyo", "2026-03-11", "Asia/Tokyo", tokyo},
		{"hosp-ny", "2026-03-10", "America/New_York", nil},
		{"hosp-berlin", "2026-03-10", "UTC", time.UTC}, // not listed: api.timezone
	}
	for _, c := range cases {
		t.Run(c.tenant, func(t *testing.T) {
			r := h.do("GET", "/api/v1/dashboard", h.token("n", c.tenant, api.RoleMedicalStaff), "")
			if r.code != 200 {
				t.Fatalf("dashboard %d %s", r.code, r.body)
			}
			var d struct{ Today, Timezone string }
			if err := json.Unmarshal(r.body, &d); err != nil {
				t.Fatal(err)
			}
			if d.Today != c.today || d.Timezone != c.zone {
				t.Errorf("dashboard today %s in %s, want %s in %s", d.Today, d.Timezone, c.today, c.zone)
			}
			if c.loc == nil {
				return
			}
			// The default day range ends today, in the tenant's zone.
			h.store.mu.Lock()
			h.store.wardRanges = nil
			h.store.mu.Unlock()
			if r := h.do("GET", "/api/v1/wards/adherence", h.token("n", c.tenant, api.RoleMedicalStaff), ""); r.code != 200 {
				t.Fatalf("wards adherence %d %s", r.code, r.body)
			}
			h.store.mu.Lock()
			ranges := h.store.wardRanges
			h.store.mu.Unlock()
			wantTo := time.Date(2026, 3, 10, 0, 0, 0, 0, c.loc)
			if c.today == "2026-03-11" {
				wantTo = wantTo.AddDate(0, 0, 1)
			}
			if len(ranges) != 1 || !ranges[0][1].Equal(wantTo) || !ranges[0][0].Equal(wantTo.AddDate(0, 0, -29)) {
				t.Errorf("ward adherence asked for %v, want %v - %v", ranges, wantTo.AddDate(0, 0, -29), wantTo)
			}
		})
	}
}

func TestTenantTimezonesValidated(t *testing.T) {
	cfg := api.DefaultConfig()
	cfg.TenantTimezones = map[string]string{"a": "Mars/Base", "b": ""}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{`api.tenant_timezones.a: "Mars/Base" is not an IANA time zone`, "api.tenant_timezones.b: empty zone"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
