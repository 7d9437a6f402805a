package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmjpeg"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/rtsp/decode"
	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	"github.com/wardstream/wardstream/connectors/rtsp/events"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Motion thumbnails are this small: enough to see a person move, cheap
// to compare.
const thumbW, thumbH = 32, 24

// frame is one sampled picture on its way to the detector. Buffers are
// recycled per camera.
type frame struct {
	rgb    []byte
	luma   []byte
	g      detect.Geometry
	timeMs int64
	seq    int64
	codec  decode.Codec
}

// camera is one configured camera: its session loop (decoding, sampling)
// and its queue and worker-side state (inference, events).
type camera struct {
	c     *Connector
	cfg   Camera
	det   *detect.Detector
	eng   *events.Engine
	ready chan *camera
	log   *slog.Logger
	fps   float64
	minC  map[string]float32
	cm    cameraMetrics

	mu        sync.Mutex
	queue     []*frame
	free      []*frame
	scheduled bool
	boosts    []boost // running SAMPLE_RATE_BOOSTs, see setBoost

	lastDecoded atomic.Int64 // unix ms of the last decoded picture

	// Worker-side state: only one worker holds a camera at a time.
	lastLuma  []byte
	lastInfer int64
	lastDets  []*pb.Detection
}

func newCamera(c *Connector, cc Camera, det *detect.Detector, ready chan *camera) (*camera, error) {
	ev := c.cfg.Events
	ev.Areas = cc.Areas
	eng, err := events.NewEngine(events.Camera{ID: cc.ID, Tenant: cc.Tenant, Zone: cc.Zone, Location: cc.Location, Ward: cc.Ward}, ev)
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", cc.ID, err)
	}
	fps := cc.SampleFPS
	if fps == 0 {
		fps = c.cfg.SampleFPS
	}
	if cc.Transport == "" {
		cc.Transport = c.cfg.Transport
	}
	return &camera{c: c, cfg: cc, det: det, eng: eng, ready: ready, fps: fps, minC: cc.ClassConfidence,
		log: c.log.With("camera", cc.ID), cm: c.m.camera(cc.ID)}, nil
}

// boost is a raised detection rate until a time (Unix ms).
type boost struct {
	fps     float64
	untilMs int64
}

// sampleFPS is the current detection rate: the highest of the camera's
// own and those of the boosts still running.
func (cam *camera) sampleFPS(nowMs int64) float64 {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	fps := cam.fps
	for _, b := range cam.boosts {
		if nowMs < b.untilMs {
			fps = max(fps, b.fps)
		}
	}
	return fps
}

// setBoost adds a boost to fps until untilMs. Boosts overlap rather than
// replace each other (two emergencies in a zone send one each, in no
// particular order): the camera samples at the highest rate among those
// still running, until the last one ends, so a later, shorter boost never
// cuts off a longer one. Ended boosts and those another outlasts at a rate
// at least as high are dropped, so the list stays small (one per distinct
// rate at most) and a control read twice changes nothing.
func (cam *camera) setBoost(fps float64, untilMs, nowMs int64) {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	kept, covered := cam.boosts[:0], untilMs <= nowMs
	for _, b := range cam.boosts {
		if b.untilMs <= nowMs || (b.fps <= fps && b.untilMs <= untilMs) {
			continue
		}
		covered = covered || (fps <= b.fps && untilMs <= b.untilMs)
		kept = append(kept, b)
	}
	clear(cam.boosts[len(kept):])
	if !covered {
		kept = append(kept, boost{fps: fps, untilMs: untilMs})
	}
	cam.boosts = kept
}

// push queues f, dropping the oldest frame when the queue is full, and
// puts the camera on the ready list if it is not there or being worked on.
func (cam *camera) push(f *frame) {
	cam.mu.Lock()
	if len(cam.queue) >= cam.c.cfg.QueueFrames {
		old := cam.queue[0]
		cam.queue = append(cam.queue[:0], cam.queue[1:]...)
		cam.free = append(cam.free, old)
		cam.c.m.dropped.Inc()
		cam.cm.dropped.Inc()
	}
	cam.queue = append(cam.queue, f)
	sched := !cam.scheduled
	cam.scheduled = true
	cam.mu.Unlock()
	if sched {
		// Never blocks: the channel holds every camera once.
		cam.ready <- cam
	}
}

