package rtsptest

// Helpers for tests that run the rtsp role on a synthetic camera and check
// its detections against the scene's true box: connectors/rtsp's own tests
// and the cross-role integration tests in cmd/wardstream use them.

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// RepoRoot is the directory of the go.mod above the test's working
// directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// NeedRuntime skips the test unless ffmpeg and the ONNX Runtime library
// exist, and returns the library's path ($ONNXRUNTIME_LIB, else the
// repository's detect.DefaultLibrary).
func NeedRuntime(t testing.TB) string {
	t.Helper()
	if !Available() {
		t.Skip("ffmpeg not on PATH")
	}
	lib := os.Getenv(detect.EnvLibrary)
	if lib == "" {
		lib = filepath.Join(RepoRoot(t), detect.DefaultLibrary)
	}
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("onnxruntime library not installed (bash deploy/local/onnxruntime.sh): %v", err)
	}
	return lib
}

// ModelPath is the test detection model (connectors/rtsp/testmodel): it
// reports a pure red box, the scene's, as a "person".
func ModelPath(t testing.TB) string {
	return filepath.Join(RepoRoot(t), "connectors/rtsp/testmodel/colorbox.onnx")
}

var (
	encMu    sync.Mutex
	encCache = map[Codec][][][]byte{}
)

// Encoded returns the default scene encoded with c, encoding it once per
// test binary.
func Encoded(t testing.TB, c Codec) [][][]byte {
	t.Helper()
	encMu.Lock()
	defer encMu.Unlock()
	aus, ok := encCache[c]
	if !ok {
		var err error
		aus, err = Encode(context.Background(), DefaultScene(), c)
		if err != nil {
			t.Fatal(err)
		}
		encCache[c] = aus
	}
	return aus
}

// Camera starts a synthetic camera streaming the default scene over TCP;
// it is closed when the test ends.
func Camera(t testing.TB, c Codec) *Server {
	t.Helper()
	srv, err := Start(DefaultScene(), c, Encoded(t, c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// sceneBox is the normalized box the scene shows in the given frame.
func sceneBox(srv *Server, frame int) detect.Box {
	s := srv.Scene
	x, y := s.Box(frame)
	return detect.Box{X: float32(x) / float32(s.W), Y: float32(y) / float32(s.H), W: float32(s.BoxW) / float32(s.W), H: float32(s.BoxH) / float32(s.H)}
}

// bestIoU is the IoU of got with the true box of the scene frame at tMs or
// a neighbour: a frame's time is the receiver's clock at the stream's start
// plus the RTP offset, so on a loaded machine (CI under -race) it can lag
// the scene by one frame (40 ms at 25 fps), which alone gives IoU 0.5 for a
// perfect detection. A wrong box misses all three.
func bestIoU(srv *Server, got detect.Box, tMs int64) (float32, detect.Box) {
	f := srv.FrameAt(tMs)
	best, bestBox := float32(-1), detect.Box{}
	for _, k := range []int{f, f - 1, f + 1} {
		if k < 0 {
			continue
		}
		b := sceneBox(srv, k)
		if iou := detect.IoU(got, b); iou > best {
			best, bestBox = iou, b
		}
	}
	return best, bestBox
}

// CheckBoxes asserts that every frame of camera camID has exactly one
// person whose box matches the scene's true box (of its frame or a
// neighbour, see bestIoU) with IoU >= 0.5 and confidence > 0.8, and
// returns the mean IoU. It fails the test when no frame is camID's.
func CheckBoxes(t testing.TB, srv *Server, frames []*pb.FrameDetections, camID string) float64 {
	t.Helper()
	var sum float64
	n := 0
	for _, fd := range frames {
		if fd.CameraId != camID {
			continue
		}
		if len(fd.Detections) != 1 {
			t.Errorf("frame %d at %d: %d detections, want 1: %v", fd.Sequence, fd.FrameTimeMs, len(fd.Detections), fd.Detections)
			continue
		}
		d := fd.Detections[0]
		got := detect.Box{X: d.Box.X, Y: d.Box.Y, W: d.Box.W, H: d.Box.H}
		iou, want := bestIoU(srv, got, fd.FrameTimeMs)
		if d.ClassName != "person" || iou < 0.5 || d.Confidence <= 0.8 {
			t.Errorf("frame %d at %d (scene frame %d): %s %.2f box %+v, true box %+v, IoU %.2f",
				fd.Sequence, fd.FrameTimeMs, srv.FrameAt(fd.FrameTimeMs), d.ClassName, d.Confidence, got, want, iou)
		}
		sum += float64(iou)
		n++
	}
	if n == 0 {
		t.Fatalf("no frames from %s", camID)
	}
	return sum / float64(n)
}
