package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"gopkg.in/yaml.v3"
)

// Cameras are synthetic: ffmpeg encodes a moving red rectangle (what the
// rtsp connector's colorbox test model detects as "person") as H.264 and
// publishes it, one stream per camera, to a small RTSP relay served here;
// the rtsp role reads the streams like any camera's.

// cameraRelay is an RTSP server relaying each published path to its readers.
type cameraRelay struct {
	srv *gortsplib.Server

	mu      sync.RWMutex
	streams map[string]*relayPath
}

type relayPath struct {
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
}

func cleanPath(p string) string { return strings.Trim(p, "/") }

// startCameraRelay serves RTSP (TCP transport) on addr.
func startCameraRelay(addr string) (*cameraRelay, error) {
	r := &cameraRelay{streams: map[string]*relayPath{}}
	r.srv = &gortsplib.Server{Handler: r, RTSPAddress: addr}
	if err := r.srv.Start(); err != nil {
		return nil, fmt.Errorf("starting the synthetic camera relay on %s: %w", addr, err)
	}
	return r, nil
}

func (r *cameraRelay) close() { r.srv.Close() }

// ready reports whether path has a publisher.
func (r *cameraRelay) ready(path string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.streams[cleanPath(path)] != nil
}

// OnSessionClose drops a path whose publisher went away.
func (r *cameraRelay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, s := range r.streams {
		if s.publisher == ctx.Session {
			s.stream.Close()
			delete(r.streams, p)
		}
	}
}

// OnDescribe serves a published path's description to a reader.
func (r *cameraRelay) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.streams[cleanPath(ctx.Path)]
	if s == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, s.stream, nil
}

// OnAnnounce accepts a publisher (ffmpeg) for a path.
func (r *cameraRelay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := cleanPath(ctx.Path)
	if old := r.streams[p]; old != nil {
		old.stream.Close()
		old.publisher.Close()
	}
	st := &gortsplib.ServerStream{Server: r.srv, Desc: ctx.Description}
	if err := st.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, fmt.Errorf("camera %s: %w", p, err)
	}
	r.streams[p] = &relayPath{stream: st, publisher: ctx.Session}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSetup serves publishers (no stream) and readers (the path's stream).
func (r *cameraRelay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.streams[cleanPath(ctx.Path)]
	if s == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, s.stream, nil
}

// OnPlay lets a reader play.
func (r *cameraRelay) OnPlay(_ *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord relays the publisher's packets to the path's readers.
func (r *cameraRelay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	r.mu.RLock()
	s := r.streams[cleanPath(ctx.Path)]
	r.mu.RUnlock()
	if s == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = s.stream.WritePacketRTP(m, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// syntheticCameras runs the relay and one ffmpeg publisher per camera.
type syntheticCameras struct {
	relay *cameraRelay
	addr  string
	ids   []string
	procs []*exec.Cmd
}

// startSyntheticCameras starts n cameras at fps; their ids are
// runID-cam-NN and their URLs rtsp://addr/<id>. logDir gets ffmpeg's logs.
func startSyntheticCameras(ctx context.Context, runID string, n, fps int, logDir string) (*syntheticCameras, error) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("synthetic cameras need ffmpeg (apt-get install ffmpeg): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	relay, err := startCameraRelay(addr)
	if err != nil {
		return nil, err
	}
	sc := &syntheticCameras{relay: relay, addr: addr}
	for i := range n {
		id := fmt.Sprintf("%s-cam-%02d", runID, i)
		sc.ids = append(sc.ids, id)
		// A red box walking across a dark room, a different pace and
		// height per camera.
		src := fmt.Sprintf("color=c=0x303030:s=640x480:r=%d,drawbox=x='mod(t*%d\\,520)':y=%d:w=110:h=200:color=red:t=fill", fps, 60+10*i, 100+(i%4)*40)
		cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", src,
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", fmt.Sprint(fps), "-pix_fmt", "yuv420p",
			"-f", "rtsp", "-rtsp_transport", "tcp", sc.URL(id))
		lf, err := os.Create(filepath.Join(logDir, "camera-"+fmt.Sprint(i)+".log"))
		if err == nil {
			cmd.Stdout, cmd.Stderr = lf, lf
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			sc.stop()
			return nil, fmt.Errorf("starting ffmpeg for camera %s: %w", id, err)
		}
		sc.procs = append(sc.procs, cmd)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range sc.ids {
		for !relay.ready(id) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				sc.stop()
				return nil, fmt.Errorf("synthetic camera %s did not start publishing within 20s (see %s)", id, logDir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return sc, nil
}

// URL is the RTSP URL of camera id.
func (s *syntheticCameras) URL(id string) string { return "rtsp://" + s.addr + "/" + id }

func (s *syntheticCameras) stop() {
	for _, c := range s.procs {
		if c.Process != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range s.procs {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	s.relay.close()
}

// cameraOverrides lists the synthetic cameras in the rtsp role's section.
func (h *harness) cameraOverrides() []override {
	if h.cams == nil {
		return nil
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for i, id := range h.cams.ids {
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range [][2]string{{"id", id}, {"url", h.cams.URL(id)}, {"tenant", h.tenant}, {"ward", "ward-1"},
			{"zone", fmt.Sprintf("room-%d", i+1)}, {"transport", "tcp"}} {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: kv[0]}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kv[1]})
		}
		seq.Content = append(seq.Content, m)
	}
	return []override{{path: []string{"connectors", "rtsp", "cameras"}, node: seq}}
}
