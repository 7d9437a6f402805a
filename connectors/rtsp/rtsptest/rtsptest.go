// Package rtsptest serves synthetic RTSP cameras for tests and benchmarks:
// a scene with a moving coloured box is rendered frame by frame, encoded
// by the ffmpeg command-line tool (H.264, H.265 or M-JPEG), and streamed in
// real time by an in-process gortsplib server, looping forever. The
// server stamps frame i with the wall-clock time Epoch + i/FPS (RTP time
// and RTCP sender reports), so a test can tell from a frame time which
// frame, and so which true box position, a detection belongs to.
//
// It needs the ffmpeg binary on PATH ([Available] reports whether it is
// there). It is test support, not part of the connector.
package rtsptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// Codec names the encoding of a synthetic camera.
type Codec string

// Codecs ffmpeg encodes for us.
const (
	H264  Codec = "h264"
	H265  Codec = "h265"
	MJPEG Codec = "mjpeg"
)

// Available reports whether the ffmpeg binary is on PATH.
func Available() bool { _, err := exec.LookPath("ffmpeg"); return err == nil }

// Scene is a moving box on a dark background.
type Scene struct {
	W, H       int
	BoxW, BoxH int
	// Color is the box colour (pure red is "person" for the test model).
	Color [3]byte
	// Frames is the loop length; the box moves back and forth so the loop
	// is seamless. One frame makes a still scene.
	Frames int
	// FPS is the source frame rate.
	FPS int
}

// DefaultScene is 640x480 at 25 fps, an 80x140 red box crossing the frame
// diagonally and back every 4 seconds.
func DefaultScene() Scene {
	return Scene{W: 640, H: 480, BoxW: 80, BoxH: 140, Color: [3]byte{220, 20, 20}, Frames: 100, FPS: 25}
}

// Box returns the box's top-left corner in frame i (any i >= 0).
func (s Scene) Box(i int) (x, y int) {
	half := s.Frames / 2
	if half == 0 {
		return 20, 20 // a one-frame loop is a still scene
	}
	k := i % s.Frames
	if k > half {
		k = s.Frames - k
	}
	f := float64(k) / float64(half) // 0..1..0
	x = 20 + int(math.Round(f*float64(s.W-s.BoxW-40)))
	y = 20 + int(math.Round(f*float64(s.H-s.BoxH-40)))
	return x, y
}

// Render returns frame i as packed RGB24.
func (s Scene) Render(i int) []byte {
	buf := make([]byte, 3*s.W*s.H)
	for y := 0; y < s.H; y++ {
		for x := 0; x < s.W; x++ {
			// A faint gradient so the encoder has texture to code.
			v := byte(40 + (x+y)%32)
			o := 3 * (y*s.W + x)
			buf[o], buf[o+1], buf[o+2] = v, v, v+10
		}
	}
	bx, by := s.Box(i)
	for y := by; y < by+s.BoxH; y++ {
		for x := bx; x < bx+s.BoxW; x++ {
			o := 3 * (y*s.W + x)
			buf[o], buf[o+1], buf[o+2] = s.Color[0], s.Color[1], s.Color[2]
		}
	}
	return buf
}

// Encode renders the scene's loop and encodes it with ffmpeg. It returns
// one access unit per frame: NAL units (without start codes) for H.264
// and H.265, a single JPEG for M-JPEG. Every 25th frame is a random-access
// point and there are no B-frames.
func Encode(ctx context.Context, s Scene, c Codec) ([][][]byte, error) {
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
		"-s", fmt.Sprintf("%dx%d", s.W, s.H), "-r", fmt.Sprint(s.FPS), "-i", "-"}
	switch c {
	case H264:
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-bf", "0", "-g", "25",
			"-pix_fmt", "yuv420p", "-b:v", "1M", "-f", "h264", "-")
	case H265:
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
			"-x265-params", "keyint=25:min-keyint=25:bframes=0:frame-threads=1:pools=none:log-level=error:repeat-headers=1", "-f", "hevc", "-")
	case MJPEG:
		args = append(args, "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "4", "-huffman", "default", "-f", "mjpeg", "-")
	default:
		return nil, fmt.Errorf("rtsptest: unknown codec %q", c)
	}
	var in bytes.Buffer
	for i := 0; i < s.Frames; i++ {
		in.Write(s.Render(i))
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Stdin = &in
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rtsptest: ffmpeg %s: %w: %s", c, err, stderr.String())
	}
	var aus [][][]byte
	if c == MJPEG {
		for _, j := range splitJPEG(out.Bytes()) {
			aus = append(aus, [][]byte{j})
		}
	} else {
		aus = splitAccessUnits(out.Bytes(), c)
	}
	if len(aus) != s.Frames {
		return nil, fmt.Errorf("rtsptest: ffmpeg %s gave %d access units for %d frames", c, len(aus), s.Frames)
	}
	return aus, nil
}

