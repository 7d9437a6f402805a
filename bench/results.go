package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Results is what a run measured; it is written as results.json.
type Results struct {
	RunID    string `json:"run_id"`
	Scenario string `json:"scenario"`
	Stage    string `json:"stage"`
	Tenant   string `json:"tenant"`
	Database string `json:"database"`
	// Started is the timed phase's start: after the load phase, if any
	// (Preload).
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	// SendSeconds is the length of the sending phase.
	SendSeconds float64 `json:"send_seconds"`
	// TelemetrySeconds is the telemetry part of it: msgs_per_min's window.
	TelemetrySeconds float64   `json:"telemetry_seconds"`
	Transport        Transport `json:"transport"`
	// Rate is the scenario's target readings/s (-1 unthrottled, 0 nominal).
	Rate int `json:"target_rate"`
	// Preload is the load phase (history preload), before Started: its
	// messages count in Sent, Delivered and Lost, not in any rate,
	// latency or timeline.
	Preload *PreloadResult `json:"preload,omitempty"`

	// Sent is the number of valid readings acknowledged by the first hop
	// (MQTT broker PUBACK at QoS1, Kafka ack for stages kafka and sink);
	// duplicate copies and malformed messages are not included.
	Sent int64 `json:"sent"`
	// Delivered is the number of distinct sent readings queryable at the
	// end of the stage (ClickHouse rows; Kafka records for stage mqtt).
	Delivered int64 `json:"delivered"`
	// Lost is Sent - Delivered when positive.
	Lost int64 `json:"lost"`
	// DuplicatesVisible is rows a FINAL (deduplicated) query answers
	// beyond the distinct event ids: the duplicates a user would see.
	DuplicatesVisible int64 `json:"duplicates_visible"`
	// DuplicateRowsUnmerged is count() - uniqExact(event_id) without
	// FINAL: duplicate rows stored that background merges collapse later.
	DuplicateRowsUnmerged int64 `json:"duplicate_rows_unmerged"`
	// DuplicateCopiesSent is how many identical extra copies devices sent.
	DuplicateCopiesSent int64 `json:"duplicate_copies_sent"`
	// Publishes counts MQTT publishes (or Kafka records) acknowledged.
	Publishes int64 `json:"publishes"`
	// MsgsPerMin is the readings sent per minute of the telemetry phase.
	MsgsPerMin float64 `json:"msgs_per_min"`
	// DeliveredPerMin is the readings sent during the telemetry phase per
	// minute from the start until all of them were queryable: the
	// end-to-end sustained rate.
	DeliveredPerMin float64 `json:"delivered_per_min"`
	SendErrors      int64   `json:"send_errors"`
	SendFailed      int64   `json:"send_failed"`

	Malformed   MalformedResult `json:"malformed"`
	Latency     LatencyResult   `json:"latency"`
	Stages      []StageRate     `json:"stages"`
	Roles       []RoleResult    `json:"roles"`
	Services    []RoleResult    `json:"services"`
	Correctness *Correctness    `json:"correctness,omitempty"`
	// Host is the whole machine's CPU over the run, steal included (see
	// HostResult): the context every rate above was measured in.
	Host *HostResult `json:"host,omitempty"`
	// Targets compares the run with the project's targets (issue 7).
	Targets  []Target `json:"targets"`
	Cameras  string   `json:"cameras"`
	Timeline []Sample `json:"timeline"`
	// Notes say what was not measured and why, in plain words.
	Notes []string `json:"notes"`
}

// Target is one of the project's targets and whether the run met it.
type Target struct {
	Name     string  `json:"name"`
	Target   string  `json:"target"`
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"`
}

// checkTargets fills r.Targets: end-to-end rate (1M readings/min with one
// reading per QoS1 publish, 3M batched), p99 event -> queryable <= 2 s,
// zero lost, zero visible duplicates.
func (r *Results) checkTargets() {
	rate := 1e6
	name := "delivered msgs/min end to end, one reading per QoS1 publish"
	if r.Transport.Batch > 1 {
		rate, name = 3e6, "delivered msgs/min end to end, batched telemetry"
	}
	if r.Stage != "all" {
		name += " (stage " + r.Stage + ", not the whole path)"
	}
	p99 := r.Latency.EventToQueryable.P99Ms
	r.Targets = []Target{
		{name, fmt.Sprintf(">= %.0f", rate), math.Round(r.DeliveredPerMin), r.DeliveredPerMin >= rate},
		{"p99 device event -> queryable (ms)", "<= 2000", p99, r.Latency.EventToQueryable.Samples > 0 && p99 <= 2000},
		{"lost", "0", float64(r.Lost), r.Lost == 0 && r.Sent > 0},
		{"duplicates visible", "0", float64(r.DuplicatesVisible), r.DuplicatesVisible == 0},
	}
}

