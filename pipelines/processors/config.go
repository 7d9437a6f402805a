package processors

import (
	"errors"
	"fmt"
	"time"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/pipelines/adherence"
	"github.com/wardstream/wardstream/pipelines/alerts"
	"github.com/wardstream/wardstream/pipelines/anomaly"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Group names accepted in [Config.Groups].
const (
	GroupAdherence = "adherence"
	GroupAnomaly   = "anomaly"
	GroupAlerts    = "alerts"
)

// Config is the pipelines section of the topology.
type Config struct {
	// Groups are the goka groups this instance runs (default all three:
	// adherence, anomaly, alerts). Instances running the same group share
	// its partitions.
	Groups []string `yaml:"groups"`
	// TopicPrefix is prepended to every catalog topic name and to the goka
	// group names (and so to their table and loopback topics); "" by
	// default. Tests and shared clusters use it.
	TopicPrefix string `yaml:"topic_prefix"`
	// AlertRequestsTopic is the internal topic detecting groups send alert
	// requests to and the alerts group consumes (keyed by alert id; created
	// with the partitions of the alerts-ack topic). Default
	// "wardstream-alerts-requests"; TopicPrefix is prepended.
	AlertRequestsTopic string `yaml:"alert_requests_topic"`
	// TickInterval is how often the clock visits every key (missed doses,
	// alert escalation); default 15s, at most 30s so that MISSED is emitted
	// within 60 s of scheduled time + grace.
	TickInterval config.Duration `yaml:"tick_interval"`
	// GroupRestarts is how many times in a row a failed goka group is
	// rebuilt and restarted (after 1s, 2s, 4s ... up to 30s) before the
	// role gives up and exits (default 5; 0 exits on the first failure).
	// Failures right after topics are created (a partition without a
	// leader yet) and broker restarts are transient; a group that ran for
	// 2 minutes starts counting again.
	GroupRestarts int `yaml:"group_restarts"`
	// StorageDir holds goka's local table copies (LevelDB) when set; empty
	// keeps them in memory (restored from the table topics on start).
	StorageDir string `yaml:"storage_dir"`
	// CorrectionHorizon is how long doses stay correctable by late intakes
	// (default 72h, at least 24h).
	CorrectionHorizon config.Duration `yaml:"correction_horizon"`
	// LowAdherenceThreshold is the 7-day ratio below which LOW_ADHERENCE
	// is raised (default 0.8).
	LowAdherenceThreshold float64 `yaml:"low_adherence_threshold"`
	// BatteryThreshold (percent) raises LOW_BATTERY below it (default 20).
	BatteryThreshold float64 `yaml:"battery_threshold"`
	// EpisodeQuiet ends a discrete device-alert episode after this long
	// without a repeat (default 15m).
	EpisodeQuiet config.Duration `yaml:"episode_quiet"`
	// Baseline tunes the per-patient statistical baseline.
	Baseline BaselineConfig `yaml:"baseline"`
	// AlertSLA is the time to acknowledge per priority before escalation.
	AlertSLA SLAConfig `yaml:"alert_sla"`
	// MaxEscalation bounds alert escalation levels (default 3).
	MaxEscalation int32 `yaml:"max_escalation"`
}

// BaselineConfig is the YAML form of anomaly.BaselineConfig.
type BaselineConfig struct {
	Alpha      float64 `yaml:"alpha"`
	MinSamples int64   `yaml:"min_samples"`
	ZThreshold float64 `yaml:"z_threshold"`
	ZScale     float64 `yaml:"z_scale"`
}

// SLAConfig is the time to acknowledge per priority.
type SLAConfig struct {
	Critical config.Duration `yaml:"critical"`
	High     config.Duration `yaml:"high"`
	Medium   config.Duration `yaml:"medium"`
	Low      config.Duration `yaml:"low"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	b := anomaly.DefaultBaselineConfig()
	a := alerts.DefaultConfig()
	return Config{
		Groups:                []string{GroupAdherence, GroupAnomaly, GroupAlerts},
		AlertRequestsTopic:    topics.GroupAlerts + "-requests",
		TickInterval:          config.Duration(15 * time.Second),
		GroupRestarts:         5,
		CorrectionHorizon:     config.Duration(72 * time.Hour),
		LowAdherenceThreshold: 0.8,
		BatteryThreshold:      20,
		EpisodeQuiet:          config.Duration(15 * time.Minute),
		Baseline:              BaselineConfig{Alpha: b.Alpha, MinSamples: b.MinSamples, ZThreshold: b.ZThreshold, ZScale: b.ZScale},
		AlertSLA: SLAConfig{Critical: config.Duration(a.SLA[pb.Priority_CRITICAL]), High: config.Duration(a.SLA[pb.Priority_HIGH]),
			Medium: config.Duration(a.SLA[pb.Priority_MEDIUM]), Low: config.Duration(a.SLA[pb.Priority_LOW])},
		MaxEscalation: a.MaxEscalation,
	}
}

// Load decodes root's pipelines section strictly over the defaults and
// validates it.
func Load(root *config.Root) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(&root.Pipelines, "pipelines", &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate returns every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("pipelines.%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if len(c.Groups) == 0 {
		add("groups", "must name at least one of adherence, anomaly, alerts")
	}
	seen := map[string]bool{}
	for i, g := range c.Groups {
		switch g {
		case GroupAdherence, GroupAnomaly, GroupAlerts:
		default:
			add(fmt.Sprintf("groups[%d]", i), "%q is not adherence, anomaly or alerts", g)
		}
		if seen[g] {
			add(fmt.Sprintf("groups[%d]", i), "%q listed twice", g)
		}
		seen[g] = true
	}
	if c.AlertRequestsTopic == "" {
		add("alert_requests_topic", "must not be empty")
	}
	if c.GroupRestarts < 0 {
		add("group_restarts", "%d is negative", c.GroupRestarts)
	}
	if d := c.TickInterval.D(); d <= 0 || d > 30*time.Second {
		add("tick_interval", "%v is not in (0, 30s] (MISSED must be emitted within 60 s)", d)
	}
	// The groups validate the rest; re-prefix their errors.
	if err := c.adherence().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pipelines: %w", err))
	}
	if err := c.anomaly().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pipelines: %w", err))
	}
	if err := c.alerts().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pipelines: %w", err))
	}
	return errors.Join(errs...)
}

func (c Config) topic(name string) string { return c.TopicPrefix + name }

func (c Config) adherence() adherence.Config {
	a := adherence.DefaultConfig()
	a.Group = c.TopicPrefix + a.Group
	a.Topics = adherence.Topics{Intake: c.topic(topics.Intake), Schedules: c.topic(topics.Schedules), DoseOutcomes: c.topic(topics.DoseOutcomes),
		Adherence: c.topic(topics.Adherence), AlertRequests: c.topic(c.AlertRequestsTopic), DeadLetters: c.topic(topics.DeadLetters)}
	a.CorrectionHorizon = c.CorrectionHorizon.D()
	a.LowThreshold = c.LowAdherenceThreshold
	return a
}

func (c Config) anomaly() anomaly.Config {
	a := anomaly.DefaultConfig()
	a.Group = c.TopicPrefix + a.Group
	a.Topics = anomaly.Topics{Vitals: c.topic(topics.Vitals), DeviceStatus: c.topic(topics.DeviceStatus), AnomalyScores: c.topic(topics.AnomalyScores),
		AlertRequests: c.topic(c.AlertRequestsTopic), DeadLetters: c.topic(topics.DeadLetters),
		VitalsBatches: c.topic(topics.VitalsBatches), ScoreBatches: c.topic(topics.ScoreBatches)}
	a.Baseline.Alpha, a.Baseline.MinSamples, a.Baseline.ZThreshold, a.Baseline.ZScale = c.Baseline.Alpha, c.Baseline.MinSamples, c.Baseline.ZThreshold, c.Baseline.ZScale
	a.BatteryThreshold = c.BatteryThreshold
	a.EpisodeQuiet = c.EpisodeQuiet.D()
	return a
}

func (c Config) alerts() alerts.Config {
	a := alerts.DefaultConfig()
	a.Group = c.TopicPrefix + a.Group
	a.Topics = alerts.Topics{Requests: c.topic(c.AlertRequestsTopic), Acks: c.topic(topics.AlertAcks), Alerts: c.topic(topics.Alerts), DeadLetters: c.topic(topics.DeadLetters)}
	a.SLA = map[pb.Priority]time.Duration{pb.Priority_CRITICAL: c.AlertSLA.Critical.D(), pb.Priority_HIGH: c.AlertSLA.High.D(),
		pb.Priority_MEDIUM: c.AlertSLA.Medium.D(), pb.Priority_LOW: c.AlertSLA.Low.D()}
	a.MaxEscalation = c.MaxEscalation
	return a
}
