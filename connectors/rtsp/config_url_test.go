package rtsp_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/internal/config"
)

// TestConfigCameraURLGaps: camera settings that can never work are
// config errors at load, not a camera that fails every reconnect (or
// connects without its password) for as long as the role runs.
func TestConfigCameraURLGaps(t *testing.T) {
	cases := []struct{ name, cam, want string }{
		{"no host", "{id: a, url: 'rtsp:///stream'}", "cameras[0].url: no host"},
		{"port only", "{id: a, url: 'rtsp://:554/stream'}", "cameras[0].url: no host"},
		{"password_env without username", "{id: a, url: 'rtsp://h/x', password_env: CAM_PW}", "cameras[0].password_env"},
		{"negative motion_max_skip", "{id: a, url: 'rtsp://h/x'}\n    motion_max_skip: -1s", "motion_max_skip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, err := config.Parse([]byte("connectors:\n  rtsp:\n    cameras:\n      - " + c.cam + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = rtsp.Load(root)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
