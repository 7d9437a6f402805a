package rtsp_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
)

// TestLoadCameras runs WARDSTREAM_RTSP_LOAD synthetic 25 fps H.264
// cameras (640x480) through the whole role (RTSP, decode, 5 fps
// detection, kfake Kafka) for WARDSTREAM_RTSP_LOAD_SECONDS (20) and
// reports the process CPU per camera, the resulting cameras per core, and
// the frames each camera got through. The synthetic servers and kfake run
// in the same process, so the figure is conservative. Skipped unless the
// env var is set.
func TestLoadCameras(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WARDSTREAM_RTSP_LOAD"))
	if n <= 0 {
		t.Skip("set WARDSTREAM_RTSP_LOAD=<cameras> to run the load test")
	}
	secs := 20
	if v, _ := strconv.Atoi(os.Getenv("WARDSTREAM_RTSP_LOAD_SECONDS")); v > 0 {
		secs = v
	}
	lib := rtsptest.NeedRuntime(t)
	var cams []rtsp.Camera
	for i := 0; i < n; i++ {
		srv := rtsptest.Camera(t, rtsptest.H264)
		cams = append(cams, rtsp.Camera{ID: fmt.Sprintf("load-%02d", i), URL: srv.URL, Tenant: "t1", Zone: "ward-1/room-1"})
	}
	cfg := baseConfig(t, lib, cams...)
	cfg.Detector.Sessions = 0 // one per core
	reg := prometheus.NewRegistry()
	warm := 3 * time.Second
	var cpu0 time.Duration
	var wall0 time.Time
	start := time.Now()
	res := runRole(t, cfg, reg, time.Duration(secs)*time.Second+warm, func(runResult) bool {
		if cpu0 == 0 && time.Since(start) > warm {
			cpu0, wall0 = cpuTime(), time.Now()
		}
		return false
	})
	cpu := (cpuTime() - cpu0).Seconds()
	wall := time.Since(wall0).Seconds()
	per := map[string]int{}
	for _, fd := range res.frames {
		per[fd.CameraId]++
	}
	minFrames := 1 << 30
	for _, c := range cams {
		minFrames = min(minFrames, per[c.ID])
	}
	dropped := metricSum(t, reg, "wardstream_rtsp_frames_dropped_total")
	sampled := metricSum(t, reg, "wardstream_rtsp_frames_sampled_total")
	decoded := metricSum(t, reg, "wardstream_rtsp_frames_decoded_total")
	t.Logf("%d cameras, %.0fs: %.2f CPU-s per wall-s => %.1f cameras/core; decoded %.0f, sampled %.0f, dropped %.0f (%.1f%%), fewest frames from one camera %d",
		n, wall, cpu/wall, float64(n)/(cpu/wall), decoded, sampled, dropped, 100*dropped/max(sampled, 1), minFrames)
	if minFrames == 0 {
		t.Errorf("a camera produced no frames")
	}
}
