// Package correlation provides the cross-system goka group of wardstream:
// it joins the video side (camera detections and events) with the medical
// IoT side (pillcase intakes, alerts).
//
// Rules (from the seed's integration section):
//   - Intake verification: an intake whose location maps to a configured
//     zone is CAMERA_CONFIRMED when a person was detected in that zone
//     within +-Window (2 minutes) of the intake time, else UNVERIFIED. The
//     verified intake is re-emitted to the intake topic with the same
//     event id and Verification set (the group ignores intakes that carry
//     a verification, so it never loops).
//   - UNAUTHORIZED_ACCESS in a zone marked as a medical device area sends a
//     SECURE_DEVICE command to every device configured there and raises an
//     UNAUTHORIZED_ACCESS_ALERT through the alerts group's request topic.
//   - A VITALS_EMERGENCY alert raises the sample rate of the cameras of the
//     patient's (or the device's) zones for BoostFor, through
//     SAMPLE_RATE_BOOST records on the camera-controls topic.
//
// Intakes (keyed by patient) and detections (keyed by camera) meet by zone:
// both are re-keyed through goka's loopback, and the group table holds one
// [ZoneState] per zone: recent person sightings, the zone's event-time
// watermark (the frame time, with or without a person, that every camera
// of the zone still reporting has reached), the intakes still waiting for their +2 minute window to close
// and the verdicts of recently decided intakes. Detections are thinned to
// one record per camera per SightingEvery before the loopback (a sighting
// if the frame shows a person, else a frame that only advances the
// watermark), so the loopback carries a bounded rate whatever the camera
// frame rates.
//
// Verdicts are judged in event time, so a backlog read after a restart or
// consumer lag gives the verdicts the same records gave live: a sighting
// within +-Window of the intake time confirms it whichever arrives first;
// it is UNVERIFIED once the zone's watermark has passed its window plus
// Grace without one. A zone keeps sightings back to 2 x Window + Grace
// before its watermark (and those pending intakes need). A zone whose
// cameras are silent has no watermark progress: the role's clock visits
// every zone ([VisitSweep]) and declares an intake UNVERIFIED MaxWait
// (10 minutes) after it arrived. Replaying old days with their detections
// judges them as live; an old intake reaching a zone whose video is live
// (a pillcase flushing a day-old buffer) is UNVERIFIED at once, as the
// sightings of its time are gone. An intake delivered again while pending
// is decided once; one delivered after its verdict gets the same verdict
// again (remembered for DecidedRetention beyond its window).
//
// Consumers of the intake topic see the verified copy as a second record
// with the same event id; downstream keeps the one with a verification.
// The group does not decide who is authorized or store video.
package correlation

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gcodec "github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// VisitSweep is the name of the group's clock visitor; its meta is the
// current time in Unix ms (int64).
const VisitSweep = "sweep"

// Source is Meta.Source (and DeviceCommand.IssuedBy) of what the group emits.
const Source = "pipelines/correlation"

// Verification values set on intakes.
const (
	CameraConfirmed = "CAMERA_CONFIRMED"
	Unverified      = "UNVERIFIED"
)

// Zone maps a physical zone to its cameras, devices and patients.
type Zone struct {
	// ID is the zone id cameras report (connectors.rtsp cameras[].zone or
	// an area's zone).
	ID string `yaml:"id"`
	// Locations are intake locations (MedicationIntake.location) that lie
	// in this zone; the id itself always matches.
	Locations []string `yaml:"locations"`
	// Cameras watching the zone (their sample rate is boosted in an emergency).
	Cameras []string `yaml:"cameras"`
	// Devices in the zone (secured on unauthorized access when
	// MedicalDeviceArea; their emergencies boost the zone's cameras).
	Devices []string `yaml:"devices"`
	// Patients in the zone (their emergencies boost the zone's cameras).
	Patients []string `yaml:"patients"`
	// MedicalDeviceArea marks the zone's devices as ones to secure.
	MedicalDeviceArea bool `yaml:"medical_device_area"`
}

