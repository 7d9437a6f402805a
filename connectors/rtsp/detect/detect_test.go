package detect_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
)

// newDetector loads the committed test model; it skips when the ONNX
// Runtime library is not installed (deploy/local/onnxruntime.sh).
func newDetector(t testing.TB, mut func(*detect.Config)) *detect.Detector {
	t.Helper()
	root := rtsptest.RepoRoot(t)
	lib := os.Getenv(detect.EnvLibrary)
	if lib == "" {
		lib = filepath.Join(root, detect.DefaultLibrary)
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("onnxruntime library not installed (bash deploy/local/onnxruntime.sh): %v", err)
	}
	if err := detect.Init(lib); err != nil {
		t.Fatal(err)
	}
	cfg := detect.DefaultConfig()
	cfg.Model = filepath.Join(root, "connectors/rtsp/testmodel/colorbox.onnx")
	cfg.Sessions = 2
	if mut != nil {
		mut(&cfg)
	}
	d, err := detect.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

type rect struct {
	x, y, w, h int
	r, g, b    byte
}

// frame draws rects on a dark grey w x h RGB24 frame.
func frame(w, h int, rects ...rect) []byte {
	buf := make([]byte, 3*w*h)
	for i := 0; i < len(buf); i += 3 {
		buf[i], buf[i+1], buf[i+2] = 60, 60, 60
	}
	for _, r := range rects {
		for y := r.y; y < r.y+r.h; y++ {
			for x := r.x; x < r.x+r.w; x++ {
				o := 3 * (y*w + x)
				buf[o], buf[o+1], buf[o+2] = r.r, r.g, r.b
			}
		}
	}
	return buf
}

// scaleNearest resizes a packed RGB frame (the decoder does this with
// libswscale in production).
func scaleNearest(src []byte, sw, sh, dw, dh int) []byte {
	dst := make([]byte, 3*dw*dh)
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			copy(dst[3*(y*dw+x):3*(y*dw+x)+3], src[3*((y*sh/dh)*sw+x*sw/dw):])
		}
	}
	return dst
}

func TestModelMetadata(t *testing.T) {
	d := newDetector(t, nil)
	if w, h := d.InputSize(); w != 320 || h != 320 {
		t.Fatalf("input %dx%d, want 320x320", w, h)
	}
	if c := d.Classes(); len(c) != 2 || c[0] != "person" || c[1] != "equipment" {
		t.Fatalf("classes %v", c)
	}
	if d.Name() != "colorbox" || d.Version() != "1.0.0" {
		t.Fatalf("name %q version %q", d.Name(), d.Version())
	}
}

