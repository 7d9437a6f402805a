package rtsp_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
	"github.com/wardstream/wardstream/internal/config"
)

func TestLoadTopology(t *testing.T) {
	root, err := config.Load(filepath.Join(rtsptest.RepoRoot(t), config.DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rtsp.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Cameras) == 0 || cfg.Cameras[0].Tenant != root.Tenant || cfg.SampleFPS != 5 {
		t.Fatalf("cameras %+v", cfg.Cameras)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "connectors:\n  rtsp:\n    sample_fsp: 5\n", []string{"sample_fsp"}},
		{"password in url", "connectors:\n  rtsp:\n    cameras:\n      - {id: a, url: 'rtsp://u:secret@h/x'}\n",
			[]string{"cameras[0].url: holds a password"}},
		{"bad values", `connectors:
  rtsp:
    sample_fps: 0
    transport: quic
    frame_clock: gps
    queue_frames: 0
    detector: {confidence: 2}
    cameras:
      - {id: a, url: 'http://h/x', areas: [{name: z, polygon: [[0,0],[1,1]], restricted: true}]}
      - {id: a}
`, []string{"sample_fps", "transport", "frame_clock", "queue_frames", "detector.confidence", "cameras[0].url: scheme", "cameras[0].areas[0].polygon", "cameras[1].id", "cameras[1].url: required"}},
		{"state lookback shorter than the debounce", "connectors:\n  rtsp:\n    state_lookback: 5s\n    state_max_gap: -1s\n",
			[]string{"state_lookback: 5s must be 0 (off) or >= events.debounce + events.occupancy_stable (13s)", "state_max_gap: -1s must be >= 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, err := config.Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = rtsp.Load(root)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}
