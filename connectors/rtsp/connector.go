// Package rtsp provides the rtsp role: it reads RTSP cameras, decodes their
// video (H.264, H.265 or M-JPEG through libavcodec), samples frames at a
// configured rate, runs an ONNX object detector on them and produces
// FrameDetections records and debounced VideoEvents to Kafka, keyed by
// camera id.
//
// Data path and backpressure, per camera:
//
//	gortsplib session -> RTP depacketizer -> decoder (every frame) ->
//	sampler (sample_fps) -> RGB scaled for the model -> bounded queue
//	(queue_frames, drops oldest) -> shared inference workers -> Kafka
//
// Each camera has its own session goroutine, decoder and queue; workers
// take cameras round-robin from a ready list, one frame of a camera at a
// time so that events see its frames in order. A slow or dead camera
// therefore never stalls another: its session only blocks itself, and its
// queue drops its own oldest frames. When Kafka is slow, Produce blocks the
// workers, the queues fill and drop the oldest frames, which frames being
// lossy by nature is what we want; drops are counted.
//
// Frame time is the RTP timestamp mapped to the wall clock: the NTP time of
// the camera's RTCP sender reports once one arrived, else the local time of
// the session's first packet plus the RTP time elapsed since (always the
// latter with frame_clock: local).
//
// Sessions reconnect with exponential backoff and jitter. URLs are logged
// with credentials redacted. The role also follows the camera-controls
// topic: a SAMPLE_RATE_BOOST record raises a camera's sample rate until its
// end time. The rtsp role does not track identities or store video.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/schemas/codec"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Option injects dependencies into [New].
type Option func(*Connector)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Connector) { c.log = l } }

// WithRegisterer sets the metrics registerer (default: none).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *Connector) { c.reg = r } }

// WithHealth sets the health tracker the role reports readiness to.
func WithHealth(h *runtime.Health) Option { return func(c *Connector) { c.health = h } }

// WithKafkaOpts adds franz-go options (tests use them for kfake).
func WithKafkaOpts(o ...kgo.Opt) Option {
	return func(c *Connector) { c.kopts = append(c.kopts, o...) }
}

// WithTopics overrides the output topics (tests use unique names).
func WithTopics(detections, videoEvents, controls string) Option {
	return func(c *Connector) { c.tDet, c.tEv, c.tCtl = detections, videoEvents, controls }
}

// WithGetenv replaces os.Getenv for camera credentials (tests).
func WithGetenv(f func(string) string) Option { return func(c *Connector) { c.getenv = f } }

// Connector is the rtsp role.
type Connector struct {
	root   *config.Root
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	health *runtime.Health
	kopts  []kgo.Opt
	getenv func(string) string
	m      *metrics

	tDet, tEv, tCtl string

	mu      sync.Mutex
	running bool
	cams    map[string]*camera
}

// New builds the role; it does no I/O.
func New(root *config.Root, cfg Config, opts ...Option) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connectors.rtsp: %w", err)
	}
	c := &Connector{root: root, cfg: cfg, getenv: os.Getenv,
		tDet: cfg.TopicPrefix + topics.Detections, tEv: cfg.TopicPrefix + topics.VideoEvents, tCtl: cfg.TopicPrefix + topics.CameraControls}
	for _, o := range opts {
		o(c)
	}
	c.log = telemetry.OrDiscard(c.log).With("component", "connectors/rtsp")
	c.m = newMetrics(c.reg)
	return c, nil
}

// Name returns "rtsp".
func (c *Connector) Name() string { return "rtsp" }

