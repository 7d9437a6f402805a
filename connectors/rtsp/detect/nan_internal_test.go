package detect

import (
	"math"
	"testing"
)

// TestNaNBoxDropped: a model output with a NaN box coordinate (a broken
// or badly quantized export) must not become a detection with a NaN box:
// clamping does not remove NaN, and NaN boxes reach Kafka and the sink.
func TestNaNBoxDropped(t *testing.T) {
	d := &Detector{cfg: Config{IoU: 0.45, MaxDetections: 10}, names: []string{"person"}, attrs: 5, anchors: 2,
		minConf: []float32{0.25}}
	g := Letterbox(640, 480, 320, 320)
	nan := float32(math.NaN())
	// Layout attrs x anchors: anchor 0 has a NaN centre x, anchor 1 a NaN centre y.
	out := []float32{
		nan, 100, // cx
		100, nan, // cy
		40, 40, // w
		40, 40, // h
		0.9, 0.9, // person score
	}
	for _, det := range d.decode(&slot{}, out, g) {
		b := det.Box
		for _, v := range []float32{b.X, b.Y, b.W, b.H} {
			if v != v {
				t.Fatalf("detection with a NaN box: %+v", det)
			}
		}
	}
}