func (cam *camera) pop() *frame {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	if len(cam.queue) == 0 {
		return nil
	}
	f := cam.queue[0]
	cam.queue = append(cam.queue[:0], cam.queue[1:]...)
	return f
}

// requeue puts the camera back at the end of the ready list when it has
// more frames (round-robin between cameras), else marks it idle.
func (cam *camera) requeue() {
	cam.mu.Lock()
	more := len(cam.queue) > 0
	cam.scheduled = more
	cam.mu.Unlock()
	if more {
		cam.ready <- cam
	}
}

func (cam *camera) getFrame() *frame {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	if n := len(cam.free); n > 0 {
		f := cam.free[n-1]
		cam.free = cam.free[:n-1]
		return f
	}
	return &frame{}
}

func (cam *camera) release(f *frame) {
	cam.mu.Lock()
	cam.free = append(cam.free, f)
	cam.mu.Unlock()
}

// runSessions keeps a session open until ctx ends, reconnecting with
// exponential backoff and jitter.
func (cam *camera) runSessions(ctx context.Context) {
	backoff := cam.c.cfg.ReconnectMin.D()
	for ctx.Err() == nil {
		start := time.Now()
		err := cam.session(ctx)
		if ctx.Err() != nil {
			return
		}
		var se *sessionError
		stage := "play"
		if errors.As(err, &se) {
			stage = se.stage
		}
		cam.c.m.sessionFailures.WithLabelValues(stage).Inc()
		cam.cm.failures.Inc()
		// A session that ran a while was healthy: start over from the
		// shortest wait.
		if time.Since(start) > 4*cam.c.cfg.ReconnectMax.D() || time.Since(start) > time.Minute {
			backoff = cam.c.cfg.ReconnectMin.D()
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		cam.log.Warn("camera session ended, reconnecting", "stage", stage, "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, cam.c.cfg.ReconnectMax.D())
	}
}

// sessionError names the stage where a session failed (a metric label).
type sessionError struct {
	stage string
	err   error
}

func (e *sessionError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

func stageErr(stage string, err error) error { return &sessionError{stage, err} }

// session runs one RTSP session: connect, describe, set up the first
// video track we can decode, play, and decode until the connection fails,
// the read timeout passes without a picture, or ctx ends.
func (cam *camera) session(ctx context.Context) error {
	raw, err := cam.cfg.resolveURL(cam.c.getenv)
	if err != nil {
		return stageErr("config", err)
	}
	u, err := base.ParseURL(raw)
	if err != nil {
		return stageErr("config", fmt.Errorf("camera url %s: %w", redact(raw), errors.New("does not parse")))
	}
	cl := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, ReadTimeout: cam.c.cfg.ReadTimeout.D()}
	switch cam.cfg.Transport {
	case "tcp":
		t := gortsplib.TransportTCP
		cl.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		cl.Transport = &t
	}
	cl.OnDecodeError = func(err error) { cam.c.m.rtpErrors.Inc() }
	cl.OnPacketsLost = func(lost uint64) { cam.c.m.rtpLost.Add(float64(lost)) }
	if err := cl.Start2(); err != nil {
		return stageErr("connect", fmt.Errorf("%s: %w", redact(raw), err))
	}
	defer cl.Close()
	// The client's requests take no context: closing it on ctx's end
	// unblocks a DESCRIBE, SETUP or PLAY that a silent camera would
	// otherwise hold up to the read timeout, and with it shutdown.
	defer context.AfterFunc(ctx, cl.Close)()
	desc, _, err := cl.Describe(u)
	if err != nil {
		return stageErr("describe", fmt.Errorf("%s: %w", redact(raw), err))
	}
	tr, err := newTrack(desc)
	if err != nil {
		return stageErr("describe", fmt.Errorf("%s: %w", redact(raw), err))
	}
	dec, err := decode.New(tr.codec, decode.Options{})
	if err != nil {
		return stageErr("decoder", err)
	}
	defer dec.Close()
	if _, err := cl.Setup(desc.BaseURL, tr.media, 0, 0); err != nil {
		return stageErr("setup", fmt.Errorf("%s: %w", redact(raw), err))
	}

	st := &sampler{cam: cam, dec: dec, tr: tr, clock: localClock{rate: int64(tr.format.ClockRate())}}
	cl.OnPacketRTP(tr.media, tr.format, func(pkt *rtp.Packet) { st.onPacket(cl, pkt) })
	if _, err := cl.Play(nil); err != nil {
		return stageErr("play", fmt.Errorf("%s: %w", redact(raw), err))
	}
	cam.c.m.sessions.Inc()
	defer cam.c.m.sessions.Dec()
	cam.cm.up.Set(1)
	defer cam.cm.up.Set(0)
	cam.lastDecoded.Store(time.Now().UnixMilli())
	cam.log.Info("camera playing", "url", redact(raw), "codec", tr.codec.String(), "transport", cam.cfg.Transport)

	waitErr := make(chan error, 1)
	go func() { waitErr <- cl.Wait() }()
	rt := cam.c.cfg.ReadTimeout.D()
	tick := time.NewTicker(min(rt/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			cl.Close()
			<-waitErr
			return nil
		case err := <-waitErr:
			return stageErr("play", err)
		case <-tick.C:
			if idle := time.Since(time.UnixMilli(cam.lastDecoded.Load())); idle > rt {
				cl.Close()
				<-waitErr
				return stageErr("timeout", fmt.Errorf("no decoded picture for %v", idle.Round(time.Millisecond)))
			}
		}
	}
}

// track is the video track we read and its RTP depacketizer.
type track struct {
	codec  decode.Codec
	media  *description.Media
	format format.Format
	h264   *rtph264.Decoder
	h265   *rtph265.Decoder
	mjpeg  *rtpmjpeg.Decoder
	params [][]byte // parameter sets from the SDP, in decoding order
}

// newTrack picks the first track we can decode, preferring H.264, then
// H.265, then M-JPEG.
func newTrack(desc *description.Session) (*track, error) {
	var f264 *format.H264
	if m := desc.FindFormat(&f264); m != nil {
		d, err := f264.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &track{codec: decode.H264, media: m, format: f264, h264: d, params: nonEmpty(f264.SPS, f264.PPS)}, nil
	}
	var f265 *format.H265
	if m := desc.FindFormat(&f265); m != nil {
		d, err := f265.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &track{codec: decode.H265, media: m, format: f265, h265: d, params: nonEmpty(f265.VPS, f265.SPS, f265.PPS)}, nil
	}
	var fj *format.MJPEG
	if m := desc.FindFormat(&fj); m != nil {
		d, err := fj.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &track{codec: decode.MJPEG, media: m, format: fj, mjpeg: d}, nil
	}
	return nil, errors.New("no H.264, H.265 or M-JPEG video track")
}

func nonEmpty(bs ...[]byte) [][]byte {
	var out [][]byte
	for _, b := range bs {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// sampler runs in the session's RTP goroutine: depacketize, decode every
// picture, and queue the sampled ones.
type sampler struct {
	cam         *camera
	dec         *decode.Decoder
	tr          *track
	started     bool // saw a random-access unit
	clock       localClock
	nextSample  int64
	seq         int64
	annexb      []byte
	paramsGiven bool
	clockWarned bool
}

// localClock maps a session's RTP time (PTS in clock-rate units) to the
// wall clock: our time at the first packet plus the RTP time since.
type localClock struct {
	set       bool
	wall, pts int64 // the anchor: Unix ms and PTS
	rate      int64
}

// at returns the wall time (Unix ms) of a packet with the given PTS that
// arrived at arrival (Unix ms). A frame is never captured after it
// arrived: when the mapping says so, the camera's RTP clock runs fast (or
// the first packet came late) and the clock re-anchors at this packet, so
// drift cannot carry frame times into the future over a long session. A
// slow camera clock is not corrected: its growing lag cannot be told
// from a decoding backlog.
func (c *localClock) at(pts, arrival int64) int64 {
	if !c.set {
		c.set, c.wall, c.pts = true, arrival, pts
		return arrival
	}
	t := c.wall + (pts-c.pts)*1000/c.rate
	if t > arrival {
		c.wall, c.pts = arrival, pts
		return arrival
	}
	return t
}

// maxClockSkew is how far a camera's NTP time (RTCP sender reports) may
// be from the local frame clock before we distrust it: a camera whose
// clock was never set, or reset to its factory date, would otherwise date
// every frame and event years or hours off.
const maxClockSkew = 30 * time.Second

// frameTime picks a frame's time (Unix ms): the camera's NTP time when
// mode is "camera", one is known and it is within maxClockSkew of local
// (our clock at the session's first packet plus the RTP time since), else
// local. rejected reports a camera time refused for its skew.
func frameTime(mode string, local, ntp int64, ntpOK bool) (t int64, rejected bool) {
	if mode != "camera" || !ntpOK {
		return local, false
	}
	if d := ntp - local; d > maxClockSkew.Milliseconds() || d < -maxClockSkew.Milliseconds() {
		return local, true
	}
	return ntp, false
}

func (s *sampler) onPacket(cl *gortsplib.Client, pkt *rtp.Packet) {
	m := s.cam.c.m
	pts, ok := cl.PacketPTS2(s.tr.media, pkt)
	if !ok {
		return
	}
	// Read the local clock at the packet's arrival, before any decoding
	// delay, so that frame times stay accurate when decoding lags.
	local := s.clock.at(pts, time.Now().UnixMilli())
	var data []byte
	switch s.tr.codec {
	case decode.H264, decode.H265:
		var au [][]byte
		var err error
		if s.tr.h264 != nil {
			au, err = s.tr.h264.Decode(pkt)
		} else {
			au, err = s.tr.h265.Decode(pkt)
		}
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) &&
				!errors.Is(err, rtph265.ErrMorePacketsNeeded) && !errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				m.rtpErrors.Inc()
			}
			return
		}
		random := false
		if s.tr.h264 != nil {
			random = h264.IsRandomAccess(au)
		} else {
			random = h265.IsRandomAccess(au)
		}
		if !s.started && !random {
			return // nothing decodes before the first random-access unit
		}
		s.started = true
		if !s.paramsGiven {
			// Parameter sets from the SDP go in front of the first
			// random-access unit (cameras often send them only there).
			au = append(append([][]byte(nil), s.tr.params...), au...)
			s.paramsGiven = true
		}
		s.annexb = s.annexb[:0]
		for _, nalu := range au {
			s.annexb = append(s.annexb, 0, 0, 0, 1)
			s.annexb = append(s.annexb, nalu...)
		}
		data = s.annexb
	case decode.MJPEG:
		img, err := s.tr.mjpeg.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtpmjpeg.ErrMorePacketsNeeded) && !errors.Is(err, rtpmjpeg.ErrNonStartingPacketAndNoPrevious) {
				m.rtpErrors.Inc()
			}
			return
		}
		data = img
	}
	got, err := s.dec.Decode(data)
	if err != nil {
		m.decodeErrors.WithLabelValues(s.tr.codec.String()).Inc()
		return
	}
	if !got {
		return
	}
	now := time.Now().UnixMilli()
	s.cam.lastDecoded.Store(now)
	m.decoded.WithLabelValues(s.tr.codec.String()).Inc()
	s.cam.cm.decoded.Inc()
	s.cam.cm.lastFrame.Set(float64(now) / 1000)

	// Frame time: the camera's NTP clock (RTCP sender reports) when known,
	// else the local clock at the first packet plus RTP time since.
	var ntpMs int64
	ntp, ntpOK := cl.PacketNTP(s.tr.media, pkt)
	if ntpOK {
		ntpMs = ntp.UnixMilli()
	}
	t, rejected := frameTime(s.cam.c.cfg.FrameClock, local, ntpMs, ntpOK)
	if rejected {
		m.clockRejected.Inc()
		if !s.clockWarned {
			s.clockWarned = true
			s.cam.log.Warn("camera clock far from ours, using the local frame clock (set frame_clock: local or fix the camera's NTP)",
				"skew", time.Duration(ntpMs-local)*time.Millisecond)
		}
	}
	interval := int64(1000 / s.cam.sampleFPS(now))
	// Sample on a steady cadence, tolerating a little jitter in the
	// frame times; a jump (reconnect, clock switch) restarts the cadence.
	if tol := interval / 10; t+tol < s.nextSample && s.nextSample-t < 10*interval {
		return
	}
	if d := t - s.nextSample; d >= -interval && d < interval {
		s.nextSample += interval
	} else {
		s.nextSample = t + interval
	}
	s.seq++
	m.sampled.Inc()

	w, h := s.dec.Size()
	g := s.cam.det.Geometry(w, h)
	f := s.cam.getFrame()
	if n := 3 * g.W * g.H; cap(f.rgb) < n {
		f.rgb = make([]byte, n)
	} else {
		f.rgb = f.rgb[:n]
	}
	if err := s.dec.RGB(f.rgb, g.W, g.H, 3*g.W); err != nil {
		m.decodeErrors.WithLabelValues(s.tr.codec.String()).Inc()
		s.cam.release(f)
		return
	}
	if s.cam.c.cfg.Motion {
		if cap(f.luma) < thumbW*thumbH {
			f.luma = make([]byte, thumbW*thumbH)
		}
		f.luma = f.luma[:thumbW*thumbH]
		if err := s.dec.Luma(f.luma, thumbW, thumbH); err != nil {
			f.luma = f.luma[:0]
		}
	}
	f.g, f.timeMs, f.seq, f.codec = g, t, s.seq, s.tr.codec
	s.cam.push(f)
}

