package main

import (
	"flag"
	"log/slog"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
)

// env is what every command gets: the loaded topology, a logger, a
// registry and the health tracker.
type env struct {
	cfg    *config.Root
	log    *slog.Logger
	reg    *prometheus.Registry
	health *runtime.Health
}

// configFlag registers --config on fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", config.DefaultPath, "topology YAML file (env WARDSTREAM_KAFKA_BROKERS, WARDSTREAM_CLICKHOUSE_ADDR, WARDSTREAM_MQTT_URL override its addresses)")
}

// loadEnv loads the topology at path and builds logger and registry.
func loadEnv(path string) (*env, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	log := telemetry.NewLogger(os.Stderr, cfg.Telemetry.LogLevel, cfg.Telemetry.LogFormat)
	// Never in a test binary: re-executing would run its tests again.
	if environ, ok := sysmonEnv(cfg.Process, os.Environ()); ok && !testing.Testing() {
		// Only returns when the re-execution failed: go on as Go would.
		err := reexec(environ)
		log.Warn("keeping sysmon awake: re-executing with GODEBUG failed; going on with Go's default", "err", err)
	} else if cfg.Process.KeepSysmonAwake && strings.Contains(os.Getenv("GODEBUG"), "schedtrace=") {
		log.Debug("sysmon kept awake", "godebug", os.Getenv("GODEBUG"))
	}
	if n, ok := runtimeSetting(cfg.Process.GoMaxProcs, os.Getenv("GOMAXPROCS")); ok {
		goruntime.GOMAXPROCS(n)
		log.Debug("gomaxprocs set by the topology", "gomaxprocs", n)
	}
	if pct, ok := runtimeSetting(cfg.Process.GOGC, os.Getenv("GOGC")); ok {
		debug.SetGCPercent(pct)
		log.Debug("gc percent set by the topology", "gogc", pct)
	}
	return &env{
		cfg:    cfg,
		log:    log,
		reg:    telemetry.NewRegistry(),
		health: runtime.NewHealth(),
	}, nil
}

// runtimeSetting returns a Go runtime setting the topology asks for
// (process.gomaxprocs, process.gogc), and whether to apply it: not when it
// keeps Go's default (0), nor when the setting's environment variable
// already chose (env is its value: GOMAXPROCS, GOGC).
func runtimeSetting(topology int, env string) (int, bool) {
	if topology <= 0 || env != "" {
		return 0, false
	}
	return topology, true
}
