package rtsp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/events"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// baseConfig is the role config for the given cameras with the test model.
func baseConfig(t testing.TB, lib string, cams ...rtsp.Camera) rtsp.Config {
	cfg := rtsp.DefaultConfig()
	cfg.ONNXRuntimeLib = lib
	cfg.Detector.Model = rtsptest.ModelPath(t)
	cfg.Detector.Sessions = 2
	cfg.Events.OccupancyStable = config.Duration(time.Second)
	cfg.ReconnectMin = config.Duration(100 * time.Millisecond)
	cfg.ReconnectMax = config.Duration(time.Second)
	cfg.ReadTimeout = config.Duration(2 * time.Second)
	cfg.Cameras = cams
	return cfg
}

type runResult struct {
	frames []*pb.FrameDetections
	events []*pb.VideoEvent
}

// runRole runs the role against a kfake cluster until cond holds or the
// timeout passes, and returns what it produced.
func runRole(t *testing.T, cfg rtsp.Config, reg prometheus.Registerer, timeout time.Duration, cond func(runResult) bool) runResult {
	t.Helper()
	cluster := newCluster(t)
	defer cluster.Close()
	return runRoleOn(t, cluster.ListenAddrs(), cfg, reg, timeout, cond)
}

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.Detections, topics.VideoEvents, topics.CameraControls))
	if err != nil {
		t.Fatal(err)
	}
	return cluster
}

// runRoleOn is runRole on the given brokers (kfake or real, topics named
// with cfg.TopicPrefix); what it returns is everything on the topics,
// earlier runs' records included.
func runRoleOn(t *testing.T, brokers []string, cfg rtsp.Config, reg prometheus.Registerer, timeout time.Duration, cond func(runResult) bool) runResult {
	t.Helper()
	root := config.Default()
	root.Kafka.Brokers = brokers
	root.DrainTimeout = config.Duration(5 * time.Second)
	conn, err := rtsp.New(&root, cfg, rtsp.WithRegisterer(reg), rtsp.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- conn.Run(ctx) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(cfg.TopicPrefix+topics.Detections, cfg.TopicPrefix+topics.VideoEvents))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var res runResult
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !cond(res) {
		pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case cfg.TopicPrefix + topics.Detections:
				var fd pb.FrameDetections
				if err := codec.Unmarshal(r.Value, &fd); err != nil {
					t.Errorf("bad detections record: %v", err)
				}
				if string(r.Key) != fd.CameraId {
					t.Errorf("key %q, camera %q", r.Key, fd.CameraId)
				}
				res.frames = append(res.frames, &fd)
			case cfg.TopicPrefix + topics.VideoEvents:
				var ev pb.VideoEvent
				if err := codec.Unmarshal(r.Value, &ev); err != nil {
					t.Errorf("bad event record: %v", err)
				}
				res.events = append(res.events, &ev)
			}
		})
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			if r, ok := reg.(*prometheus.Registry); ok {
				for _, n := range []string{"decoded", "sampled", "dropped"} {
					t.Logf("%s: %v", n, metricSum(t, r, "wardstream_rtsp_frames_"+n+"_total"))
				}
				t.Logf("produced %v errors %v", metricSum(t, r, "wardstream_rtsp_records_produced_total"), metricSum(t, r, "wardstream_rtsp_produce_errors_total"))
			}
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	return res
}

