package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
)

// Scenario is one load scenario (a YAML file in bench/scenarios): which
// devices exist, how they behave and how fast they talk. Decoding is strict:
// unknown keys are errors with their line number.
type Scenario struct {
	// Name identifies the scenario in results ("smoke", "ward", ...).
	Name string `yaml:"name"`
	// Description is one line for humans.
	Description string `yaml:"description"`
	// Seed makes the simulated fleet and its behaviour reproducible.
	Seed int64 `yaml:"seed"`
	// Duration is how long devices send when the command line gives
	// neither --duration nor --messages.
	Duration config.Duration `yaml:"duration"`
	// Rate is the target telemetry rate in readings per second across the
	// whole fleet. 0 (default) uses the devices' nominal rate (sum of
	// count*hz); -1 sends as fast as the path accepts (backpressure from
	// QoS1 acknowledgements or the Kafka producer bounds it).
	Rate int `yaml:"rate"`
	// Settle bounds the wait, after sending stops, for every sent reading
	// and every expected dose outcome to become queryable.
	Settle config.Duration `yaml:"settle"`
	// Transport says how the simulated devices reach wardstream.
	Transport Transport `yaml:"transport"`
	// Pillcases are the medication devices with schedules.
	Pillcases Pillcases `yaml:"pillcases"`
	// Monitors are vital-sign monitors.
	Monitors Telemetry `yaml:"monitors"`
	// Pumps are infusion pumps; a share of their readings are failures.
	Pumps Pumps `yaml:"pumps"`
	// Cameras are synthetic RTSP cameras.
	Cameras Cameras `yaml:"cameras"`
	// MalformedShare is the share (0..1) of extra publishes that are
	// deliberately invalid (bad JSON, missing fields, spoofed device ids);
	// they must land in the dead-letter table, not in the data tables.
	MalformedShare float64 `yaml:"malformed_share"`
}

// Transport configures the device side of the path.
type Transport struct {
	// QoS is the MQTT QoS of telemetry publishes (0 or 1; default 1).
	QoS int `yaml:"qos"`
	// Batch is the number of readings per publish. 1 (default) sends one
	// reading per publish on its device topic; > 1 uses the seed's batched
	// form on medical/devices/batch/telemetry.
	Batch int `yaml:"batch"`
	// Connections is the number of MQTT connections (default 8).
	Connections int `yaml:"connections"`
	// Inflight is the number of unacknowledged QoS1 publishes per
	// connection (default 64, capped by the broker's receive maximum).
	Inflight int `yaml:"inflight"`
	// ProbeEvery marks every Nth reading as a latency probe (default 50);
	// the harness looks probes up in ClickHouse until they are visible.
	ProbeEvery int `yaml:"probe_every"`
}

// Pillcases describes the patients, their schedules and behaviour.
type Pillcases struct {
	// Count is the number of pillcases (one patient each).
	Count int `yaml:"count"`
	// Medications is the number of scheduled medications per patient.
	Medications int `yaml:"medications"`
	// Timezone is the patients' IANA zone (default UTC).
	Timezone string `yaml:"timezone"`
	// DoseEvery is the spacing of a medication's doses during the run
	// (minute resolution; default 10m). Spacing must exceed early + late
	// window so that every intake has exactly one candidate dose.
	DoseEvery config.Duration `yaml:"dose_every"`
	// FirstDoseAfter is the earliest scheduled dose after the start
	// (default 1m; rounded up to a whole minute).
	FirstDoseAfter config.Duration `yaml:"first_dose_after"`
	// GraceMinutes, EarlyWindowMinutes and LateWindowMinutes go into every
	// schedule (defaults 1, 3, 3: small so that short runs see outcomes).
	GraceMinutes       int `yaml:"grace_minutes"`
	EarlyWindowMinutes int `yaml:"early_window_minutes"`
	LateWindowMinutes  int `yaml:"late_window_minutes"`
	// Profiles is the share of patients per behaviour profile: adherent,
	// forgetful, late, offline, duplicate. Shares are normalised.
	Profiles map[string]float64 `yaml:"profiles"`
	// OfflineFor is how long an offline pillcase was away: its schedule
	// starts that long before the run and it flushes its buffered intakes
	// (old event times) shortly after the start (default 3h).
	OfflineFor config.Duration `yaml:"offline_for"`
	// ForgetShare is the share of doses a forgetful patient skips (default 0.5).
	ForgetShare float64 `yaml:"forget_share"`
	// History is how the fleet's start state (every schedule, and the
	// intakes of the hour before the start, which the devices report at
	// the start) is sent: "preload" (default) sends it in a load phase
	// and starts the timed phase once the pipeline has drained it; "in_run"
	// sends it at the timed phase's start, so the rates and latencies
	// include that catch-up burst. Offline pillcases' buffer flushes are
	// live behaviour either way (20-40 s after the fleet's start).
	History string `yaml:"history"`
}

