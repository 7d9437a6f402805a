package rtsp_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/rtsp/decode"
	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
)

// BenchmarkCameraSecond measures the CPU work of one camera-second on one
// core: 25 decoded 640x480 H.264 frames, 5 of them scaled to the model
// input and run through the test model (one session, one thread). One op
// is one camera-second, so cameras/core = 1e9 / ns/op. RTP handling and
// Kafka are not included (see the README for the end-to-end numbers).
func BenchmarkCameraSecond(b *testing.B) {
	lib := rtsptest.NeedRuntime(b)
	if err := detect.Init(lib); err != nil {
		b.Fatal(err)
	}
	cfg := detect.DefaultConfig()
	cfg.Model = rtsptest.ModelPath(b)
	cfg.Sessions = 1
	det, err := detect.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer det.Close()
	scene := rtsptest.DefaultScene()
	aus, err := rtsptest.Encode(context.Background(), scene, rtsptest.H264)
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, len(aus))
	for i, au := range aus {
		for _, n := range au {
			payloads[i] = append(payloads[i], 0, 0, 0, 1)
			payloads[i] = append(payloads[i], n...)
		}
	}
	dec, err := decode.New(decode.H264, decode.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	g := det.Geometry(scene.W, scene.H)
	rgb := make([]byte, 3*g.W*g.H)
	const fps, sample = 25, 5
	frame := 0
	dets := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		for f := 0; f < fps; f++ {
			if _, err := dec.Decode(payloads[frame%len(payloads)]); err != nil {
				b.Fatal(err)
			}
			frame++
			if f%(fps/sample) != 0 {
				continue
			}
			if err := dec.RGB(rgb, g.W, g.H, 3*g.W); err != nil {
				b.Fatal(err)
			}
			d, _, err := det.Detect(context.Background(), rgb, g)
			if err != nil {
				b.Fatal(err)
			}
			dets += len(d)
		}
	}
	b.StopTimer()
	cpu := (cpuTime() - cpu0).Seconds()
	if dets < b.N*sample/2 {
		b.Fatalf("only %d detections in %d sampled frames", dets, b.N*sample)
	}
	// Per core: divided by the CPU time the process used, not wall time,
	// so that other load on a shared machine does not count against us.
	b.ReportMetric(float64(b.N)/cpu, "cameras/core")
	b.ReportMetric(float64(b.N*fps)/cpu, "decoded-frames/cpu-s")
	b.ReportMetric(float64(b.N*sample)/cpu, "inferences/cpu-s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cameras/wall-s")
}

// cpuTime is the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