func TestDetectionsPerCodec(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	for _, c := range []rtsptest.Codec{rtsptest.H264, rtsptest.H265, rtsptest.MJPEG} {
		t.Run(string(c), func(t *testing.T) {
			srv := rtsptest.Camera(t, c)
			cfg := baseConfig(t, lib, rtsp.Camera{ID: "cam-" + string(c), URL: srv.URL, Tenant: "t1", Zone: "ward-1/room-1"})
			reg := prometheus.NewRegistry()
			res := runRole(t, cfg, reg, 20*time.Second, func(r runResult) bool { return len(r.frames) >= 15 })
			if len(res.frames) < 15 {
				t.Fatalf("got %d frames in 20s at 5 fps", len(res.frames))
			}
			mean := rtsptest.CheckBoxes(t, srv, res.frames, "cam-"+string(c))
			t.Logf("%s: %d frames, mean IoU %.3f", c, len(res.frames), mean)
			for i, fd := range res.frames {
				if fd.InferenceMs <= 0 || fd.ModelName != "colorbox" || fd.Width != 640 || fd.Height != 480 || fd.Meta.GetTenant() != "t1" {
					t.Fatalf("frame record %d: %+v", i, fd)
				}
				if i > 0 {
					// Never faster than 5 fps; exactly 5 fps unless the race
					// detector makes decoding slower than real time.
					d := fd.FrameTimeMs - res.frames[i-1].FrameTimeMs
					if d < 180 || (!raceEnabled && d > 220) {
						t.Errorf("frames %d,%d are %d ms apart, want ~200 (5 fps)", i-1, i, d)
					}
				}
				if age := time.Since(time.UnixMilli(fd.FrameTimeMs)); age < -time.Second || age > 30*time.Second {
					t.Errorf("frame time %d is %v from now", fd.FrameTimeMs, age)
				}
			}
			// Every source frame is decoded (25 fps), one in five sampled.
			if dec, smp := metricSum(t, reg, "wardstream_rtsp_frames_decoded_total"), metricSum(t, reg, "wardstream_rtsp_frames_sampled_total"); dec < 4*smp {
				t.Errorf("decoded %v frames for %v sampled, want ~5x", dec, smp)
			}
			if !hasEvent(res.events, pb.VideoEventType_PERSON_DETECTED) {
				t.Errorf("no PERSON_DETECTED in %d events", len(res.events))
			}
		})
	}
}

func hasEvent(evs []*pb.VideoEvent, typ pb.VideoEventType) bool {
	for _, e := range evs {
		if e.EventType == typ {
			return true
		}
	}
	return false
}

// metricSum sums a counter family over its labels.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

func TestEventsAndRestrictedArea(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	srv := rtsptest.Camera(t, rtsptest.H264)
	// The box's feet pass through the bottom-right quarter on every loop.
	cam := rtsp.Camera{ID: "cam-r", URL: srv.URL, Tenant: "t1", Zone: "ward-1/room-2",
		Areas: []events.Area{{Name: "med-cabinet", Zone: "ward-1/med-area", Restricted: true,
			Polygon: [][2]float64{{0.5, 0.6}, {1, 0.6}, {1, 1}, {0.5, 1}}}}}
	cfg := baseConfig(t, lib, cam)
	res := runRole(t, cfg, nil, 20*time.Second, func(r runResult) bool {
		return hasEvent(r.events, pb.VideoEventType_UNAUTHORIZED_ACCESS) && hasEvent(r.events, pb.VideoEventType_OCCUPANCY_CHANGED)
	})
	for _, typ := range []pb.VideoEventType{pb.VideoEventType_PERSON_DETECTED, pb.VideoEventType_UNAUTHORIZED_ACCESS, pb.VideoEventType_OCCUPANCY_CHANGED} {
		if !hasEvent(res.events, typ) {
			t.Errorf("no %v in %d events", typ, len(res.events))
		}
	}
	// Debounce: the person is always visible, so exactly one PERSON_DETECTED.
	n := 0
	for _, e := range res.events {
		if e.EventType == pb.VideoEventType_PERSON_DETECTED {
			n++
		}
		if e.EventType == pb.VideoEventType_UNAUTHORIZED_ACCESS && e.Zone != "ward-1/med-area" {
			t.Errorf("unauthorized access zone %q", e.Zone)
		}
	}
	if n != 1 {
		t.Errorf("%d PERSON_DETECTED events for one person always in view", n)
	}
}