// Run reads every camera until ctx is done, then drains: it stops the
// sessions, lets the workers finish the frames in hand and flushes the
// producer within the topology's drain timeout.
func (c *Connector) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("rtsp: Run called twice")
	}
	c.running = true
	c.mu.Unlock()
	if c.health != nil {
		c.health.NotReady("rtsp")
	}

	if err := detect.Init(c.cfg.ONNXRuntimeLib); err != nil {
		return err
	}
	det, err := detect.New(c.cfg.Detector)
	if err != nil {
		return err
	}
	defer det.Close()
	if err := checkClasses(c.cfg, det.Classes()); err != nil {
		return fmt.Errorf("connectors.rtsp: %w", err)
	}
	c.log.Info("detector loaded", "model", det.Name(), "version", det.Version(), "classes", len(det.Classes()),
		"sessions", det.Sessions())

	cl, err := kafka.NewClient(c.root.Kafka, c.kopts...)
	if err != nil {
		return fmt.Errorf("rtsp: kafka client: %w", err)
	}
	defer cl.Close()

	// Cameras.
	c.cams = map[string]*camera{}
	ready := make(chan *camera, len(c.cfg.Cameras))
	var cams []*camera
	for _, cc := range c.cfg.Cameras {
		if cc.Tenant == "" {
			cc.Tenant = c.root.Tenant
		}
		cam, err := newCamera(c, cc, det, ready)
		if err != nil {
			return err
		}
		cams = append(cams, cam)
		c.cams[cc.ID] = cam
	}

	// Event state: replay what this role produced before a restart.
	if n, err := c.restoreEvents(ctx, cl, c.cams); err != nil {
		c.log.Warn("event state not (fully) restored: episodes going on may be raised again", "frames_replayed", n, "err", err)
	} else if n > 0 {
		c.log.Info("event state restored", "frames_replayed", n, "lookback", c.cfg.StateLookback.D())
	}

	sessCtx, stopSessions := context.WithCancel(ctx)
	defer stopSessions()
	var sessions sync.WaitGroup
	for _, cam := range cams {
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			cam.runSessions(sessCtx)
		}()
	}
	if c.cfg.Controls && len(cams) > 0 {
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			c.followControls(sessCtx)
		}()
	}

	workers := c.cfg.Workers
	if workers == 0 {
		workers = det.Sessions()
	}
	// Workers stop once the sessions have stopped and the ready list is
	// empty (done), or at the drain deadline (workCtx).
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(workCtx, cl, ready, done)
		}()
	}
	if c.health != nil {
		c.health.Set("rtsp", nil)
	}
	c.log.Info("rtsp started", "cameras", len(cams), "workers", workers, "sample_fps", c.cfg.SampleFPS)

	<-ctx.Done()
	// Drain: stop intake, finish the queued frames, flush the producer,
	// all within the drain timeout.
	drainCtx, cancelDrain := runtime.DrainContext(ctx, c.root.DrainTimeout.D())
	defer cancelDrain()
	stop := context.AfterFunc(drainCtx, cancelWork)
	defer stop()
	stopSessions()
	sessions.Wait()
	close(done)
	wg.Wait()
	if err := cl.Flush(drainCtx); err != nil {
		return fmt.Errorf("rtsp: flushing producer: %w", err)
	}
	c.log.Info("rtsp drained")
	return nil
}

// checkClasses reports event and camera settings that name a class the
// model does not have: the role would run but never raise a person event
// or apply the threshold.
func checkClasses(cfg Config, classes []string) error {
	known := make(map[string]bool, len(classes))
	for _, n := range classes {
		known[n] = true
	}
	var errs []error
	if !known[cfg.Events.PersonClass] {
		errs = append(errs, fmt.Errorf("events.person_class: %q is not a class of the model", cfg.Events.PersonClass))
	}
	for i, cam := range cfg.Cameras {
		for _, k := range slices.Sorted(maps.Keys(cam.ClassConfidence)) {
			if !known[k] {
				errs = append(errs, fmt.Errorf("cameras[%d].class_confidence: %q is not a class of the model", i, k))
			}
		}
	}
	return errors.Join(errs...)
}

// work runs frames through the detector until done is closed and nothing
// is ready, or ctx (the drain deadline) ends.
func (c *Connector) work(ctx context.Context, cl *kgo.Client, ready chan *camera, done chan struct{}) {
	for {
		var cam *camera
		select {
		case cam = <-ready:
		case <-done:
			select {
			case cam = <-ready:
			default:
				return
			}
		case <-ctx.Done():
			return
		}
		f := cam.pop()
		if f != nil {
			cam.process(ctx, cl, f)
			cam.release(f)
		}
		cam.requeue()
	}
}

// produce sends one record, keyed by camera. Failures are logged and
// counted, not retried beyond the producer's own retries: frames are lossy.
func (c *Connector) produce(ctx context.Context, cl *kgo.Client, topic, key, kind string, msg proto.Message) {
	v, err := codec.Marshal(msg)
	if err != nil {
		c.m.produceErrors.WithLabelValues(kind).Inc()
		c.log.Error("marshalling record failed", "topic", topic, "err", err)
		return
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: v}
	cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			c.m.produceErrors.WithLabelValues(kind).Inc()
			c.log.Warn("producing record failed", "topic", r.Topic, "err", err)
			return
		}
		c.m.produced.WithLabelValues(kind).Inc()
	})
}