func TestDetectBoxes(t *testing.T) {
	d := newDetector(t, nil)
	const W, H = 640, 480
	cases := []struct {
		name  string
		rects []rect
		want  []detect.Detection
	}{
		{"empty", nil, nil},
		{"one person", []rect{{200, 120, 100, 180, 230, 20, 20}},
			[]detect.Detection{{Class: "person", Box: detect.Box{X: 200.0 / W, Y: 120.0 / H, W: 100.0 / W, H: 180.0 / H}}}},
		{"person and equipment apart", []rect{{40, 40, 80, 120, 240, 10, 10}, {460, 300, 120, 100, 10, 240, 10}},
			[]detect.Detection{
				{Class: "person", Box: detect.Box{X: 40.0 / W, Y: 40.0 / H, W: 80.0 / W, H: 120.0 / H}},
				{Class: "equipment", Box: detect.Box{X: 460.0 / W, Y: 300.0 / H, W: 120.0 / W, H: 100.0 / H}},
			}},
		{"blue is nothing", []rect{{200, 120, 100, 180, 20, 20, 230}}, nil},
		{"edge of frame", []rect{{0, 380, 90, 100, 250, 0, 0}},
			[]detect.Detection{{Class: "person", Box: detect.Box{X: 0, Y: 380.0 / H, W: 90.0 / W, H: 100.0 / H}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := d.Geometry(W, H)
			img := scaleNearest(frame(W, H, tc.rects...), W, H, g.W, g.H)
			dets, took, err := d.Detect(context.Background(), img, g)
			if err != nil {
				t.Fatal(err)
			}
			if took <= 0 {
				t.Fatalf("inference time %v", took)
			}
			if len(dets) != len(tc.want) {
				t.Fatalf("got %d detections %+v, want %d", len(dets), dets, len(tc.want))
			}
			for _, w := range tc.want {
				found := false
				for _, got := range dets {
					if got.Class == w.Class && detect.IoU(got.Box, w.Box) >= 0.9 && got.Confidence > 0.8 {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s at %+v in %+v", w.Class, w.Box, dets)
				}
			}
		})
	}
}

func TestClassFilterAndThresholds(t *testing.T) {
	d := newDetector(t, func(c *detect.Config) { c.Classes = []string{"equipment"} })
	g := d.Geometry(640, 480)
	img := scaleNearest(frame(640, 480, rect{40, 40, 80, 120, 240, 10, 10}, rect{460, 300, 120, 100, 10, 240, 10}), 640, 480, g.W, g.H)
	dets, _, err := d.Detect(context.Background(), img, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 || dets[0].Class != "equipment" {
		t.Fatalf("classes filter: %+v", dets)
	}
	d2 := newDetector(t, func(c *detect.Config) { c.ClassConfidence = map[string]float32{"person": 0.99} })
	dets, _, _ = d2.Detect(context.Background(), img, g)
	if len(dets) != 1 || dets[0].Class != "equipment" {
		t.Fatalf("person threshold 0.99 should drop 0.95 persons: %+v", dets)
	}
}

func TestDetectConcurrent(t *testing.T) {
	d := newDetector(t, nil)
	g := d.Geometry(640, 480)
	img := scaleNearest(frame(640, 480, rect{200, 120, 100, 180, 230, 20, 20}), 640, 480, g.W, g.H)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 5; j++ {
				dets, _, err := d.Detect(context.Background(), img, g)
				if err == nil && len(dets) != 1 {
					err = fmt.Errorf("got %d detections", len(dets))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestLetterbox(t *testing.T) {
	cases := []struct {
		sw, sh, iw, ih int
		want           detect.Geometry
	}{
		{640, 480, 320, 320, detect.Geometry{SrcW: 640, SrcH: 480, W: 320, H: 240, PadX: 0, PadY: 40, InW: 320, InH: 320, Scale: 0.5}},
		{1920, 1080, 640, 640, detect.Geometry{SrcW: 1920, SrcH: 1080, W: 640, H: 360, PadX: 0, PadY: 140, InW: 640, InH: 640, Scale: 1.0 / 3}},
		{480, 640, 320, 320, detect.Geometry{SrcW: 480, SrcH: 640, W: 240, H: 320, PadX: 40, PadY: 0, InW: 320, InH: 320, Scale: 0.5}},
	}
	for _, c := range cases {
		if got := detect.Letterbox(c.sw, c.sh, c.iw, c.ih); got != c.want {
			t.Errorf("Letterbox(%d,%d,%d,%d) = %+v, want %+v", c.sw, c.sh, c.iw, c.ih, got, c.want)
		}
	}
}

func TestParseNames(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"{0: 'person', 1: 'bicycle'}", []string{"person", "bicycle"}, false},
		{`{"0": "a", "2": "c"}`, nil, true},
		{`{0: "a", 2: "c"}`, []string{"a", "class1", "c"}, false},
		{"{0: 'hair drier'}", []string{"hair drier"}, false},
		{"person,car", nil, true},
		{"{}", nil, true},
	}
	for _, c := range cases {
		got, err := detect.ParseNames(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseNames(%q) err %v", c.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("ParseNames(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"{0: 'person', 1: 'bicycle'}", "{}", "{99999999999: 'x'}", `{0: "a\"b"}`, "{0: '"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := detect.ParseNames(s)
		if err == nil && (len(names) == 0 || len(names) > 100_001) {
			t.Fatalf("ParseNames(%q) gave %d names", s, len(names))
		}
	})
}

func BenchmarkDetect(b *testing.B) {
	d := newDetector(b, func(c *detect.Config) { c.Sessions = 1 })
	g := d.Geometry(640, 480)
	img := scaleNearest(frame(640, 480, rect{200, 120, 100, 180, 230, 20, 20}), 640, 480, g.W, g.H)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := d.Detect(context.Background(), img, g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inferences/s")
}