// process runs one frame through the detector (unless motion gating
// skips it) and the event rules, and produces the results.
func (cam *camera) process(ctx context.Context, cl *kgo.Client, f *frame) {
	c := cam.c
	fd := &pb.FrameDetections{
		Meta: &pb.Meta{Tenant: cam.cfg.Tenant, EventId: frameID(cam.cfg.ID, f.timeMs),
			EventTimeMs: f.timeMs, IngestTimeMs: time.Now().UnixMilli(), Source: "rtsp/" + f.codec.String()},
		CameraId: cam.cfg.ID, Zone: cam.cfg.Zone, Location: cam.cfg.Location, Ward: cam.cfg.Ward,
		FrameTimeMs: f.timeMs, Sequence: f.seq, ModelName: cam.det.Name(), ModelVersion: cam.det.Version(),
		Width: int32(f.g.SrcW), Height: int32(f.g.SrcH),
	}
	if c.cfg.Motion && len(f.luma) > 0 && cam.lastLuma != nil &&
		f.timeMs-cam.lastInfer < c.cfg.MotionMaxSkip.D().Milliseconds() && f.timeMs >= cam.lastInfer &&
		meanAbsDiff(f.luma, cam.lastLuma) < c.cfg.MotionThreshold {
		c.m.skipped.Inc()
		fd.Detections = cam.lastDets
		cam.emitEvents(ctx, cl, fd)
		return
	}
	dets, took, err := cam.det.Detect(ctx, f.rgb, f.g)
	if err != nil {
		if ctx.Err() == nil {
			c.m.inferErrors.Inc()
			cam.log.Error("inference failed", "err", err)
		}
		return
	}
	c.m.inference.Observe(took.Seconds())
	fd.InferenceMs = float32(took.Microseconds()) / 1000
	for _, d := range dets {
		if minC, ok := cam.minC[d.Class]; ok && d.Confidence < minC {
			continue
		}
		fd.Detections = append(fd.Detections, &pb.Detection{ClassName: d.Class, ClassId: int32(d.ClassID), Confidence: d.Confidence,
			Box: &pb.Box{X: d.Box.X, Y: d.Box.Y, W: d.Box.W, H: d.Box.H}})
	}
	c.m.detections.Add(float64(len(fd.Detections)))
	if c.cfg.Motion && len(f.luma) > 0 {
		cam.lastLuma = append(cam.lastLuma[:0], f.luma...)
		cam.lastInfer = f.timeMs
		cam.lastDets = fd.Detections
	}
	cam.log.Debug("frame", "seq", f.seq, "detections", len(fd.Detections), "inference_ms", fd.InferenceMs)
	c.produce(ctx, cl, c.tDet, cam.cfg.ID, "detections", fd)
	c.m.latency.Observe(float64(time.Now().UnixMilli()-f.timeMs) / 1000)
	cam.emitEvents(ctx, cl, fd)
}

func (cam *camera) emitEvents(ctx context.Context, cl *kgo.Client, fd *pb.FrameDetections) {
	for _, ev := range cam.eng.Observe(fd) {
		cam.c.m.events.WithLabelValues(ev.EventType.String()).Inc()
		cam.cm.events.WithLabelValues(ev.EventType.String()).Inc()
		cam.c.produce(ctx, cl, cam.c.tEv, cam.cfg.ID, "events", ev)
	}
}

// frameID is deterministic: a replayed frame (same camera, same frame
// time) gets the same id.
func frameID(camera string, timeMs int64) string {
	return "fd-" + camera + "-" + strconv.FormatInt(timeMs, 10)
}

func meanAbsDiff(a, b []byte) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 1
	}
	var sum int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
	}
	return float64(sum) / float64(len(a)) / 255
}
