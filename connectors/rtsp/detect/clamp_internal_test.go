package detect

import (
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp/events"
)

// TestClampedBoxFeetInBottomArea: a person cut off by the bottom of
// a 640x480 frame (model box extends past the picture) is clamped to the
// frame, so the box's bottom (Y+H, the "feet" the area rules use) is
// exactly 1. A restricted area polygon drawn to the frame's bottom edge
// must contain those feet.
func TestClampedBoxFeetInBottomArea(t *testing.T) {
	d := &Detector{cfg: Config{IoU: 0.45, MaxDetections: 10}, names: []string{"person"}, attrs: 5, anchors: 1,
		minConf: []float32{0.25}}
	g := Letterbox(640, 480, 320, 320) // scale 0.5, picture rows 40..280 of the input
	// centre (224, 250), 64 x 80 input pixels: y from 210 to 290, past the
	// picture's bottom (280); source x 384..512, y 340..480 (clamped).
	out := []float32{224, 250, 64, 80, 0.9}
	dets := d.decode(&slot{}, out, g)
	if len(dets) != 1 {
		t.Fatalf("detections %v", dets)
	}
	b := dets[0].Box
	fx, fy := float64(b.X+b.W/2), float64(b.Y+b.H)
	t.Logf("box %+v, feet (%v, %v)", b, fx, fy)
	area := [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}} // bottom-right quadrant
	if !events.PointInPolygon(fx, fy, area) {
		t.Fatalf("feet (%v, %v) of a person standing in the bottom-right quadrant are outside it", fx, fy)
	}
}
