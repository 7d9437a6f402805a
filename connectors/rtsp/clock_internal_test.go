package rtsp

import (
	"testing"
	"time"
)

// TestFrameTimeUnsetCameraClock: in the default frame_clock: camera mode, a
// camera whose NTP clock was never set (here its factory date, 2000-01-01)
// must not date frames and events 26 years back; a synchronized camera's
// time, a few hundred ms from our arrival-based estimate, is used as is.
func TestFrameTimeUnsetCameraClock(t *testing.T) {
	local := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	factory := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	if got, rej := frameTime("camera", local, factory, true); got != local || !rej {
		t.Errorf("unset camera clock: time %v rejected %v, want the local %v, rejected", time.UnixMilli(got).UTC(), rej, time.UnixMilli(local).UTC())
	}
	if got, rej := frameTime("camera", local, local-2*time.Hour.Milliseconds(), true); got != local || !rej {
		t.Errorf("camera clock 2h off: time %d rejected %v", got, rej)
	}
	if got, rej := frameTime("camera", local, local-300, true); got != local-300 || rej {
		t.Errorf("synchronized camera: time %d rejected %v, want its NTP %d", got, rej, local-300)
	}
	if got, _ := frameTime("camera", local, 0, false); got != local {
		t.Errorf("before the first sender report: %d, want local", got)
	}
	if got, rej := frameTime("local", local, local-300, true); got != local || rej {
		t.Errorf("frame_clock local: %d, want local", got)
	}
}

// TestLocalClockFastCamera: a camera whose RTP clock runs 0.1% fast (a
// cheap oscillator; 100-1000 ppm is common) must not carry frame times
// into the future over a long session: a frame is never captured after it
// arrived. After a day of 25 fps the drift would be 86 s.
func TestLocalClockFastCamera(t *testing.T) {
	c := localClock{rate: 90000}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	const latency = 50 // ms from capture to arrival
	var worst int64
	for i := int64(0); i <= 24*3600*25; i += 25 { // one frame a second for a day
		arrival := start + i*40 + latency
		pts := i * 3600 * 1001 / 1000 // 3600 ticks a frame at 90 kHz, 0.1% fast
		got := c.at(pts, arrival)
		worst = max(worst, got-arrival)
	}
	if worst > 0 {
		t.Fatalf("frame time up to %v after its arrival", time.Duration(worst)*time.Millisecond)
	}
}
