package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/wardstream/wardstream/internal/config"
)

// Config is the bench section of the topology: how the harness observes a
// run. What load to apply is the scenario's business, not this section's.
type Config struct {
	// PollInterval is how often outstanding latency probes are looked up
	// in ClickHouse (default 250ms): the latency resolution, stretched to
	// 5% of the oldest outstanding probe's age under a backlog (at most
	// 2s; results.json reports the coarsest interval used).
	PollInterval config.Duration `yaml:"poll_interval"`
	// ProgressInterval is the period of the live progress line and of the
	// timeline samples in results.json (default 1s).
	ProgressInterval config.Duration `yaml:"progress_interval"`
	// DatabasePrefix names each run's ClickHouse database: prefix + run id
	// (default "bench_").
	DatabasePrefix string `yaml:"database_prefix"`
	// KeepDatabase keeps the run's database and topics after the run
	// (default false: they are dropped once results are written).
	KeepDatabase bool `yaml:"keep_database"`
	// StartupTimeout bounds the wait for each role's /readyz (default 60s).
	StartupTimeout config.Duration `yaml:"startup_timeout"`
	// StopTimeout bounds each role's drain after SIGTERM (default 30s).
	StopTimeout config.Duration `yaml:"stop_timeout"`
	// Warmup is the start of the sending phase that results.json's
	// latency.event_to_queryable_after_warmup leaves out (default 15s; 0
	// leaves out nothing): the steady state, apart from the start-up burst
	// of schedules and histories and the roles' first seconds. The
	// headline latency and the targets keep every probe.
	Warmup config.Duration `yaml:"warmup"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		PollInterval:     config.Duration(250 * time.Millisecond),
		ProgressInterval: config.Duration(time.Second),
		DatabasePrefix:   "bench_",
		StartupTimeout:   config.Duration(60 * time.Second),
		StopTimeout:      config.Duration(30 * time.Second),
		Warmup:           config.Duration(15 * time.Second),
	}
}

// LoadConfig decodes the bench section of root over the defaults.
func LoadConfig(root *config.Root) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(&root.Bench, "bench", &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Validate returns every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("bench.%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if c.Warmup.D() < 0 {
		add("warmup", "%s is negative", c.Warmup.D())
	}
	if c.PollInterval.D() < 10*time.Millisecond {
		add("poll_interval", "must be >= 10ms")
	}
	if c.ProgressInterval.D() < 100*time.Millisecond {
		add("progress_interval", "must be >= 100ms")
	}
	if c.DatabasePrefix == "" {
		add("database_prefix", "must not be empty (runs must not write into the main database)")
	}
	for _, r := range c.DatabasePrefix {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			add("database_prefix", "%q may hold only letters, digits and _", c.DatabasePrefix)
			break
		}
	}
	if c.StartupTimeout.D() <= 0 {
		add("startup_timeout", "must be > 0")
	}
	if c.StopTimeout.D() <= 0 {
		add("stop_timeout", "must be > 0")
	}
	return errors.Join(errs...)
}
