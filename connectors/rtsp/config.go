package rtsp

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/connectors/rtsp/detect"
	"github.com/wardstream/wardstream/connectors/rtsp/events"
	"github.com/wardstream/wardstream/internal/config"
)

// Config is the connectors.rtsp section of the topology.
type Config struct {
	// ONNXRuntimeLib is the ONNX Runtime shared library
	// (.local/onnxruntime/lib/libonnxruntime.so, fetched by
	// deploy/local/onnxruntime.sh); env ONNXRUNTIME_LIB overrides it.
	ONNXRuntimeLib string `yaml:"onnxruntime_lib"`
	// TopicPrefix prefixes every Kafka topic name, and the correlation
	// group's name (bench runs, shared clusters).
	TopicPrefix string `yaml:"topic_prefix"`
	// Detector is the model and its output filtering (one model for all
	// cameras; the session pool is shared).
	Detector detect.Config `yaml:"detector"`
	// Events are the event rules' defaults; cameras add their own areas.
	Events events.Config `yaml:"events"`
	// SampleFPS is how many frames per second each camera sends to the
	// detector (5); the decoder still decodes every frame.
	SampleFPS float64 `yaml:"sample_fps"`
	// QueueFrames bounds each camera's queue of sampled frames waiting for
	// inference (2). When full the oldest frame is dropped and counted in
	// wardstream_rtsp_frames_dropped_total.
	QueueFrames int `yaml:"queue_frames"`
	// Workers is the number of inference workers (0: one per session).
	Workers int `yaml:"workers"`
	// Motion enables motion gating: a sampled frame whose luma thumbnail
	// differs from the last inferred one by less than MotionThreshold
	// (mean absolute difference, 0..1) skips inference and reuses the last
	// detections for the event rules, at most for MotionMaxSkip.
	Motion          bool            `yaml:"motion"`
	MotionThreshold float64         `yaml:"motion_threshold"`
	MotionMaxSkip   config.Duration `yaml:"motion_max_skip"`
	// Transport is tcp, udp or auto (UDP, then TCP) for cameras that do
	// not set their own (tcp).
	Transport string `yaml:"transport"`
	// ReadTimeout closes and reconnects a session that delivered no
	// decoded picture for this long (10s).
	ReadTimeout config.Duration `yaml:"read_timeout"`
	// ReconnectMin and ReconnectMax bound the reconnect backoff (1s, 30s);
	// it doubles per failure, with jitter, and resets after a healthy session.
	ReconnectMin config.Duration `yaml:"reconnect_min"`
	ReconnectMax config.Duration `yaml:"reconnect_max"`
	// FrameClock picks the clock frame times come from: "camera" (default)
	// uses the camera's NTP time from RTCP sender reports once one arrived;
	// "local" always uses our clock at the session's first packet plus the
	// RTP time since (for cameras whose clocks are not synchronized). A
	// camera time more than 30s from the local one is never used.
	FrameClock string `yaml:"frame_clock"`
	// Controls makes the role follow the camera-controls topic (sample
	// rate boosts from the correlation processor); default true.
	Controls bool `yaml:"controls"`
	// StateLookback is how far back a starting role reads the frame
	// detections it produced before (its detections topic) to rebuild each
	// camera's event state, so that a restart does not raise the events
	// of episodes still going on again (1m; 0 turns it off). It must cover
	// events.debounce and events.occupancy_stable.
	StateLookback config.Duration `yaml:"state_lookback"`
	// StateMaxGap is the longest time a camera may go unwatched across a
	// restart (from its last replayed frame to its first live one) without
	// that time counting toward the debounce (2m).
	StateMaxGap config.Duration `yaml:"state_max_gap"`
	// Cameras are the cameras to read.
	Cameras []Camera `yaml:"cameras"`
	// Correlation is the cross-system correlation group's section
	// (pipelines/correlation), run with this role when enabled. It stays a
	// raw node here: this package does not import the pipeline.
	Correlation yaml.Node `yaml:"correlation"`
}

