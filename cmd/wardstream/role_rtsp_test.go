package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
)

func TestRTSPRoleFromTopology(t *testing.T) {
	base := `
tenant: t1
connectors:
  rtsp:
    cameras:
      - {id: cam-1, url: "rtsp://127.0.0.1:8554/a", zone: ward-1/room-1}
    correlation:
      enabled: %s
      zones:
        - {id: ward-1/room-1, cameras: [cam-1], locations: [room-1]}
`
	for _, c := range []struct {
		enabled string
		wantErr string
	}{{"false", ""}, {"true", ""}, {"maybe", "correlation"}} {
		root, err := config.Parse([]byte(strings.Replace(base, "%s", c.enabled, 1)))
		if err != nil {
			t.Fatal(err)
		}
		e := &env{cfg: root, log: telemetry.Discard(), reg: prometheus.NewRegistry(), health: runtime.NewHealth()}
		r, err := newRTSPRole(e)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("enabled=%s: err %v, want %q", c.enabled, err, c.wantErr)
			}
			continue
		}
		if err != nil || r.Name() != "rtsp" {
			t.Fatalf("enabled=%s: role %v, err %v", c.enabled, r, err)
		}
	}
}