// MalformedResult compares invalid messages sent with dead letters.
type MalformedResult struct {
	Sent         int64             `json:"sent"`
	DeadLettered int64             `json:"dead_lettered"`
	Reasons      map[string]uint64 `json:"reasons,omitempty"`
}

// LatencyResult holds the two latencies the issue defines.
type LatencyResult struct {
	// EventToQueryable: device event time -> row queryable.
	EventToQueryable LatencyStats `json:"event_to_queryable"`
	// MissedAlert: scheduled time + grace -> MISSED_DOSE alert queryable.
	MissedAlert LatencyStats `json:"missed_alert"`
	// EventToFirstHop: device event time -> the first hop (MQTT broker or
	// Kafka) acknowledged the probe's publish. The part of
	// EventToQueryable spent in the simulated devices' own queue and the
	// broker, before wardstream has the reading: on a saturated box the
	// load generator itself falls behind.
	EventToFirstHop LatencyStats `json:"event_to_first_hop"`
	// AfterWarmup: EventToQueryable of the probes sent after bench.warmup
	// (the steady state); nil with a warmup of 0. Informational: the
	// targets judge EventToQueryable, every probe.
	AfterWarmup *LatencyStats `json:"event_to_queryable_after_warmup,omitempty"`
}

// LatencyStats are quantiles in milliseconds.
type LatencyStats struct {
	// Method says how it was measured ("probes": every Nth reading looked
	// up by event id; "none": not measured, see notes).
	Method  string  `json:"method"`
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P95Ms   float64 `json:"p95_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	// ResolutionMs is the poll interval: latencies are upper bounds within it.
	ResolutionMs float64 `json:"resolution_ms"`
}

// StageRate is the throughput seen at one stage of the path.
type StageRate struct {
	Stage string `json:"stage"`
	// Count is what passed the stage during the run.
	Count int64 `json:"count"`
	// PerSecAvg is Count over the stage's active window; PerSecPeak the
	// best one-second rate.
	PerSecAvg  float64 `json:"per_sec_avg"`
	PerSecPeak float64 `json:"per_sec_peak"`
	Note       string  `json:"note,omitempty"`
}

// RoleResult is one process's status and resource use.
type RoleResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Usage
}

// Correctness is the pipeline's answers checked against the simulator's.
type Correctness struct {
	DoseOutcomes Check  `json:"dose_outcomes"`
	Adherence    Check  `json:"adherence"`
	Alerts       Check  `json:"alerts"`
	Note         string `json:"note,omitempty"`
}

// Check counts expected answers found right, wrong or missing; Unexpected
// counts answers the simulator did not expect at all (e.g. EXTRA outcomes).
type Check struct {
	Expected   int      `json:"expected"`
	Matched    int      `json:"matched"`
	Wrong      int      `json:"wrong"`
	Missing    int      `json:"missing"`
	Unexpected int      `json:"unexpected"`
	Examples   []string `json:"examples,omitempty"`
}

func (c *Check) example(format string, a ...any) {
	if len(c.Examples) < 5 {
		c.Examples = append(c.Examples, fmt.Sprintf(format, a...))
	}
}

// OK reports whether every expected answer matched and nothing else came.
func (c Check) OK() bool { return c.Matched == c.Expected && c.Wrong == 0 && c.Unexpected == 0 }

// Sample is one point of the timeline (once per progress interval).
type Sample struct {
	T       float64 `json:"t"`
	Sent    int64   `json:"sent"`
	KafkaIn int64   `json:"kafka_in"`
	// ProcOut is the processors' output records (anomaly scores, dose
	// outcomes, adherence, alerts) so far.
	ProcOut    int64   `json:"processors_out"`
	Delivered  int64   `json:"delivered"`
	Errors     int64   `json:"errors"`
	SendRate   float64 `json:"send_rate"`
	KafkaRate  float64 `json:"kafka_rate"`
	DeliverRat float64 `json:"deliver_rate"`
	// P50Ms and P99Ms are the latency of probes that became visible
	// during this interval (0 when none did).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// quantiles computes LatencyStats of ms (sorted in place).
func quantiles(ms []float64, method string, resolution time.Duration) LatencyStats {
	s := LatencyStats{Method: method, Samples: len(ms), ResolutionMs: float64(resolution.Milliseconds())}
	if len(ms) == 0 {
		return s
	}
	sort.Float64s(ms)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ms)))) - 1
		return ms[max(0, min(i, len(ms)-1))]
	}
	s.P50Ms, s.P95Ms, s.P99Ms, s.MaxMs = q(0.50), q(0.95), q(0.99), ms[len(ms)-1]
	return s
}

// Write writes dir/results.json, dir/results.md and its SVG plots.
func (r *Results) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating results dir: %w", err)
	}
	r.checkTargets()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results.json: %w", err)
	}
	var send, kin, del, p50, p99 Series
	send = Series{Name: "sent/s", Color: "#1f77b4"}
	kin = Series{Name: "kafka in/s", Color: "#2ca02c"}
	del = Series{Name: "queryable/s", Color: "#d62728"}
	p50 = Series{Name: "p50 ms", Color: "#1f77b4"}
	p99 = Series{Name: "p99 ms", Color: "#d62728"}
	for _, s := range r.Timeline {
		send.Points = append(send.Points, [2]float64{s.T, s.SendRate})
		kin.Points = append(kin.Points, [2]float64{s.T, s.KafkaRate})
		del.Points = append(del.Points, [2]float64{s.T, s.DeliverRat})
		if s.P99Ms > 0 {
			p50.Points = append(p50.Points, [2]float64{s.T, s.P50Ms})
			p99.Points = append(p99.Points, [2]float64{s.T, s.P99Ms})
		}
	}
	// Rates are smoothed over 5 samples: the sink inserts in batches (1 s
	// by default), so one-second rates alternate between 0 and bursts.
	for _, s := range []*Series{&send, &kin, &del} {
		s.Points = movingAverage(s.Points, 5)
		s.Name += " (5-sample avg)"
	}
	rate := LineChart("Rate over time ("+r.Scenario+", stage "+r.Stage+")", "seconds since start", "readings per second", []Series{send, kin, del})
	lat := LineChart("Latency over time: device event -> queryable", "seconds since start", "milliseconds", []Series{p50, p99})
	if err := os.WriteFile(filepath.Join(dir, "rate.svg"), []byte(rate), 0o644); err != nil {
		return fmt.Errorf("writing rate.svg: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "latency.svg"), []byte(lat), 0o644); err != nil {
		return fmt.Errorf("writing latency.svg: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("writing results.md: %w", err)
	}
	return nil
}

// movingAverage smooths ys over a trailing window of n points; negative
// values (counts that shrank when ClickHouse merged duplicates away) count
// as 0.
func movingAverage(pts [][2]float64, n int) [][2]float64 {
	out := make([][2]float64, len(pts))
	var sum float64
	for i, p := range pts {
		sum += math.Max(p[1], 0)
		if i >= n {
			sum -= math.Max(pts[i-n][1], 0)
		}
		out[i] = [2]float64{p[0], sum / float64(min(i+1, n))}
	}
	return out
}

// Markdown renders the human report.
func (r *Results) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# wardstream bench: %s (stage %s)", r.Scenario, r.Stage)
	w("")
	w("Run `%s`, tenant `%s`, ClickHouse database `%s`, %s to %s (sending %.1f s).",
		r.RunID, r.Tenant, r.Database, r.Started.UTC().Format(time.RFC3339), r.Ended.UTC().Format(time.RFC3339), r.SendSeconds)
	w("Transport: QoS %d, %d reading(s) per publish, %d connections x %d in flight; target rate %s.",
		r.Transport.QoS, r.Transport.Batch, r.Transport.Connections, r.Transport.Inflight, rateWord(r.Rate))
	if p := r.Preload; p != nil {
		drained := "drained"
		if !p.Drained {
			drained = "NOT drained (the wait hit the settle bound)"
		}
		w("Load phase before the timed phase (`pillcases.history: preload`): %d schedules and %d intakes of %d history doses sent, %s in %.1f s (waited for %s); counted in sent, delivered and lost, not in any rate or latency below.",
			p.Schedules, p.Intakes, p.HistoryDoses, drained, p.Seconds, p.WaitedFor)
	}
	w("")
	w("| measure | value |")
	w("|---|---|")
	w("| sent (readings acknowledged by the first hop) | %d |", r.Sent)
	w("| delivered (distinct readings queryable) | %d |", r.Delivered)
	w("| lost | %d |", r.Lost)
	w("| duplicates visible (FINAL query) | %d |", r.DuplicatesVisible)
	w("| duplicate rows not yet merged | %d |", r.DuplicateRowsUnmerged)
	w("| duplicate copies sent by devices | %d |", r.DuplicateCopiesSent)
	w("| sent msgs/min | %.0f |", r.MsgsPerMin)
	w("| delivered msgs/min (end to end) | %.0f |", r.DeliveredPerMin)
	l := r.Latency.EventToQueryable
	w("| latency event -> queryable p50 / p95 / p99 / max | %s |", latWord(l))
	w("| latency scheduled+grace -> MISSED alert p50 / p95 / p99 / max | %s |", latWord(r.Latency.MissedAlert))
	if aw := r.Latency.AfterWarmup; aw != nil {
		w("| latency event -> queryable after the warmup p50 / p95 / p99 / max | %s |", latWord(*aw))
	}
	w("| of which event -> first hop acknowledged (devices' queue and broker) p50 / p95 / p99 / max | %s |", latWord(r.Latency.EventToFirstHop))
	w("| malformed sent / dead-lettered | %d / %d |", r.Malformed.Sent, r.Malformed.DeadLettered)
	if hr := r.Host; hr != nil {
		w("| host: %d cores, busy / idle / steal CPU seconds over %.0f s; load average 1 min start -> end; harness GOMAXPROCS; GODEBUG | %.0f / %.0f / %.1f (steal %.1f%%); %.2f -> %.2f; %d; %s |",
			hr.Cores, hr.WallSeconds, hr.BusySeconds, hr.IdleSeconds, hr.StealSeconds, 100*hr.StealShare, hr.Load1Start, hr.Load1End, hr.GoMaxProcs, orDash(hr.GODEBUG))
	}
	w("| send errors (retried) / readings given up | %d / %d |", r.SendErrors, r.SendFailed)
	w("")
	w("Targets (issue 7, on this machine with every server co-located):")
	w("")
	w("| target | goal | measured | met |")
	w("|---|---|---|---|")
	for _, t := range r.Targets {
		met := "no"
		if t.Met {
			met = "yes"
		}
		w("| %s | %s | %.0f | %s |", t.Name, t.Target, t.Measured, met)
	}
	w("")
	w("![rate](rate.svg)")
	w("")
	w("![latency](latency.svg)")
	w("")
	w("## Stages")
	w("")
	w("| stage | count | avg/s | peak/s | note |")
	w("|---|---|---|---|---|")
	for _, s := range r.Stages {
		w("| %s | %d | %.0f | %.0f | %s |", s.Stage, s.Count, s.PerSecAvg, s.PerSecPeak, s.Note)
	}
	w("")
	w("## Processes (CPU and RSS from /proc)")
	w("")
	w("| process | status | CPU s | avg cores | peak cores (1 interval) | readings per CPU s | RSS MiB | peak RSS MiB |")
	w("|---|---|---|---|---|---|---|---|")
	for _, p := range append(append([]RoleResult{}, r.Roles...), r.Services...) {
		w("| %s | %s | %.1f | %.2f | %.2f | %.0f | %.0f | %.0f |", p.Name, p.Status, p.CPUSeconds, p.AvgCores, p.PeakCores, p.ReadingsPerCPUSecond, p.RSSMiB, p.PeakRSSMiB)
	}
	w("")
	w("## Correctness")
	w("")
	if r.Correctness == nil {
		w("Not checked in this stage.")
	} else {
		c := r.Correctness
		w("| answer | expected | matched | wrong | missing | unexpected |")
		w("|---|---|---|---|---|---|")
		for _, x := range []struct {
			n string
			c Check
		}{{"dose outcomes", c.DoseOutcomes}, {"adherence", c.Adherence}, {"alerts", c.Alerts}} {
			w("| %s | %d | %d | %d | %d | %d |", x.n, x.c.Expected, x.c.Matched, x.c.Wrong, x.c.Missing, x.c.Unexpected)
		}
		if c.Note != "" {
			w("")
			w("%s", c.Note)
		}
		for _, x := range [][]string{c.DoseOutcomes.Examples, c.Adherence.Examples, c.Alerts.Examples} {
			for _, e := range x {
				w("- %s", e)
			}
		}
	}
	w("")
	w("Cameras: %s", r.Cameras)
	if len(r.Notes) > 0 {
		w("")
		w("## Notes")
		w("")
		for _, n := range r.Notes {
			w("- %s", n)
		}
	}
	return b.String()
}

func rateWord(r int) string {
	switch r {
	case -1:
		return "unthrottled"
	case 0:
		return "nominal (devices' hz)"
	}
	return fmt.Sprintf("%d readings/s", r)
}

func latWord(l LatencyStats) string {
	if l.Samples == 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f / %.0f ms (%d samples, %s, resolution %.0f ms)", l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs, l.Samples, l.Method, l.ResolutionMs)
}

// orDash returns s, or "-" when it is empty (a table cell).
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