// TestDeadCameraDoesNotStallOthers runs a healthy camera next to one that
// refuses connections and one that stalls mid-stream.
func TestDeadCameraDoesNotStallOthers(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	good := rtsptest.Camera(t, rtsptest.H264)
	stalled := rtsptest.Camera(t, rtsptest.H264)
	cfg := baseConfig(t, lib,
		rtsp.Camera{ID: "good", URL: good.URL, Tenant: "t1"},
		rtsp.Camera{ID: "dead", URL: "rtsp://127.0.0.1:1/nothing", Tenant: "t1"},
		rtsp.Camera{ID: "stalled", URL: stalled.URL, Tenant: "t1"},
	)
	reg := prometheus.NewRegistry()
	go func() {
		time.Sleep(2 * time.Second)
		stalled.Pause(true)
	}()
	res := runRole(t, cfg, reg, 12*time.Second, func(r runResult) bool { return false })
	count := map[string]int{}
	for _, fd := range res.frames {
		count[fd.CameraId]++
	}
	// 12 s at 5 fps: the good camera keeps going while the others fail
	// (lenient on count, the shared test machine may starve us; strict on
	// gaps: no stall while the other cameras time out and reconnect).
	if count["good"] < 25 {
		t.Errorf("good camera produced %d frames in 12s (want >= 25): %v", count["good"], count)
	}
	var last int64
	for _, fd := range res.frames {
		if fd.CameraId != "good" {
			continue
		}
		if last != 0 && fd.FrameTimeMs-last > 2500 && !raceEnabled {
			t.Errorf("good camera stalled %d ms (at %d)", fd.FrameTimeMs-last, fd.FrameTimeMs)
		}
		last = fd.FrameTimeMs
	}
	if count["dead"] != 0 {
		t.Errorf("dead camera produced frames: %v", count)
	}
	if count["stalled"] == 0 || count["stalled"] > 20 {
		t.Errorf("stalled camera: %d frames (want a few before the stall)", count["stalled"])
	}
	fails := metricSum(t, reg, "wardstream_rtsp_session_failures_total")
	if fails < 2 {
		t.Errorf("session failures %v, want reconnect attempts for the dead and stalled cameras", fails)
	}
	rtsptest.CheckBoxes(t, good, res.frames, "good")

	// The per-camera series say which camera is the problem.
	cases := []struct {
		camera                     string
		decoded, failures, seenAgo bool // want > 0 / a last frame within the run
	}{
		{"good", true, false, true},
		{"dead", false, true, false},
		{"stalled", true, true, true},
	}
	for _, c := range cases {
		t.Run(c.camera, func(t *testing.T) {
			dec := cameraMetric(t, reg, "wardstream_rtsp_camera_frames_decoded_total", c.camera)
			fail := cameraMetric(t, reg, "wardstream_rtsp_camera_session_failures_total", c.camera)
			last := cameraMetric(t, reg, "wardstream_rtsp_camera_last_frame_timestamp_seconds", c.camera)
			up := cameraMetric(t, reg, "wardstream_rtsp_camera_up", c.camera)
			if (dec > 0) != c.decoded {
				t.Errorf("frames decoded %v, want > 0: %v", dec, c.decoded)
			}
			if (fail > 0) != c.failures {
				t.Errorf("session failures %v, want > 0: %v", fail, c.failures)
			}
			if age := time.Since(time.Unix(int64(last), 0)); (last > 0 && age < time.Minute) != c.seenAgo {
				t.Errorf("last frame at %v (%v ago), want one within the run: %v", last, age, c.seenAgo)
			}
			if up != 0 {
				t.Errorf("up %v after the role stopped", up)
			}
		})
	}
	if n := metricSum(t, reg, "wardstream_rtsp_camera_frames_decoded_total"); n != metricSum(t, reg, "wardstream_rtsp_frames_decoded_total") {
		t.Errorf("per-camera decoded frames sum to %v, the role's counter says %v", n, metricSum(t, reg, "wardstream_rtsp_frames_decoded_total"))
	}
}

// cameraMetric returns the value of name's series for camera (counter or
// gauge); the series must exist.
func cameraMetric(t *testing.T, reg *prometheus.Registry, name, camera string) float64 {
	t.Helper()
	v, ok := testutil.MetricValue(t, reg, name, "camera", camera)
	if !ok {
		t.Fatalf("no %s series for camera %q", name, camera)
	}
	return v
}

