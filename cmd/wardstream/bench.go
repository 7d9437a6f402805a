package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/wardstream/wardstream/bench"
)

// harnessGCPercent is the bench harness's GC percent when GOGC is unset.
const harnessGCPercent = 400

func cmdBench(ctx context.Context, args []string) error {
	fs := newFlags("bench")
	cfgPath := configFlag(fs)
	scenario := fs.String("scenario", "", "scenario YAML file (bench/scenarios/smoke.yaml, ward.yaml, hospital.yaml, fleet.yaml)")
	duration := fs.Duration("duration", 0, "length of the sending phase (default: the scenario's duration, unless --messages is set)")
	messages := fs.Int64("messages", 0, "stop after this many telemetry readings")
	stage := fs.String("stage", bench.StageAll, "path to drive: all (MQTT -> connector -> Kafka -> processors -> sink -> ClickHouse), mqtt (broker + connector), kafka (Kafka -> processors + sink), sink (sink only)")
	out := fs.String("out", "", "results directory: results.json, results.md, rate.svg, latency.svg, role logs, the run's topology (required unless --forever)")
	roles := fs.String("roles", "auto", "auto: start the stage's roles as child processes; none: they already run (e.g. on a real cluster); or a comma list")
	forever := fs.Bool("forever", false, "demo mode: send at the scenario's nominal rate until interrupted")
	shared := fs.Bool("shared", false, "use the topology's own tenant, database and topics instead of an isolated run (demo mode)")
	keep := fs.Bool("keep", false, "keep the run's ClickHouse database and topics after the run")
	bin := fs.String("bin", "", "wardstream binary started for roles (default: this executable)")
	rate := fs.Int("rate", 0, "override the scenario's rate: readings/s, or -1 for as fast as the path accepts (0 keeps the scenario's)")
	batch := fs.Int("batch", 0, "override the scenario's readings per publish (1: one per publish; > 1: the seed's batched topic)")
	history := fs.String("history", "", "override the scenario's pillcases.history: preload (the start state is sent and drained before the timed phase) or in_run (sent at the timed phase's start)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the harness itself (simulated devices, observers) to this file; the roles have telemetry.pprof")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *scenario == "" {
		return fmt.Errorf("%w: --scenario is required", errUsage)
	}
	if *out == "" && !*forever {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	if *duration < 0 || *messages < 0 {
		return fmt.Errorf("%w: --duration and --messages must be >= 0", errUsage)
	}
	if *duration > 0 && *messages > 0 {
		return fmt.Errorf("%w: give --duration or --messages, not both", errUsage)
	}
	switch *stage {
	case bench.StageAll, bench.StageMQTT, bench.StageKafka, bench.StageSink:
	default:
		return fmt.Errorf("%w: --stage %q is not all, mqtt, kafka or sink", errUsage, *stage)
	}
	// The harness is the load generator, not a role under test: unless
	// GOGC is set, it collects less often, to leave the shared cores to
	// the roles (the roles it starts keep their own setting).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(harnessGCPercent)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	sc, err := bench.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	if *rate != 0 {
		sc.Rate = *rate
	}
	if *history != "" {
		if *history != bench.HistoryPreload && *history != bench.HistoryInRun {
			return fmt.Errorf("%w: --history %q is not %s or %s", errUsage, *history, bench.HistoryPreload, bench.HistoryInRun)
		}
		sc.Pillcases.History = *history
	}
	if *batch != 0 {
		sc.Transport.Batch = *batch
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("scenario %s with flag overrides: %w", *scenario, err)
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	bc, err := bench.LoadConfig(e.cfg)
	if err != nil {
		return err
	}
	if *keep {
		bc.KeepDatabase = true
	}
	exe := *bin
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the wardstream executable: %w", err)
		}
	}
	root, _ := os.Getwd()
	if abs, err := filepath.Abs(*cfgPath); err == nil {
		// The repository root is two levels above deploy/local/topology.yaml
		// in a checkout; pid files of `make services` live under it.
		if dir := filepath.Dir(filepath.Dir(filepath.Dir(abs))); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, ".local", "run")); err == nil {
				root = dir
			}
		}
	}
	start := time.Now()
	res, err := bench.Run(ctx, bench.Options{
		Scenario: sc, Root: e.cfg, RootPath: *cfgPath, Config: bc, Stage: *stage,
		Duration: *duration, Messages: *messages, Forever: *forever, Shared: *shared || *forever,
		Out: *out, Binary: exe, Roles: *roles, RepoRoot: root, Progress: os.Stderr, Log: e.log,
	})
	if res != nil && !(*forever && *out == "") {
		summary := map[string]any{
			"run_id": res.RunID, "scenario": res.Scenario, "stage": res.Stage, "sent": res.Sent, "delivered": res.Delivered,
			"lost": res.Lost, "duplicates_visible": res.DuplicatesVisible, "msgs_per_min": int64(res.MsgsPerMin),
			"delivered_per_min": int64(res.DeliveredPerMin), "p99_ms": res.Latency.EventToQueryable.P99Ms,
			"wall_seconds": int(time.Since(start).Seconds()),
		}
		if res.Correctness != nil {
			summary["correctness"] = res.Correctness
		}
		b, _ := json.Marshal(summary)
		fmt.Println(string(b))
		if *out != "" {
			fmt.Fprintf(os.Stderr, "wrote %s and %s\n", filepath.Join(*out, "results.json"), filepath.Join(*out, "results.md"))
		}
	}
	return err
}
