package detect_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
)

// TestUnknownClassNames: a classes or class_confidence entry naming no
// class of the model (a typo, another model's labels) is a config error,
// not a silent "no detections ever" or an ignored threshold.
func TestUnknownClassNames(t *testing.T) {
	newDetector(t, nil) // Init, or skip without the runtime
	root := rtsptest.RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "connectors/rtsp/testmodel/colorbox.onnx")); err != nil {
		t.Skip(err)
	}
	for name, mut := range map[string]func(*detect.Config){
		"classes":          func(c *detect.Config) { c.Classes = []string{"Person"} },
		"class_confidence": func(c *detect.Config) { c.ClassConfidence = map[string]float32{"persn": 0.5} },
	} {
		cfg := detect.DefaultConfig()
		cfg.Model = filepath.Join(root, "connectors/rtsp/testmodel/colorbox.onnx")
		cfg.Sessions = 1
		mut(&cfg)
		d, err := detect.New(cfg)
		if err == nil {
			d.Close()
			t.Errorf("%s: unknown class name accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "person") {
			t.Errorf("%s: error %q does not list the model's classes", name, err)
		}
	}
}