// Config configures the group.
type Config struct {
	// Enabled runs the group (with the rtsp role); default false.
	Enabled bool `yaml:"enabled"`
	// Group is the goka group name (wardstream-correlation).
	Group string `yaml:"group"`
	// AlertRequestsTopic is the alerts group's request topic
	// (wardstream-alerts-requests).
	AlertRequestsTopic string `yaml:"alert_requests_topic"`
	// Window is the intake verification window, +- (2m).
	Window config.Duration `yaml:"window"`
	// Grace is added after an intake's window before it is declared
	// UNVERIFIED, for detections still in flight (30s).
	Grace config.Duration `yaml:"grace"`
	// MaxWait is how long a pending intake waits, in processing time
	// after it reached its zone, for the zone's cameras to pass its window
	// (plus grace) before it is declared UNVERIFIED anyway: the fallback
	// for a zone whose cameras are down (10m). Keep it well above
	// window + grace and above the consumer lag a restart may cause.
	MaxWait config.Duration `yaml:"max_wait"`
	// DecidedRetention is how long a zone remembers the verdict of a
	// decided intake beyond its window (6h), so that a redelivery (a
	// pillcase retry, a replay from an older offset) gets the same verdict
	// again instead of being judged anew; at most maxDecided per zone.
	DecidedRetention config.Duration `yaml:"decided_retention"`
	// SightingEvery thins person detections to one per camera per period
	// (10s); keep it well under Window.
	SightingEvery config.Duration `yaml:"sighting_every"`
	// MinConfidence is the confidence a person detection needs (0.5).
	MinConfidence float32 `yaml:"min_confidence"`
	// PersonClass is the detector's person class ("person").
	PersonClass string `yaml:"person_class"`
	// BoostFPS and BoostFor are the emergency sample rate and how long it
	// lasts (15 fps, 30m).
	BoostFPS float32         `yaml:"boost_fps"`
	BoostFor config.Duration `yaml:"boost_for"`
	// CommandTimeout is the SECURE_DEVICE command's delivery timeout (5m).
	CommandTimeout config.Duration `yaml:"command_timeout"`
	// SweepInterval is the clock period (15s).
	SweepInterval config.Duration `yaml:"sweep_interval"`
	// Zones is the zone map.
	Zones []Zone `yaml:"zones"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Group:              topics.GroupCorrelation,
		AlertRequestsTopic: topics.GroupAlerts + "-requests",
		Window:             config.Duration(2 * time.Minute),
		Grace:              config.Duration(30 * time.Second),
		MaxWait:            config.Duration(10 * time.Minute),
		DecidedRetention:   config.Duration(6 * time.Hour),
		SightingEvery:      config.Duration(10 * time.Second),
		MinConfidence:      0.5,
		PersonClass:        "person",
		BoostFPS:           15,
		BoostFor:           config.Duration(30 * time.Minute),
		CommandTimeout:     config.Duration(5 * time.Minute),
		SweepInterval:      config.Duration(15 * time.Second),
	}
}

// Decode decodes a raw section (e.g. connectors.rtsp.correlation) strictly
// over the defaults and validates it; path prefixes errors.
func Decode(node *yaml.Node, path string) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(node, path, &cfg); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Validate reports every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" || c.AlertRequestsTopic == "" || c.PersonClass == "" {
		errs = append(errs, errors.New("group, alert_requests_topic, person_class: must not be empty"))
	}
	if c.Window.D() <= 0 || c.Grace.D() < 0 || c.SweepInterval.D() <= 0 || c.BoostFor.D() <= 0 || c.CommandTimeout.D() <= 0 {
		errs = append(errs, errors.New("window, sweep_interval, boost_for, command_timeout: must be > 0"))
	}
	if c.MaxWait.D() <= c.Window.D()+c.Grace.D() {
		errs = append(errs, fmt.Errorf("max_wait: %v must be > window + grace", c.MaxWait.D()))
	}
	if c.DecidedRetention.D() < 0 {
		errs = append(errs, fmt.Errorf("decided_retention: %v must be >= 0", c.DecidedRetention.D()))
	}
	if c.SightingEvery.D() <= 0 || c.SightingEvery.D() > c.Window.D() {
		errs = append(errs, fmt.Errorf("sighting_every: %v must be in (0, window]", c.SightingEvery.D()))
	}
	if c.MinConfidence <= 0 || c.MinConfidence >= 1 {
		errs = append(errs, fmt.Errorf("min_confidence: %v not in (0,1)", c.MinConfidence))
	}
	if c.BoostFPS <= 0 || c.BoostFPS > 60 {
		errs = append(errs, fmt.Errorf("boost_fps: %v not in (0,60]", c.BoostFPS))
	}
	ids := map[string]bool{}
	locs := map[string]string{}
	for i, z := range c.Zones {
		p := fmt.Sprintf("zones[%d]", i)
		if z.ID == "" {
			errs = append(errs, fmt.Errorf("%s.id: required", p))
		} else if ids[z.ID] {
			errs = append(errs, fmt.Errorf("%s.id: %q used twice", p, z.ID))
		}
		ids[z.ID] = true
		for _, l := range z.Locations {
			if other, ok := locs[l]; ok && other != z.ID {
				errs = append(errs, fmt.Errorf("%s.locations: %q is also in zone %q", p, l, other))
			}
			locs[l] = z.ID
		}
		if z.MedicalDeviceArea && len(z.Devices) == 0 {
			errs = append(errs, fmt.Errorf("%s: medical_device_area without devices", p))
		}
	}
	return errors.Join(errs...)
}

// Topics names the topics the group reads and writes; [DefaultTopics]
// are the catalog's.
type Topics struct {
	Detections, VideoEvents, Intake, Alerts, AlertRequests, Commands, CameraControls, DeadLetters string
	// Prefix is what [PrefixedTopics] put before the catalog names; topic
	// creation looks the catalog's settings up without it.
	Prefix string
}

// PrefixedTopics returns [DefaultTopics] with prefix before every name
// (the rtsp role's connectors.rtsp.topic_prefix).
func PrefixedTopics(cfg Config, prefix string) Topics {
	t := DefaultTopics(cfg)
	for _, f := range []*string{&t.Detections, &t.VideoEvents, &t.Intake, &t.Alerts, &t.AlertRequests, &t.Commands, &t.CameraControls, &t.DeadLetters} {
		*f = prefix + *f
	}
	t.Prefix = prefix
	return t
}

// DefaultTopics returns the catalog topics and cfg's alert request topic.
func DefaultTopics(cfg Config) Topics {
	return Topics{Detections: topics.Detections, VideoEvents: topics.VideoEvents, Intake: topics.Intake,
		Alerts: topics.Alerts, AlertRequests: cfg.AlertRequestsTopic, Commands: topics.Commands, CameraControls: topics.CameraControls,
		DeadLetters: topics.DeadLetters}
}

// Option injects dependencies into [New].
type Option func(*Processor)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(p *Processor) { p.log = l } }

// WithRegisterer sets the metrics registerer.
func WithRegisterer(r prometheus.Registerer) Option { return func(p *Processor) { p.reg = r } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(p *Processor) { p.now = now } }

// WithTopics overrides the topic names (tests).
func WithTopics(t Topics) Option { return func(p *Processor) { p.topics = t } }

// Processor holds the group's rules; [Processor.Graph] is its goka graph.
type Processor struct {
	cfg    Config
	topics Topics
	log    *slog.Logger
	reg    prometheus.Registerer
	now    func() time.Time
	m      *metrics

	byLocation map[string]*Zone
	byID       map[string]*Zone
	byPatient  map[string][]*Zone
	byDevice   map[string][]*Zone

	mu       sync.Mutex
	lastSeen map[string]int64 // camera -> last forwarded sighting (ms); per-process thinning only
	lastFwd  map[string]int64 // camera -> last forwarded sighting or frame (ms)
}

// New validates cfg and builds the processor; it does no I/O.
func New(cfg Config, opts ...Option) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, topics: DefaultTopics(cfg), now: time.Now, lastSeen: map[string]int64{}, lastFwd: map[string]int64{},
		byLocation: map[string]*Zone{}, byID: map[string]*Zone{}, byPatient: map[string][]*Zone{}, byDevice: map[string][]*Zone{}}
	for _, o := range opts {
		o(p)
	}
	t := p.topics
	for _, n := range []string{t.Detections, t.VideoEvents, t.Intake, t.Alerts, t.AlertRequests, t.Commands, t.CameraControls, t.DeadLetters} {
		if n == "" {
			return nil, fmt.Errorf("correlation: a topic name is empty in %+v", t)
		}
	}
	p.log = telemetry.OrDiscard(p.log).With("component", "pipelines/correlation")
	p.m = newMetrics(p.reg)
	for i := range cfg.Zones {
		z := &p.cfg.Zones[i]
		p.byID[z.ID] = z
		p.byLocation[z.ID] = z
		for _, l := range z.Locations {
			p.byLocation[l] = z
		}
		for _, pt := range z.Patients {
			p.byPatient[pt] = append(p.byPatient[pt], z)
		}
		for _, d := range z.Devices {
			p.byDevice[d] = append(p.byDevice[d], z)
		}
	}
	return p, nil
}

// Graph returns the goka group graph.
func (p *Processor) Graph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(p.cfg.Group),
		goka.Input(goka.Stream(p.topics.Detections), new(gcodec.Bytes), p.decoded(func() proto.Message { return &pb.FrameDetections{} }, p.onDetections)),
		goka.Input(goka.Stream(p.topics.VideoEvents), new(gcodec.Bytes), p.decoded(func() proto.Message { return &pb.VideoEvent{} }, p.onVideoEvent)),
		goka.Input(goka.Stream(p.topics.Intake), new(gcodec.Bytes), p.decoded(func() proto.Message { return &pb.MedicationIntake{} }, p.onIntake)),
		goka.Input(goka.Stream(p.topics.Alerts), new(gcodec.Bytes), p.decoded(func() proto.Message { return &pb.Alert{} }, p.onAlert)),
		goka.Loop(envelopeCodec{}, p.onZone),
		goka.Visitor(VisitSweep, p.onSweep),
		goka.Persist(stateCodec{}),
		// The intake topic is also an input, and goka wants one codec per
		// topic: verified intakes are emitted as encoded bytes.
		goka.Output(goka.Stream(p.topics.Intake), new(gcodec.Bytes)),
		goka.Output(goka.Stream(p.topics.Commands), codec.NewGoka(func() *pb.DeviceCommand { return &pb.DeviceCommand{} })),
		goka.Output(goka.Stream(p.topics.AlertRequests), codec.NewGoka(func() *pb.Alert { return &pb.Alert{} })),
		goka.Output(goka.Stream(p.topics.CameraControls), codec.NewGoka(func() *pb.VideoEvent { return &pb.VideoEvent{} })),
		goka.Output(goka.Stream(p.topics.DeadLetters), codec.NewGoka(func() *pb.DeadLetter { return &pb.DeadLetter{} })),
	)
}

// decoded wraps a handler: inputs arrive as bytes so that a record that
// does not decode goes to the dead-letter topic instead of stopping the
// group (goka fails the processor on codec errors).
func (p *Processor) decoded(newMsg func() proto.Message, h func(goka.Context, any)) goka.ProcessCallback {
	return func(ctx goka.Context, msg any) {
		raw, _ := msg.([]byte)
		m := newMsg()
		if err := codec.Unmarshal(raw, m); err != nil {
			p.deadLetter(ctx, raw, "undecodable", err)
			return
		}
		h(ctx, m)
	}
}

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string, err error) {
	p.m.deadLetters.WithLabelValues(reason).Inc()
	now := p.now()
	src := string(ctx.Topic())
	p.log.Warn("input dead-lettered", "topic", src, "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	ctx.Emit(goka.Stream(p.topics.DeadLetters), ctx.Key(), &pb.DeadLetter{
		Meta: &pb.Meta{EventId: src + "/" + strconv.Itoa(int(ctx.Partition())) + "/" + strconv.FormatInt(ctx.Offset(), 10),
			EventTimeMs: now.UnixMilli(), IngestTimeMs: now.UnixMilli(), Source: Source},
		Stage: Source, SourceTopic: src, SourcePartition: ctx.Partition(), SourceOffset: ctx.Offset(),
		Key: []byte(ctx.Key()), Raw: raw, Reason: reason, Error: err.Error(),
	})
}

// Envelope is a loopback record, keyed by zone: a sighting, an intake or nothing else.
type Envelope struct {
	// Sighting is a person seen in the zone at this frame time (Unix ms).
	SightingMs int64 `json:"s,omitempty"`
	// FrameMs is a frame without a person at this frame time: it only
	// advances the zone's event-time watermark.
	FrameMs int64  `json:"f,omitempty"`
	Camera  string `json:"c,omitempty"`
	// Intake is a protobuf-encoded MedicationIntake to verify.
	Intake []byte `json:"i,omitempty"`
}

// ZoneState is the group table value per zone.
type ZoneState struct {
	// Sightings are person sighting times (Unix ms), ascending, within
	// the retention horizon.
	Sightings []int64 `json:"sightings,omitempty"`
	// Watermark is the frame time (Unix ms) every live camera of the zone
	// has reported, with or without a person: how far the zone's video
	// has progressed in event time (see advance).
	Watermark int64 `json:"wm,omitempty"`
	// Cameras is each camera's newest frame time (Unix ms).
	Cameras map[string]int64 `json:"cams,omitempty"`
	// Pending are intakes waiting for their window to close.
	Pending []Pending `json:"pending,omitempty"`
	// Decided are the intakes decided recently, in decision order, for
	// redeliveries.
	Decided []Decided `json:"decided,omitempty"`
}

// Decided is the verdict on an intake, remembered for
// Config.DecidedRetention beyond its window.
type Decided struct {
	ID       string `json:"id"`
	IntakeMs int64  `json:"t"`
	// Unverified is the verdict: UNVERIFIED if set, else CAMERA_CONFIRMED.
	Unverified bool `json:"u,omitempty"`
}

// Verdict is the verification the intake got.
func (d Decided) Verdict() string {
	if d.Unverified {
		return Unverified
	}
	return CameraConfirmed
}

// maxDecided bounds the remembered verdicts per zone (the oldest go first).
const maxDecided = 256

// decided returns the remembered verdict on the intake with event id.
func (s *ZoneState) decided(id string) (Decided, bool) {
	if id == "" {
		return Decided{}, false
	}
	for _, d := range s.Decided {
		if d.ID == id {
			return d, true
		}
	}
	return Decided{}, false
}

// pruneDecided forgets verdicts on intakes older than before, and the
// oldest beyond maxDecided.
func (s *ZoneState) pruneDecided(before int64) {
	kept := s.Decided[:0]
	for _, d := range s.Decided {
		if d.IntakeMs >= before {
			kept = append(kept, d)
		}
	}
	if len(kept) > maxDecided {
		kept = append(kept[:0], kept[len(kept)-maxDecided:]...)
	}
	clear(s.Decided[len(kept):])
	s.Decided = kept
	if len(s.Decided) == 0 {
		s.Decided = nil
	}
}

// Pending is an intake waiting for a sighting.
type Pending struct {
	IntakeMs int64 `json:"t"`
	// ID is the intake's event id (empty in states written before it was
	// kept: [Pending.id] reads it from Intake then).
	ID string `json:"id,omitempty"`
	// ArrivedMs is the processing time (Unix ms) the intake reached its
	// zone, from which Config.MaxWait counts (0 in states written before:
	// the intake time counts instead).
	ArrivedMs int64  `json:"a,omitempty"`
	Intake    []byte `json:"i"`
}

// id is the pending intake's event id.
func (pd Pending) id() string {
	if pd.ID != "" {
		return pd.ID
	}
	var in pb.MedicationIntake
	if codec.Unmarshal(pd.Intake, &in) != nil {
		return ""
	}
	return in.GetMeta().GetEventId()
}

// pending reports whether the intake with event id is already pending
// (an intake without an id is never a duplicate).
func (s *ZoneState) pending(id string) bool {
	if id == "" {
		return false
	}
	for _, pd := range s.Pending {
		if pd.id() == id {
			return true
		}
	}
	return false
}

// maxSightings bounds the state per zone: at one sighting per camera per
// 10 s, 512 covers 4 cameras over > 20 minutes.
const maxSightings = 512

type envelopeCodec struct{}

func (envelopeCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (envelopeCodec) Decode(b []byte) (any, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("correlation loopback record: %w", err)
	}
	return &e, nil
}

type stateCodec struct{}

func (stateCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (stateCodec) Decode(b []byte) (any, error) {
	var s ZoneState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("correlation zone state: %w", err)
	}
	return &s, nil
}

// onDetections forwards person sightings to their zone, thinned per camera.
func (p *Processor) onDetections(ctx goka.Context, msg any) {
	fd := msg.(*pb.FrameDetections)
	if fd.GetZone() == "" {
		return
	}
	person := false
	for _, d := range fd.GetDetections() {
		if d.GetClassName() == p.cfg.PersonClass && d.GetConfidence() >= p.cfg.MinConfidence {
			person = true
			break
		}
	}
	t, cam := fd.GetFrameTimeMs(), fd.GetCameraId()
	if t == 0 {
		return
	}
	every := p.cfg.SightingEvery.D().Milliseconds()
	p.mu.Lock()
	var fwd bool
	if person {
		last, ok := p.lastSeen[cam]
		if fwd = !ok || t-last >= every || t < last; fwd {
			p.lastSeen[cam], p.lastFwd[cam] = t, t
		}
	} else {
		// Frames without a person still tell the zone how far its video
		// has progressed (see ZoneState.Watermark), thinned alike.
		last, ok := p.lastFwd[cam]
		if fwd = !ok || t-last >= every || t < last; fwd {
			p.lastFwd[cam] = t
		}
	}
	p.mu.Unlock()
	switch {
	case fwd && person:
		p.m.sightings.Inc()
		ctx.Loopback(fd.GetZone(), &Envelope{SightingMs: t, Camera: cam})
	case fwd:
		p.m.frames.Inc()
		ctx.Loopback(fd.GetZone(), &Envelope{FrameMs: t, Camera: cam})
	}
}

// onVideoEvent secures medical device areas on UNAUTHORIZED_ACCESS; person
// events also count as sightings.
func (p *Processor) onVideoEvent(ctx goka.Context, msg any) {
	ev := msg.(*pb.VideoEvent)
	switch ev.GetEventType() {
	case pb.VideoEventType_PERSON_DETECTED, pb.VideoEventType_UNAUTHORIZED_ACCESS, pb.VideoEventType_ANOMALY_DETECTED:
		if ev.GetZone() != "" {
			ctx.Loopback(ev.GetZone(), &Envelope{SightingMs: ev.GetStartTimeMs(), Camera: ev.GetCameraId()})
		}
	}
	if ev.GetEventType() != pb.VideoEventType_UNAUTHORIZED_ACCESS {
		return
	}
	z := p.byID[ev.GetZone()]
	if z == nil || !z.MedicalDeviceArea {
		p.m.unauthorized.WithLabelValues("not_device_area").Inc()
		return
	}
	now := p.now()
	tenant := ev.GetMeta().GetTenant()
	eid := ev.GetMeta().GetEventId()
	payload, _ := json.Marshal(map[string]string{"reason": "unauthorized access", "zone": z.ID, "camera": ev.GetCameraId(), "video_event_id": eid})
	for _, dev := range z.Devices {
		id := "secure|" + eid + "|" + dev
		ctx.Emit(goka.Stream(p.topics.Commands), dev, &pb.DeviceCommand{
			Meta:      &pb.Meta{Tenant: tenant, EventId: id, EventTimeMs: ev.GetStartTimeMs(), IngestTimeMs: now.UnixMilli(), Source: Source},
			CommandId: id, DeviceId: dev, CommandType: pb.CommandType_SECURE_DEVICE, PayloadJson: string(payload),
			IssuedBy: Source, State: pb.CommandState_COMMAND_PENDING, TimeoutMs: p.cfg.CommandTimeout.D().Milliseconds(), Version: 1,
		})
		p.m.commands.Inc()
	}
	// Alert request in the alerts group's format (see pipelines/alerts
	// Request): id = type|subjectType|subjectId|window, event id id@state.
	alertID := pb.AlertType_UNAUTHORIZED_ACCESS_ALERT.String() + "|camera|" + ev.GetCameraId() + "|" + strconv.FormatInt(ev.GetStartTimeMs(), 10)
	ctx.Emit(goka.Stream(p.topics.AlertRequests), alertID, &pb.Alert{
		Meta:    &pb.Meta{Tenant: tenant, EventId: alertID + "@" + pb.AlertState_OPEN.String(), EventTimeMs: ev.GetStartTimeMs(), IngestTimeMs: now.UnixMilli(), Source: Source},
		AlertId: alertID, AlertType: pb.AlertType_UNAUTHORIZED_ACCESS_ALERT, Priority: pb.Priority_HIGH, State: pb.AlertState_OPEN,
		SubjectType: "camera", SubjectId: ev.GetCameraId(), CameraId: ev.GetCameraId(), Ward: ev.GetWard(),
		Message:      fmt.Sprintf("unauthorized access in medical device area %s; %d device(s) secured", z.ID, len(z.Devices)),
		OpenedTimeMs: ev.GetStartTimeMs(),
	})
	p.m.unauthorized.WithLabelValues("secured").Inc()
}

// onIntake sends intakes from mapped locations to their zone.
func (p *Processor) onIntake(ctx goka.Context, msg any) {
	in := msg.(*pb.MedicationIntake)
	if in.GetVerification() != "" {
		return // already verified (our own output, or the device verified it)
	}
	z := p.byLocation[in.GetLocation()]
	if z == nil {
		p.m.intakes.WithLabelValues("unmapped").Inc()
		return
	}
	b, err := codec.Marshal(in)
	if err != nil {
		ctx.Fail(fmt.Errorf("re-encoding intake %s: %w", in.GetMeta().GetEventId(), err))
	}
	ctx.Loopback(z.ID, &Envelope{Intake: b})
}

// onAlert boosts the cameras of a patient's or device's zones on a
// VITALS_EMERGENCY.
func (p *Processor) onAlert(ctx goka.Context, msg any) {
	a := msg.(*pb.Alert)
	if a.GetAlertType() != pb.AlertType_VITALS_EMERGENCY || a.GetState() != pb.AlertState_OPEN {
		return
	}
	zones := append(append([]*Zone(nil), p.byPatient[a.GetPatientId()]...), p.byDevice[a.GetDeviceId()]...)
	start := a.GetOpenedTimeMs()
	if start == 0 {
		start = a.GetMeta().GetEventTimeMs()
	}
	if start == 0 {
		start = p.now().UnixMilli()
	}
	end := start + p.cfg.BoostFor.D().Milliseconds()
	seen := map[string]bool{}
	for _, z := range zones {
		for _, cam := range z.Cameras {
			if seen[cam] {
				continue
			}
			seen[cam] = true
			details, _ := json.Marshal(map[string]any{"reason": "VITALS_EMERGENCY", "alert_id": a.GetAlertId(), "sample_fps": p.cfg.BoostFPS})
			ctx.Emit(goka.Stream(p.topics.CameraControls), cam, &pb.VideoEvent{
				Meta:     &pb.Meta{Tenant: a.GetMeta().GetTenant(), EventId: "boost|" + a.GetAlertId() + "|" + cam, EventTimeMs: start, IngestTimeMs: p.now().UnixMilli(), Source: Source},
				CameraId: cam, Zone: z.ID, Ward: a.GetWard(), EventType: pb.VideoEventType_SAMPLE_RATE_BOOST,
				SampleFps: p.cfg.BoostFPS, StartTimeMs: start, EndTimeMs: end, Details: string(details),
			})
			p.m.boosts.Inc()
		}
	}
}

// onZone updates a zone's state with a sighting, a frame or an intake.
//
// Intakes are judged in event time: a sighting within +-Window of the
// intake time confirms it, whenever either arrives; it is UNVERIFIED once
// the zone's watermark (the frame time its live cameras have all reached) has passed
// its window plus Grace without one, or, for a zone whose cameras are
// silent, MaxWait after it arrived. So a backlog read after a restart
// gives the verdicts the same records gave live.
func (p *Processor) onZone(ctx goka.Context, msg any) {
	env := msg.(*Envelope)
	st, _ := ctx.Value().(*ZoneState)
	if st == nil {
		st = &ZoneState{}
	}
	now := p.now().UnixMilli()
	w := p.cfg.Window.D().Milliseconds()
	switch {
	case env.SightingMs != 0:
		st.addSighting(env.SightingMs)
		p.advance(st, env.Camera, env.SightingMs, now)
		// Pending intakes within the window of this sighting are confirmed.
		kept := st.Pending[:0]
		for _, pd := range st.Pending {
			if abs(env.SightingMs-pd.IntakeMs) <= w {
				p.decide(ctx, st, pd, CameraConfirmed)
				continue
			}
			kept = append(kept, pd)
		}
		st.Pending = kept
		p.settle(ctx, st, now)
	case env.FrameMs != 0:
		changed := p.advance(st, env.Camera, env.FrameMs, now)
		if !p.settle(ctx, st, now) && !changed {
			return // nothing changed: no table write
		}
	case len(env.Intake) > 0:
		var in pb.MedicationIntake
		if err := codec.Unmarshal(env.Intake, &in); err != nil {
			ctx.Fail(fmt.Errorf("loopback intake: %w", err))
		}
		t := in.GetIntakeTimeMs()
		if t == 0 {
			t = in.GetMeta().GetEventTimeMs()
		}
		id := in.GetMeta().GetEventId()
		if d, ok := st.decided(id); ok {
			// Decided before (a pillcase retry, a replay from an older
			// offset): the same verdict again, never a contradicting one
			// under the same event id.
			p.emitVerified(ctx, env.Intake, d.Verdict(), "redelivered")
			return
		}
		if st.pending(id) {
			// Redelivered (goka is at least once, pillcases retry) while
			// its window is open: the pending copy is decided once.
			p.m.intakes.WithLabelValues("duplicate").Inc()
			return
		}
		pd := Pending{IntakeMs: t, ID: id, ArrivedMs: now, Intake: env.Intake}
		switch {
		case st.sightingWithin(t-w, t+w):
			p.decide(ctx, st, pd, CameraConfirmed)
		case p.closed(st, pd, now):
			p.decide(ctx, st, pd, Unverified)
		default:
			st.Pending = append(st.Pending, pd)
		}
	default:
		return
	}
	st.trim(p.horizon(st))
	st.pruneDecided(p.decidedHorizon(st))
	ctx.SetValue(st)
}

// advance records frame time t of camera cam and moves the zone's
// watermark to the time every live camera of the zone has reached: the
// slowest camera's newest frame, among those at most MaxWait behind the
// zone's fastest (a camera further behind, or gone, is stalled and would
// otherwise hold every window open; a pending intake waits MaxWait at most
// anyway). The fastest camera alone would close the window of an intake
// whose sighting a slower camera (a longer detection backlog) had not
// reported yet. The watermark never moves back. A frame time more than
// Grace ahead of the clock (a camera with a wrong clock) counts as now +
// Grace only, so it cannot close every window at once. It reports whether
// the state changed.
func (p *Processor) advance(st *ZoneState, cam string, t, now int64) bool {
	before := st.Watermark
	if st.Watermark == 0 && len(st.Sightings) > 0 {
		st.Watermark = st.Sightings[len(st.Sightings)-1] // a state written before the watermark
	}
	t = min(t, now+p.cfg.Grace.D().Milliseconds())
	if cam == "" { // a loopback record written before cameras were kept
		st.Watermark = max(st.Watermark, t)
		return st.Watermark != before
	}
	changed := false
	if t > st.Cameras[cam] {
		if st.Cameras == nil {
			st.Cameras = map[string]int64{}
		}
		st.Cameras[cam], changed = t, true
	}
	newest := int64(0)
	for _, c := range st.Cameras {
		newest = max(newest, c)
	}
	low := newest
	for c, ct := range st.Cameras {
		switch {
		case ct < newest-camerasForgotten:
			delete(st.Cameras, c) // removed from the zone long ago
			changed = true
		case ct >= newest-p.cfg.MaxWait.D().Milliseconds():
			low = min(low, ct)
		}
	}
	st.Watermark = max(st.Watermark, low)
	return changed || st.Watermark != before
}

// camerasForgotten is how far behind the zone's fastest camera a camera's
// newest frame may be before the zone forgets it.
const camerasForgotten = int64(24 * time.Hour / time.Millisecond)

// closed reports whether a pending intake's verdict is due: the zone's
// video has passed its window plus grace, or it waited MaxWait.
func (p *Processor) closed(st *ZoneState, pd Pending, now int64) bool {
	if pd.IntakeMs+p.cfg.Window.D().Milliseconds()+p.cfg.Grace.D().Milliseconds() < st.Watermark {
		return true
	}
	arrived := pd.ArrivedMs
	if arrived == 0 {
		arrived = pd.IntakeMs
	}
	return arrived+p.cfg.MaxWait.D().Milliseconds() < now
}

// settle declares the pending intakes whose verdict is due UNVERIFIED
// and reports whether there were any.
func (p *Processor) settle(ctx goka.Context, st *ZoneState, now int64) bool {
	kept := st.Pending[:0]
	changed := false
	for _, pd := range st.Pending {
		if p.closed(st, pd, now) {
			p.decide(ctx, st, pd, Unverified)
			changed = true
			continue
		}
		kept = append(kept, pd)
	}
	clear(st.Pending[len(kept):])
	st.Pending = kept
	return changed
}

// onSweep decides pending intakes whose verdict is due by the clock (the
// MaxWait fallback; the watermark closes windows as frames arrive).
func (p *Processor) onSweep(ctx goka.Context, meta any) {
	now, _ := meta.(int64)
	st, _ := ctx.Value().(*ZoneState)
	if st == nil || len(st.Pending) == 0 {
		return
	}
	if p.settle(ctx, st, now) {
		st.pruneDecided(p.decidedHorizon(st))
		ctx.SetValue(st)
	}
}

// decide emits the verdict on a pending intake and remembers it.
func (p *Processor) decide(ctx goka.Context, st *ZoneState, pd Pending, verdict string) {
	p.emitVerified(ctx, pd.Intake, verdict, verdict)
	if id := pd.id(); id != "" {
		st.Decided = append(st.Decided, Decided{ID: id, IntakeMs: pd.IntakeMs, Unverified: verdict == Unverified})
	}
}

// horizon is the oldest sighting still useful, in event time: the window
// of an intake that may still arrive before the watermark closes it, and
// those of the pending intakes.
func (p *Processor) horizon(st *ZoneState) int64 {
	w := p.cfg.Window.D().Milliseconds()
	h := st.Watermark - 2*w - p.cfg.Grace.D().Milliseconds()
	for _, pd := range st.Pending {
		h = min(h, pd.IntakeMs-w)
	}
	return h
}

// decidedHorizon is the oldest intake time whose verdict the zone still
// remembers: DecidedRetention beyond the window of the newest event time
// the zone knows (its watermark or newest decided intake), so the memory
// is bounded by event time, whatever the clock.
func (p *Processor) decidedHorizon(st *ZoneState) int64 {
	newest := st.Watermark
	// An intake stamped by a clock far ahead must not wipe the zone's
	// verdicts: intake times count only up to now plus grace, as the
	// watermark does.
	ceiling := p.now().UnixMilli() + p.cfg.Grace.D().Milliseconds()
	for _, d := range st.Decided {
		newest = max(newest, min(d.IntakeMs, ceiling))
	}
	return newest - p.cfg.Window.D().Milliseconds() - p.cfg.Grace.D().Milliseconds() - p.cfg.DecidedRetention.D().Milliseconds()
}

// emitVerified re-emits the intake with its verification; outcome is the
// metric's label.
func (p *Processor) emitVerified(ctx goka.Context, raw []byte, verification, outcome string) {
	var in pb.MedicationIntake
	if err := codec.Unmarshal(raw, &in); err != nil {
		ctx.Fail(fmt.Errorf("pending intake: %w", err))
	}
	in.Verification = verification
	out, err := codec.Marshal(&in)
	if err != nil {
		ctx.Fail(fmt.Errorf("encoding verified intake %s: %w", in.GetMeta().GetEventId(), err))
	}
	ctx.Emit(goka.Stream(p.topics.Intake), in.GetPatientId(), out)
	p.m.intakes.WithLabelValues(outcome).Inc()
}

func (s *ZoneState) addSighting(t int64) {
	i := sort.Search(len(s.Sightings), func(i int) bool { return s.Sightings[i] >= t })
	if i < len(s.Sightings) && s.Sightings[i] == t {
		return
	}
	s.Sightings = append(s.Sightings, 0)
	copy(s.Sightings[i+1:], s.Sightings[i:])
	s.Sightings[i] = t
	if len(s.Sightings) > maxSightings {
		s.Sightings = s.Sightings[len(s.Sightings)-maxSightings:]
	}
}

func (s *ZoneState) sightingWithin(from, to int64) bool {
	i := sort.Search(len(s.Sightings), func(i int) bool { return s.Sightings[i] >= from })
	return i < len(s.Sightings) && s.Sightings[i] <= to
}

// trim drops sightings before horizon h, but keeps the newest one.
func (s *ZoneState) trim(h int64) {
	i := sort.Search(len(s.Sightings), func(i int) bool { return s.Sightings[i] >= h })
	if i >= len(s.Sightings) {
		i = len(s.Sightings) - 1
	}
	if i > 0 {
		s.Sightings = append(s.Sightings[:0], s.Sightings[i:]...)
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