func TestCredentialsNeverLogged(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	var buf syncBuffer
	cfg := baseConfig(t, lib, rtsp.Camera{ID: "cam", URL: "rtsp://127.0.0.1:1/x", Username: "admin", PasswordEnv: "CAM_PW"})
	root := config.Default()
	root.Kafka.Brokers = []string{"127.0.0.1:1"}
	conn, err := rtsp.New(&root, cfg, rtsp.WithLogger(newTextLogger(&buf)),
		rtsp.WithGetenv(func(k string) string {
			if k == "CAM_PW" {
				return "s3cr3t-pw"
			}
			return ""
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_ = conn.Run(ctx)
	out := buf.String()
	if !containsStr(out, "camera session ended") {
		t.Fatalf("expected reconnect logs, got %q", out)
	}
	if containsStr(out, "s3cr3t-pw") {
		t.Fatalf("password in logs: %s", out)
	}
}

func TestControlsBoostSampleRate(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	srv := rtsptest.Camera(t, rtsptest.H264)
	cfg := baseConfig(t, lib, rtsp.Camera{ID: "cam-b", URL: srv.URL, Tenant: "t1"})
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.Detections, topics.VideoEvents, topics.CameraControls))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	root := config.Default()
	root.Kafka.Brokers = cluster.ListenAddrs()
	// The boost is in the topic before the role starts: it must be read back.
	prod, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	now := time.Now()
	v, _ := codec.Marshal(&pb.VideoEvent{Meta: &pb.Meta{Tenant: "t1", EventId: "boost-1"}, CameraId: "cam-b",
		EventType: pb.VideoEventType_SAMPLE_RATE_BOOST, SampleFps: 12.5, StartTimeMs: now.UnixMilli(), EndTimeMs: now.Add(time.Hour).UnixMilli()})
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topics.CameraControls, Key: []byte("cam-b"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	conn, err := rtsp.New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- conn.Run(ctx) }()
	cons, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topics.Detections))
	defer cons.Close()
	var times []int64
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(times) < 40 {
		pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			var fd pb.FrameDetections
			_ = codec.Unmarshal(r.Value, &fd)
			times = append(times, fd.FrameTimeMs)
		})
		pcancel()
	}
	cancel()
	<-errc
	if len(times) < 40 {
		t.Fatalf("%d frames", len(times))
	}
	// Over the last 20 frames the interval is ~80 ms (12.5 fps), not 200.
	span := times[len(times)-1] - times[len(times)-21]
	maxIv := 110.0
	if raceEnabled {
		maxIv = 180 // decoding under -race may not keep up; still faster than 200
	}
	if iv := float64(span) / 20; iv < 60 || iv > maxIv {
		t.Fatalf("mean interval %.0f ms under a 12.5 fps boost", iv)
	}
	_ = fmt.Sprint
}

// TestMotionGating streams a still scene: with motion gating most sampled
// frames skip inference, yet one inference per motion_max_skip still runs
// and the person is still reported.
func TestMotionGating(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	scene := rtsptest.DefaultScene()
	scene.Frames = 1 // the box never moves
	aus, err := rtsptest.Encode(context.Background(), scene, rtsptest.H264)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rtsptest.Start(scene, rtsptest.H264, aus)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := baseConfig(t, lib, rtsp.Camera{ID: "still", URL: srv.URL, Tenant: "t1"})
	cfg.Motion = true
	cfg.MotionMaxSkip = config.Duration(time.Second)
	reg := prometheus.NewRegistry()
	res := runRole(t, cfg, reg, 5*time.Second, func(runResult) bool { return false })
	sampled := metricSum(t, reg, "wardstream_rtsp_frames_sampled_total")
	skipped := metricSum(t, reg, "wardstream_rtsp_frames_motion_skipped_total")
	if skipped < sampled/2 || len(res.frames) == 0 {
		t.Fatalf("sampled %v, skipped %v, inferred %d: want most skipped", sampled, skipped, len(res.frames))
	}
	// At least one inference per second of stream (max skip 1s).
	if len(res.frames) < 3 {
		t.Fatalf("%d inferences in ~5s with motion_max_skip 1s", len(res.frames))
	}
	if !hasEvent(res.events, pb.VideoEventType_PERSON_DETECTED) {
		t.Fatal("no PERSON_DETECTED for a still person")
	}
	rtsptest.CheckBoxes(t, srv, res.frames, "still")
}

// TestUDPTransport reads a camera over RTP/UDP.
func TestUDPTransport(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	aus := rtsptest.Encoded(t, rtsptest.H264)
	srv, err := rtsptest.StartWith(rtsptest.DefaultScene(), rtsptest.H264, aus, true)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := baseConfig(t, lib, rtsp.Camera{ID: "udp", URL: srv.URL, Tenant: "t1", Transport: "udp"})
	res := runRole(t, cfg, nil, 15*time.Second, func(r runResult) bool { return len(r.frames) >= 10 })
	if len(res.frames) < 10 {
		t.Fatalf("%d frames over UDP", len(res.frames))
	}
	rtsptest.CheckBoxes(t, srv, res.frames, "udp")
}
