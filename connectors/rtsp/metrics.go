package rtsp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/internal/telemetry"
)

// metrics are the rtsp role's domain metrics. Labels are bounded (codec,
// stage, event type, record kind). Camera ids label only the
// wardstream_rtsp_camera_* families: one series per camera of the role's
// configuration (a fixed list, so bounded too), which is what an operator
// needs to find the one camera of hundreds that stopped (up, last frame,
// session failures) or falls behind (frames dropped). The role-wide
// families keep no camera label, so their cardinality does not grow with
// the fleet.
type metrics struct {
	decoded         *prometheus.CounterVec
	decodeErrors    *prometheus.CounterVec
	rtpErrors       prometheus.Counter
	rtpLost         prometheus.Counter
	clockRejected   prometheus.Counter
	sampled         prometheus.Counter
	dropped         prometheus.Counter
	skipped         prometheus.Counter
	inference       prometheus.Histogram
	inferErrors     prometheus.Counter
	detections      prometheus.Counter
	events          *prometheus.CounterVec
	produced        *prometheus.CounterVec
	produceErrors   *prometheus.CounterVec
	latency         prometheus.Histogram
	sessions        prometheus.Gauge
	sessionFailures *prometheus.CounterVec
	controls        *prometheus.CounterVec
	restored        *prometheus.CounterVec

	// Per camera (label camera).
	camUp        *prometheus.GaugeVec
	camLastFrame *prometheus.GaugeVec
	camDecoded   *prometheus.CounterVec
	camDropped   *prometheus.CounterVec
	camFailures  *prometheus.CounterVec
	camEvents    *prometheus.CounterVec
}

// cameraMetrics are one camera's series, resolved once (no label lookup
// per frame).
type cameraMetrics struct {
	up, lastFrame    prometheus.Gauge
	decoded, dropped prometheus.Counter
	failures         prometheus.Counter
	events           *prometheus.CounterVec // curried with the camera; label type
}

// camera returns id's series, created at zero so that a camera that never
// played shows as such (up 0, no frames) instead of being absent.
func (m *metrics) camera(id string) cameraMetrics {
	cm := cameraMetrics{
		up:        m.camUp.WithLabelValues(id),
		lastFrame: m.camLastFrame.WithLabelValues(id),
		decoded:   m.camDecoded.WithLabelValues(id),
		dropped:   m.camDropped.WithLabelValues(id),
		failures:  m.camFailures.WithLabelValues(id),
		events:    m.camEvents.MustCurryWith(prometheus.Labels{"camera": id}),
	}
	return cm
}

func newMetrics(r prometheus.Registerer) *metrics {
	f := telemetry.OrNop(r)
	m := &metrics{
		decoded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_frames_decoded_total",
			Help: "Pictures decoded, by codec."}, []string{"codec"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_decode_errors_total",
			Help: "Access units libavcodec rejected, by codec."}, []string{"codec"}),
		rtpErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_rtp_errors_total",
			Help: "RTP packets that could not be depacketized."}),
		rtpLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_rtp_lost_packets_total",
			Help: "RTP packets lost in transit."}),
		clockRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_camera_clock_rejected_total",
			Help: "Decoded pictures whose camera NTP time was more than 30s from the local frame clock, so the local one was used."}),
		sampled: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_frames_sampled_total",
			Help: "Decoded pictures sampled for detection."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_frames_dropped_total",
			Help: "Sampled frames dropped because their camera's queue was full (oldest first)."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_frames_motion_skipped_total",
			Help: "Sampled frames not sent to the detector because nothing moved."}),
		inference: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wardstream_rtsp_inference_seconds",
			Help: "Model run time per frame.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)}),
		inferErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_inference_errors_total",
			Help: "Frames the detector failed on."}),
		detections: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_rtsp_detections_total",
			Help: "Objects detected."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_events_total",
			Help: "Video events raised, by type."}, []string{"type"}),
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_records_produced_total",
			Help: "Records Kafka acknowledged, by kind."}, []string{"kind"}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_produce_errors_total",
			Help: "Records that could not be produced, by kind."}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wardstream_rtsp_frame_latency_seconds",
			Help: "Frame time to detections handed to the producer.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_rtsp_sessions_active",
			Help: "Camera sessions playing."}),
		sessionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_session_failures_total",
			Help: "Camera sessions that failed or ended, by stage."}, []string{"stage"}),
		controls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_controls_total",
			Help: "Camera-control records, by outcome (applied, unknown_camera, invalid, ignored)."}, []string{"outcome"}),
	}
	m.restored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_state_replayed_records_total",
		Help: "Detections records read at start to rebuild the cameras' event state, by outcome (replayed, other_camera, invalid)."}, []string{"outcome"})
	m.camUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wardstream_rtsp_camera_up",
		Help: "1 while the camera's RTSP session is playing, else 0."}, []string{"camera"})
	m.camLastFrame = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wardstream_rtsp_camera_last_frame_timestamp_seconds",
		Help: "Unix time of the camera's last decoded picture (0: none yet); alert on time() minus this."}, []string{"camera"})
	m.camDecoded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_camera_frames_decoded_total",
		Help: "Pictures decoded, by camera."}, []string{"camera"})
	m.camDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_camera_frames_dropped_total",
		Help: "Sampled frames dropped because the camera's queue was full, by camera."}, []string{"camera"})
	m.camFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_camera_session_failures_total",
		Help: "Camera sessions that failed or ended, by camera (the stage is in wardstream_rtsp_session_failures_total)."}, []string{"camera"})
	m.camEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_rtsp_camera_events_total",
		Help: "Video events raised, by camera and type."}, []string{"camera", "type"})
	f.MustRegister(m.decoded, m.decodeErrors, m.rtpErrors, m.rtpLost, m.clockRejected, m.sampled, m.dropped, m.skipped, m.inference,
		m.inferErrors, m.detections, m.events, m.produced, m.produceErrors, m.latency, m.sessions, m.sessionFailures, m.controls,
		m.restored, m.camUp, m.camLastFrame, m.camDecoded, m.camDropped, m.camFailures, m.camEvents)
	return m
}
