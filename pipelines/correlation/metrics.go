package correlation

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/internal/telemetry"
)

type metrics struct {
	sightings    prometheus.Counter
	frames       prometheus.Counter
	intakes      *prometheus.CounterVec
	unauthorized *prometheus.CounterVec
	commands     prometheus.Counter
	boosts       prometheus.Counter
	deadLetters  *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		sightings: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_correlation_sightings_total",
			Help: "Person sightings forwarded to their zone (thinned per camera)."}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_correlation_frames_forwarded_total",
			Help: "Frames without a person forwarded to their zone as event-time progress (thinned per camera)."}),
		intakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_correlation_intakes_total",
			Help: "Intakes by verification outcome (CAMERA_CONFIRMED, UNVERIFIED, unmapped; duplicate: redelivered while pending, not re-emitted; redelivered: decided before, its verdict re-emitted)."}, []string{"outcome"}),
		unauthorized: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_correlation_unauthorized_access_total",
			Help: "UNAUTHORIZED_ACCESS events by outcome (secured, not_device_area)."}, []string{"outcome"}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_correlation_secure_commands_total",
			Help: "SECURE_DEVICE commands issued."}),
		boosts: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_correlation_camera_boosts_total",
			Help: "Camera sample-rate boosts requested for emergencies."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_correlation_dead_letters_total",
			Help: "Input records sent to the dead-letter topic, by reason."}, []string{"reason"}),
	}
	telemetry.OrNop(r).MustRegister(m.sightings, m.frames, m.intakes, m.unauthorized, m.commands, m.boosts, m.deadLetters)
	return m
}