// Camera is one RTSP source.
type Camera struct {
	// ID is the camera id (the Kafka key of its records).
	ID string `yaml:"id"`
	// URL is rtsp:// or rtsps://host[:port]/path. Put no password here:
	// use Username and PasswordEnv, or URLEnv for a whole URL with
	// credentials. URLs are logged with credentials redacted.
	URL string `yaml:"url"`
	// URLEnv names an env var holding the URL (wins over URL).
	URLEnv string `yaml:"url_env"`
	// Username and PasswordEnv add credentials to the URL.
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
	// Tenant defaults to the topology's tenant.
	Tenant string `yaml:"tenant"`
	// Zone is the camera's zone (what intakes' locations map to), Location
	// a human description, Ward its ward.
	Zone     string `yaml:"zone"`
	Location string `yaml:"location"`
	Ward     string `yaml:"ward"`
	// Transport overrides the section's transport.
	Transport string `yaml:"transport"`
	// SampleFPS overrides the section's sample rate.
	SampleFPS float64 `yaml:"sample_fps"`
	// ClassConfidence raises per-class thresholds for this camera above
	// the detector's.
	ClassConfidence map[string]float32 `yaml:"class_confidence"`
	// Areas are restricted / quiet-hours regions of this camera's view.
	Areas []events.Area `yaml:"areas"`
}

// DefaultConfig returns the defaults: the committed test model is the
// default detector so that a fresh checkout runs end to end.
func DefaultConfig() Config {
	det := detect.DefaultConfig()
	det.Model = "connectors/rtsp/testmodel/colorbox.onnx"
	return Config{
		ONNXRuntimeLib:  detect.DefaultLibrary,
		Detector:        det,
		Events:          events.DefaultConfig(),
		SampleFPS:       5,
		QueueFrames:     2,
		MotionThreshold: 0.01,
		MotionMaxSkip:   config.Duration(5 * time.Second),
		Transport:       "tcp",
		ReadTimeout:     config.Duration(10 * time.Second),
		ReconnectMin:    config.Duration(time.Second),
		ReconnectMax:    config.Duration(30 * time.Second),
		FrameClock:      "camera",
		Controls:        true,
		StateLookback:   config.Duration(time.Minute),
		StateMaxGap:     config.Duration(2 * time.Minute),
	}
}

// Load decodes connectors.rtsp from root strictly, applies defaults and
// validates.
func Load(root *config.Root) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(&root.Connectors.RTSP, "connectors.rtsp", &cfg); err != nil {
		return cfg, err
	}
	for i := range cfg.Cameras {
		if cfg.Cameras[i].Tenant == "" {
			cfg.Cameras[i].Tenant = root.Tenant
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("connectors.rtsp: %w", err)
	}
	return cfg, nil
}

func validTransport(s string) bool { return s == "" || s == "tcp" || s == "udp" || s == "auto" }

