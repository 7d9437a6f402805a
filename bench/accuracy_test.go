package bench_test

import (
	"sort"
	"testing"
	"time"

	"github.com/wardstream/wardstream/bench"
	"github.com/wardstream/wardstream/pipelines/schedule"
)

// The doses the simulator expects must be the dose instances the pipeline
// materializes from the schedule the simulator sends (pipelines/schedule:
// an ambiguous local time is due once, at its first occurrence). On a
// fall-back day the simulator planned doses at absolute instants in the
// repeated hour and wrote only their wall time "HH:MM" into the schedule,
// so the pipeline's doses were an hour earlier (or collapsed) and the
// correctness check reported right answers as missing/unexpected.
func TestFleetDosesAreThePipelinesInstancesOnFallBackDay(t *testing.T) {
	for _, c := range []struct {
		name, zone string
		start      time.Time
	}{
		// 2026-11-01 is the US fall-back Sunday: 02:00 EDT -> 01:00 EST at
		// 06:00 UTC. The run starts at 01:45 EST (06:45 UTC), the second 01:45.
		{"fall back, second occurrence", "America/New_York", time.Date(2026, 11, 1, 6, 45, 0, 0, time.UTC)},
		// The first 01:50 (EDT, 05:50 UTC): live doses run into the repeat.
		{"fall back, first occurrence", "America/New_York", time.Date(2026, 11, 1, 5, 50, 0, 0, time.UTC)},
		// 2026-03-29, Europe/Berlin springs forward 02:00 CET -> 03:00 CEST
		// at 01:00 UTC; the run starts at 03:15 CEST.
		{"spring forward", "Europe/Berlin", time.Date(2026, 3, 29, 1, 15, 0, 0, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) { checkFleetDosesArePipelineInstances(t, c.zone, c.start) })
	}
}

func checkFleetDosesArePipelineInstances(t *testing.T, zone string, start time.Time) {
	sc, err := bench.LoadScenario("scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Pillcases.Timezone = zone
	f, err := bench.NewFleet(sc, "run1", "tenant-x", start, start.Add(20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	bad, doses := 0, 0
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			sp, err := schedule.Parse(m.Schedule)
			if err != nil {
				t.Fatalf("%s %s: schedule does not parse: %v", p.ID, m.ID, err)
			}
			var got []string
			for _, in := range sp.Instances(start.Add(-24*time.Hour), start.Add(24*time.Hour)) {
				got = append(got, in.At.UTC().Format(time.RFC3339))
			}
			var want []string
			doses += len(m.Doses)
			for _, d := range m.Doses {
				want = append(want, d.Scheduled.UTC().Format(time.RFC3339))
			}
			sort.Strings(got)
			sort.Strings(want)
			if len(got) != len(want) {
				bad++
				if bad <= 3 {
					t.Errorf("%s %s: simulator expects doses %v, the pipeline's instances of times %v are %v", p.ID, m.ID, want, m.Schedule.Times, got)
				}
				continue
			}
			for i := range got {
				if got[i] != want[i] {
					bad++
					if bad <= 3 {
						t.Errorf("%s %s: simulator expects doses %v, the pipeline's instances of times %v are %v", p.ID, m.ID, want, m.Schedule.Times, got)
					}
					break
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d medications: expected doses differ from the pipeline's dose instances", bad, len(f.Patients)*sc.Pillcases.Medications)
	}
	if doses == 0 {
		t.Errorf("no doses planned: the check compared nothing")
	}
}

// A batched device buffered its readings before publishing them: their
// event times must not lie after the moment the batch is built. Stamping
// them now+k ms put the batch's later readings in the future, so every
// event -> first hop / event -> queryable latency of a probe in a batch was
// understated by up to batch-1 ms (10 s at transport.batch 10000).
func TestBatchEventTimesNotInTheFuture(t *testing.T) {
	sc, err := bench.LoadScenario("scenarios/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	f, err := bench.NewFleet(sc, "run1", "tenant-x", now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	g := f.NewTelemetry()
	rs := g.Next(now, sc.Transport.Batch)
	var future int
	var worst time.Duration
	for _, r := range rs {
		if r.EventTime.After(now) {
			future++
			worst = max(worst, r.EventTime.Sub(now))
		}
	}
	if future > 0 {
		t.Errorf("%d of %d readings of a batch built at %s carry a later event time (up to +%s): their latencies are understated by that much",
			future, len(rs), now.Format("15:04:05.000"), worst)
	}
	// Still a buffer's readings: distinct, in order, the last one now.
	for i := 1; i < len(rs); i++ {
		if !rs[i].EventTime.After(rs[i-1].EventTime) {
			t.Fatalf("reading %d at %s is not after reading %d at %s", i, rs[i].EventTime.Format("15:04:05.000"), i-1, rs[i-1].EventTime.Format("15:04:05.000"))
		}
	}
	if len(rs) != sc.Transport.Batch || !rs[len(rs)-1].EventTime.Equal(now) {
		t.Errorf("%d readings, the last at %s: want %d, the last stamped when the batch was built (%s)", len(rs), rs[len(rs)-1].EventTime.Format("15:04:05.000"), sc.Transport.Batch, now.Format("15:04:05.000"))
	}
}