// Telemetry is a homogeneous group of telemetry devices.
type Telemetry struct {
	// Count is the number of devices.
	Count int `yaml:"count"`
	// Hz is the readings per second per device at the nominal rate
	// (Scenario.Rate 0); with another rate the mix keeps count*hz weights.
	Hz float64 `yaml:"hz"`
}

// Pumps are infusion pumps.
type Pumps struct {
	Telemetry `yaml:",inline"`
	// FailureShare is the share of pumps that report a PUMP_FAILURE alert
	// during the run (each such pump reports it once).
	FailureShare float64 `yaml:"failure_share"`
}

// Cameras are synthetic RTSP cameras served by the harness.
type Cameras struct {
	// Count is the number of cameras.
	Count int `yaml:"count"`
	// FPS is the source frame rate.
	FPS int `yaml:"fps"`
}

// Profiles of pillcase behaviour.
const (
	ProfileAdherent  = "adherent"
	ProfileForgetful = "forgetful"
	ProfileLate      = "late"
	ProfileOffline   = "offline"
	ProfileDuplicate = "duplicate"
)

var knownProfiles = []string{ProfileAdherent, ProfileForgetful, ProfileLate, ProfileOffline, ProfileDuplicate}

// DefaultScenario returns the defaults every scenario file starts from.
func DefaultScenario() Scenario {
	return Scenario{
		Name:     "unnamed",
		Seed:     1,
		Duration: config.Duration(time.Minute),
		Settle:   config.Duration(2 * time.Minute),
		Transport: Transport{
			QoS: 1, Batch: 1, Connections: 8, Inflight: 64, ProbeEvery: 50,
		},
		Pillcases: Pillcases{
			Medications: 2, Timezone: "UTC",
			DoseEvery: config.Duration(10 * time.Minute), FirstDoseAfter: config.Duration(time.Minute),
			GraceMinutes: 1, EarlyWindowMinutes: 3, LateWindowMinutes: 3,
			Profiles:    map[string]float64{ProfileAdherent: 1},
			OfflineFor:  config.Duration(3 * time.Hour),
			ForgetShare: 0.5,
			History:     HistoryPreload,
		},
		Cameras: Cameras{FPS: 5},
	}
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	s, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// ParseScenario strictly decodes and validates a scenario document.
func ParseScenario(data []byte) (*Scenario, error) {
	s := DefaultScenario()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && err.Error() != "EOF" {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
		return nil, errors.New(strings.ReplaceAll(msg, "\n  ", "; "))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate reports every problem of s at once, each with its field path.
func (s *Scenario) Validate() error {
	var errs []error
	add := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
	}
	if s.Name == "" {
		add("name", "must not be empty")
	}
	if s.Duration.D() <= 0 {
		add("duration", "must be > 0")
	}
	if s.Rate < -1 {
		add("rate", "must be -1 (unthrottled), 0 (nominal count*hz) or a readings/s target")
	}
	if s.Settle.D() <= 0 {
		add("settle", "must be > 0")
	}
	t := s.Transport
	if t.QoS != 0 && t.QoS != 1 {
		add("transport.qos", "must be 0 or 1, got %d", t.QoS)
	}
	if t.Batch < 1 || t.Batch > 10000 {
		add("transport.batch", "must be 1..10000, got %d", t.Batch)
	}
	if t.Connections < 1 || t.Connections > 1024 {
		add("transport.connections", "must be 1..1024, got %d", t.Connections)
	}
	if t.Inflight < 1 || t.Inflight > 65535 {
		add("transport.inflight", "must be 1..65535, got %d", t.Inflight)
	}
	if t.ProbeEvery < 1 {
		add("transport.probe_every", "must be >= 1")
	}
	p := s.Pillcases
	if p.Count < 0 {
		add("pillcases.count", "must be >= 0")
	}
	if p.Medications < 1 || p.Medications > 20 {
		add("pillcases.medications", "must be 1..20")
	}
	if _, err := time.LoadLocation(p.Timezone); err != nil {
		add("pillcases.timezone", "%q is not an IANA zone: %v", p.Timezone, err)
	}
	if p.GraceMinutes < 1 {
		add("pillcases.grace_minutes", "must be >= 1")
	}
	if p.EarlyWindowMinutes <= p.GraceMinutes {
		add("pillcases.early_window_minutes", "must be > grace_minutes")
	}
	if p.LateWindowMinutes <= p.GraceMinutes {
		add("pillcases.late_window_minutes", "must be > grace_minutes")
	}
	if p.DoseEvery.D() < time.Minute || p.DoseEvery.D()%time.Minute != 0 {
		add("pillcases.dose_every", "must be a whole number of minutes >= 1m")
	} else if p.DoseEvery.D() <= time.Duration(p.EarlyWindowMinutes+p.LateWindowMinutes)*time.Minute {
		add("pillcases.dose_every", "must exceed early_window_minutes + late_window_minutes so windows never overlap")
	}
	if p.FirstDoseAfter.D() < 0 {
		add("pillcases.first_dose_after", "must be >= 0")
	}
	var sum float64
	for k, v := range p.Profiles {
		if !contains(knownProfiles, k) {
			add("pillcases.profiles."+k, "unknown profile (want some of %s)", strings.Join(knownProfiles, ", "))
		}
		if v < 0 {
			add("pillcases.profiles."+k, "share must be >= 0")
		}
		sum += v
	}
	if p.Count > 0 && sum <= 0 {
		add("pillcases.profiles", "shares must sum to > 0")
	}
	if p.OfflineFor.D() < 0 || p.OfflineFor.D() > 20*time.Hour {
		add("pillcases.offline_for", "must be 0..20h")
	}
	if p.ForgetShare < 0 || p.ForgetShare > 1 {
		add("pillcases.forget_share", "must be 0..1")
	}
	if p.History != HistoryPreload && p.History != HistoryInRun {
		add("pillcases.history", "%q is not %q or %q", p.History, HistoryPreload, HistoryInRun)
	}
	for name, d := range map[string]Telemetry{"monitors": s.Monitors, "pumps": s.Pumps.Telemetry} {
		if d.Count < 0 {
			add(name+".count", "must be >= 0")
		}
		if d.Hz < 0 {
			add(name+".hz", "must be >= 0")
		}
	}
	if s.Pumps.FailureShare < 0 || s.Pumps.FailureShare > 1 {
		add("pumps.failure_share", "must be 0..1")
	}
	if s.Cameras.Count < 0 {
		add("cameras.count", "must be >= 0")
	}
	if s.Cameras.Count > 0 && (s.Cameras.FPS < 1 || s.Cameras.FPS > 60) {
		add("cameras.fps", "must be 1..60")
	}
	if s.MalformedShare < 0 || s.MalformedShare > 0.5 {
		add("malformed_share", "must be 0..0.5")
	}
	if s.Rate == 0 && s.Monitors.Count+s.Pumps.Count > 0 && s.TelemetryWeight() == 0 {
		add("rate", "is 0 (nominal) but monitors.hz and pumps.hz are 0; set hz, a rate, or -1 for unthrottled")
	}
	if s.Pillcases.Count+s.Monitors.Count+s.Pumps.Count+s.Cameras.Count == 0 {
		add("devices", "the scenario has no device (pillcases, monitors, pumps, cameras all 0)")
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// TelemetryWeight is the nominal telemetry rate of the scenario in readings
// per second (monitors and pumps at their Hz).
func (s *Scenario) TelemetryWeight() float64 {
	return float64(s.Monitors.Count)*s.Monitors.Hz + float64(s.Pumps.Count)*s.Pumps.Hz
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
