package bench

import (
	"context"
	"fmt"
	"net"
	"net/url"
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

	"github.com/wardstream/wardstream/internal/config"
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

// syntheticCameras runs the relays and one ffmpeg publisher per camera.
type syntheticCameras struct {
	relays []*cameraRelay
	ids    []string
	urls   map[string]string
	procs  []*exec.Cmd
}

// camTarget is one camera to synthesize: its id and the relay address and
// path its URL names.
type camTarget struct {
	id, addr, path string
}

// startSyntheticCameras starts n cameras at fps on a relay of their own;
// their ids are runID-cam-NN. logDir gets ffmpeg's logs.
func startSyntheticCameras(ctx context.Context, runID string, n, fps int, logDir string) (*syntheticCameras, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var ts []camTarget
	for i := range n {
		id := fmt.Sprintf("%s-cam-%02d", runID, i)
		ts = append(ts, camTarget{id: id, addr: addr, path: id})
	}
	return startCameras(ctx, ts, fps, logDir)
}

// startCameras serves each target: a relay per distinct address (which
// must be free) and an ffmpeg publisher per camera.
func startCameras(ctx context.Context, ts []camTarget, fps int, logDir string) (*syntheticCameras, error) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("synthetic cameras need ffmpeg (apt-get install ffmpeg): %w", err)
	}
	sc := &syntheticCameras{urls: map[string]string{}}
	relays := map[string]*cameraRelay{}
	byID := map[string]*cameraRelay{}
	for _, t := range ts {
		r := relays[t.addr]
		if r == nil {
			if r, err = startCameraRelay(t.addr); err != nil {
				sc.stop()
				return nil, err
			}
			relays[t.addr] = r
			sc.relays = append(sc.relays, r)
		}
		byID[t.id] = r
	}
	for i, t := range ts {
		url := "rtsp://" + t.addr + "/" + cleanPath(t.path)
		sc.ids = append(sc.ids, t.id)
		sc.urls[t.id] = url
		// A red box walking across a dark room, a different pace and
		// height per camera.
		src := fmt.Sprintf("color=c=0x303030:s=640x480:r=%d,drawbox=x='mod(t*%d\\,520)':y=%d:w=110:h=200:color=red:t=fill", fps, 60+10*i, 100+(i%4)*40)
		cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", src,
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", fmt.Sprint(fps), "-pix_fmt", "yuv420p",
			"-f", "rtsp", "-rtsp_transport", "tcp", url)
		if lf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("camera-%d.log", i))); err == nil {
			cmd.Stdout, cmd.Stderr = lf, lf
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			sc.stop()
			return nil, fmt.Errorf("starting ffmpeg for camera %s: %w", t.id, err)
		}
		sc.procs = append(sc.procs, cmd)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, t := range ts {
		for !byID[t.id].ready(t.path) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				sc.stop()
				return nil, fmt.Errorf("synthetic camera %s did not start publishing within 20s (see %s)", t.id, logDir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return sc, nil
}

// URL is the RTSP URL of camera id.
func (s *syntheticCameras) URL(id string) string { return s.urls[id] }

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
	for _, r := range s.relays {
		r.close()
	}
}

// TopologyCameras serves synthetic streams for the cameras of the
// topology's rtsp section whose URLs point at this machine (demo mode:
// `make demo` has no real camera). Cameras elsewhere are left alone.
func TopologyCameras(ctx context.Context, root *config.Root, fps int, logDir string) (*syntheticCameras, []string, error) {
	var sec struct {
		Cameras []struct {
			ID  string `yaml:"id"`
			URL string `yaml:"url"`
		} `yaml:"cameras"`
	}
	if root.Connectors.RTSP.Kind == 0 {
		return nil, nil, nil
	}
	if err := root.Connectors.RTSP.Decode(&sec); err != nil {
		return nil, nil, fmt.Errorf("reading connectors.rtsp.cameras: %w", err)
	}
	var ts []camTarget
	var ids []string
	for _, c := range sec.Cameras {
		u, err := url.Parse(c.URL)
		if err != nil || u.Scheme != "rtsp" {
			continue
		}
		h := u.Hostname()
		if h != "127.0.0.1" && h != "localhost" && h != "::1" {
			continue
		}
		port := u.Port()
		if port == "" {
			port = "554"
		}
		ts = append(ts, camTarget{id: c.ID, addr: net.JoinHostPort(h, port), path: u.Path})
		ids = append(ids, c.ID)
	}
	if len(ts) == 0 {
		return nil, nil, nil
	}
	sc, err := startCameras(ctx, ts, fps, logDir)
	return sc, ids, err
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