// Validate reports every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	add := func(prefix string, err error) {
		if err == nil {
			return
		}
		for _, e := range splitJoined(err) {
			errs = append(errs, fmt.Errorf("%s.%w", prefix, e))
		}
	}
	add("detector", c.Detector.Validate())
	add("events", c.Events.Validate())
	if c.SampleFPS <= 0 || c.SampleFPS > 60 {
		errs = append(errs, fmt.Errorf("sample_fps: %v not in (0,60]", c.SampleFPS))
	}
	if c.QueueFrames < 1 {
		errs = append(errs, fmt.Errorf("queue_frames: %d must be >= 1", c.QueueFrames))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers: %d must be >= 0", c.Workers))
	}
	if c.MotionThreshold < 0 || c.MotionThreshold >= 1 {
		errs = append(errs, fmt.Errorf("motion_threshold: %v not in [0,1)", c.MotionThreshold))
	}
	if c.MotionMaxSkip.D() < 0 || (c.Motion && c.MotionMaxSkip.D() == 0) {
		errs = append(errs, fmt.Errorf("motion_max_skip: %v must be > 0", c.MotionMaxSkip.D()))
	}
	if c.FrameClock != "camera" && c.FrameClock != "local" {
		errs = append(errs, fmt.Errorf("frame_clock: %q (want camera or local)", c.FrameClock))
	}
	if !validTransport(c.Transport) {
		errs = append(errs, fmt.Errorf("transport: %q (want tcp, udp or auto)", c.Transport))
	}
	if c.ReadTimeout.D() <= 0 || c.ReconnectMin.D() <= 0 || c.ReconnectMax.D() < c.ReconnectMin.D() {
		errs = append(errs, errors.New("read_timeout, reconnect_min, reconnect_max: must be > 0 with reconnect_max >= reconnect_min"))
	}
	if lb := c.StateLookback.D(); lb < 0 || (lb > 0 && lb < c.Events.Debounce.D()+c.Events.OccupancyStable.D()) {
		errs = append(errs, fmt.Errorf("state_lookback: %v must be 0 (off) or >= events.debounce + events.occupancy_stable (%v)", lb, c.Events.Debounce.D()+c.Events.OccupancyStable.D()))
	}
	if c.StateMaxGap.D() < 0 {
		errs = append(errs, fmt.Errorf("state_max_gap: %v must be >= 0", c.StateMaxGap.D()))
	}
	ids := map[string]bool{}
	for i, cam := range c.Cameras {
		p := fmt.Sprintf("cameras[%d]", i)
		if cam.ID == "" {
			errs = append(errs, fmt.Errorf("%s.id: required", p))
		} else if ids[cam.ID] {
			errs = append(errs, fmt.Errorf("%s.id: %q used twice", p, cam.ID))
		}
		ids[cam.ID] = true
		if cam.URLEnv == "" {
			u, err := url.Parse(cam.URL)
			switch {
			case cam.URL == "":
				errs = append(errs, fmt.Errorf("%s.url: required (or url_env)", p))
			case err != nil:
				errs = append(errs, fmt.Errorf("%s.url: does not parse", p)) // never echo: it may hold a password
			case u.Scheme != "rtsp" && u.Scheme != "rtsps":
				errs = append(errs, fmt.Errorf("%s.url: scheme %q (want rtsp or rtsps)", p, u.Scheme))
			case u.Hostname() == "":
				errs = append(errs, fmt.Errorf("%s.url: no host", p))
			default:
				if _, has := u.User.Password(); has {
					errs = append(errs, fmt.Errorf("%s.url: holds a password; use username + password_env or url_env", p))
				}
			}
		}
		if cam.PasswordEnv != "" && cam.Username == "" {
			errs = append(errs, fmt.Errorf("%s.password_env: set without username (the password would never be sent)", p))
		}
		if !validTransport(cam.Transport) {
			errs = append(errs, fmt.Errorf("%s.transport: %q (want tcp, udp or auto)", p, cam.Transport))
		}
		if cam.SampleFPS < 0 || cam.SampleFPS > 60 {
			errs = append(errs, fmt.Errorf("%s.sample_fps: %v not in [0,60]", p, cam.SampleFPS))
		}
		for k, v := range cam.ClassConfidence {
			if v <= 0 || v >= 1 {
				errs = append(errs, fmt.Errorf("%s.class_confidence[%q]: %v not in (0,1)", p, k, v))
			}
		}
		ev := c.Events
		ev.Areas = cam.Areas
		add(p, ev.Validate())
	}
	return errors.Join(errs...)
}

func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// resolveURL returns the camera URL with credentials, from URLEnv or URL
// plus Username/PasswordEnv. The result must never be logged; use
// [redact].
func (c Camera) resolveURL(getenv func(string) string) (string, error) {
	raw := c.URL
	if c.URLEnv != "" {
		raw = getenv(c.URLEnv)
		if raw == "" {
			return "", fmt.Errorf("camera %s: env %s is empty", c.ID, c.URLEnv)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("camera %s: url does not parse", c.ID)
	}
	if (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Hostname() == "" {
		return "", fmt.Errorf("camera %s: url %s: want rtsp://host[:port]/path or rtsps://", c.ID, u.Redacted())
	}
	if c.Username != "" {
		pw := ""
		if c.PasswordEnv != "" {
			pw = getenv(c.PasswordEnv)
		}
		u.User = url.UserPassword(c.Username, pw)
	}
	return u.String(), nil
}

// redact returns the URL with any password replaced by "xxxxx".
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable url>"
	}
	return u.Redacted()
}
