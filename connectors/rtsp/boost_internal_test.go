package rtsp

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestOverlappingBoostsKeepLongest: two emergencies in one zone
// (a patient's and a device's) each send SAMPLE_RATE_BOOST for the zone's
// camera; the correlation group emits them in the order it processes the
// alerts (different subjects, different partitions), so the one that ends
// first may arrive last. "raises a camera's detection rate until its end
// time": the camera must stay boosted until the later end time.
func TestOverlappingBoostsKeepLongest(t *testing.T) {
	c := &Connector{cfg: DefaultConfig(), m: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cam := &camera{c: c, fps: 5}
	c.cams = map[string]*camera{"cam-1": cam}
	now := time.Now().UnixMilli()
	boost := func(id string, start, end int64) {
		b, err := codec.Marshal(&pb.VideoEvent{Meta: &pb.Meta{EventId: id}, CameraId: "cam-1", EventType: pb.VideoEventType_SAMPLE_RATE_BOOST,
			SampleFps: 15, StartTimeMs: start, EndTimeMs: end})
		if err != nil {
			t.Fatal(err)
		}
		c.applyControl(b)
	}
	boost("boost|a-patient|cam-1", now, now+30*60_000)          // emergency opened now
	boost("boost|a-device|cam-1", now-20*60_000, now+10*60_000) // opened 20 min ago, processed later
	if got := cam.sampleFPS(now + 15*60_000); got != 15 {
		t.Fatalf("15 min from now the camera samples at %v fps; the patient's emergency boost (15 fps) lasts 30 min", got)
	}
}

// TestBoostsOverlap: while boosts overlap the camera samples at the highest
// running rate; each one lasts until its own end; a control read again (the
// lookback after a restart) changes nothing; ended boosts are forgotten.
func TestBoostsOverlap(t *testing.T) {
	cam := &camera{fps: 5}
	const now = int64(1_000_000)
	cam.setBoost(10, now+30_000, now) // long, lower rate
	cam.setBoost(20, now+10_000, now) // short, higher rate
	cam.setBoost(10, now+30_000, now) // read again
	cam.setBoost(8, now+20_000, now)  // outlasted by the 10 fps one: dropped
	cam.setBoost(30, now-1, now)      // already over: ignored
	for _, c := range []struct {
		at   int64
		want float64
	}{{now, 20}, {now + 9_999, 20}, {now + 10_000, 10}, {now + 29_999, 10}, {now + 30_000, 5}} {
		if got := cam.sampleFPS(c.at); got != c.want {
			t.Errorf("at +%d ms: %v fps, want %v", c.at-now, got, c.want)
		}
	}
	if len(cam.boosts) != 2 {
		t.Fatalf("boosts kept %v, want the 10 and 20 fps ones", cam.boosts)
	}
	cam.setBoost(15, now+40_000, now+35_000) // the others have ended
	if len(cam.boosts) != 1 || cam.sampleFPS(now+35_000) != 15 {
		t.Fatalf("boosts %v after the others ended", cam.boosts)
	}
}