// splitNALUs splits an Annex-B stream at its start codes.
func splitNALUs(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				if end > start && b[end-1] == 0 {
					end--
				}
				out = append(out, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// splitAccessUnits groups NAL units into access units, closing one at each
// picture's (single) slice: the encoders run single-threaded, one slice
// per picture.
func splitAccessUnits(b []byte, c Codec) [][][]byte {
	var aus [][][]byte
	var cur [][]byte
	for _, n := range splitNALUs(b) {
		if len(n) == 0 {
			continue
		}
		cur = append(cur, n)
		vcl := false
		if c == H264 {
			t := n[0] & 0x1f
			vcl = t >= 1 && t <= 5
		} else {
			vcl = (n[0]>>1)&0x3f <= 31
		}
		if vcl {
			aus = append(aus, cur)
			cur = nil
		}
	}
	return aus
}

func splitJPEG(b []byte) [][]byte {
	var out [][]byte
	for {
		s := bytes.Index(b, []byte{0xff, 0xd8})
		if s < 0 {
			return out
		}
		e := bytes.Index(b[s:], []byte{0xff, 0xd9})
		if e < 0 {
			return out
		}
		out = append(out, b[s:s+e+2])
		b = b[s+e+2:]
	}
}

// Server is a running synthetic camera.
type Server struct {
	// URL is the camera's rtsp:// URL.
	URL string
	// Epoch is the wall-clock time of frame 0.
	Epoch time.Time
	Scene Scene

	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	mu     sync.Mutex
	stop   chan struct{}
	done   chan struct{}
	paused bool
}

// FrameAt returns the frame index shown at wall-clock ms t.
func (s *Server) FrameAt(tMs int64) int {
	d := float64(tMs-s.Epoch.UnixMilli()) * float64(s.Scene.FPS) / 1000
	return int(math.Round(d))
}

// Pause stops (true) or resumes (false) sending packets, simulating a
// stalled camera whose connection stays open.
func (s *Server) Pause(p bool) { s.mu.Lock(); s.paused = p; s.mu.Unlock() }

type handler struct{ s *Server }

func (h handler) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.s.stream, nil
}

func (h handler) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, h.s.stream, nil
}

func (h handler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeUDPPair finds an even UDP port whose successor is free too (RTP
// and RTCP).
func freeUDPPair() (int, error) {
	for try := 0; try < 50; try++ {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		a.Close()
		if p%2 == 1 {
			p++
		}
		a, err = net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p, nil
	}
	return 0, errors.New("rtsptest: no free UDP port pair")
}

// Start serves aus (from [Encode]) at rtsp://127.0.0.1:<port>/cam over
// TCP, looping in real time until Close.
func Start(s Scene, c Codec, aus [][][]byte) (*Server, error) { return StartWith(s, c, aus, false) }

// StartWith is [Start] with UDP transport offered too when udp is true.
func StartWith(s Scene, c Codec, aus [][][]byte, udp bool) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var f format.Format
	switch c {
	case H264:
		f = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
	case H265:
		f = &format.H265{PayloadTyp: 96}
	case MJPEG:
		f = &format.MJPEG{}
	default:
		return nil, fmt.Errorf("rtsptest: unknown codec %q", c)
	}
	sv := &Server{URL: fmt.Sprintf("rtsp://127.0.0.1:%d/cam", port), Scene: s, stop: make(chan struct{}), done: make(chan struct{})}
	sv.srv = &gortsplib.Server{Handler: handler{sv}, RTSPAddress: fmt.Sprintf("127.0.0.1:%d", port)}
	if udp {
		up, err := freeUDPPair()
		if err != nil {
			return nil, err
		}
		sv.srv.UDPRTPAddress = fmt.Sprintf("127.0.0.1:%d", up)
		sv.srv.UDPRTCPAddress = fmt.Sprintf("127.0.0.1:%d", up+1)
	}
	if err := sv.srv.Start(); err != nil {
		return nil, fmt.Errorf("rtsptest: starting server: %w", err)
	}
	desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{f}}}}
	sv.stream = &gortsplib.ServerStream{Server: sv.srv, Desc: desc}
	if err := sv.stream.Initialize(); err != nil {
		sv.srv.Close()
		return nil, fmt.Errorf("rtsptest: stream: %w", err)
	}
	encode, err := encoderFor(f)
	if err != nil {
		sv.stream.Close()
		sv.srv.Close()
		return nil, err
	}
	sv.Epoch = time.Now().Truncate(time.Millisecond)
	go sv.loop(desc.Medias[0], encode, aus)
	return sv, nil
}

func encoderFor(f format.Format) (func(au [][]byte) ([]*rtp.Packet, error), error) {
	switch f := f.(type) {
	case *format.H264:
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return e.Encode, nil
	case *format.H265:
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return e.Encode, nil
	case *format.MJPEG:
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return func(au [][]byte) ([]*rtp.Packet, error) { return e.Encode(au[0]) }, nil
	}
	return nil, errors.New("rtsptest: no encoder")
}

func (s *Server) loop(medi *description.Media, encode func([][]byte) ([]*rtp.Packet, error), aus [][][]byte) {
	defer close(s.done)
	const clock = 90000
	for i := 0; ; i++ {
		at := s.Epoch.Add(time.Duration(i) * time.Second / time.Duration(s.Scene.FPS))
		select {
		case <-s.stop:
			return
		case <-time.After(time.Until(at)):
		}
		s.mu.Lock()
		paused := s.paused
		s.mu.Unlock()
		if paused {
			continue
		}
		pkts, err := encode(aus[i%len(aus)])
		if err != nil {
			continue
		}
		ts := uint32(int64(i) * clock / int64(s.Scene.FPS))
		for _, p := range pkts {
			p.Timestamp = 1000 + ts
			_ = s.stream.WritePacketRTPWithNTP(medi, p, at)
		}
	}
}

// Close stops the stream and the server.
func (s *Server) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	<-s.done
	s.stream.Close()
	s.srv.Close()
}
