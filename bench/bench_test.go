package bench_test

import (
	"encoding/json"
	"github.com/wardstream/wardstream/schemas/codec"
	"google.golang.org/protobuf/proto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/bench"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func TestShippedScenariosParse(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("want the 4 shipped scenarios, got %v (%v)", files, err)
	}
	for _, f := range files {
		if _, err := bench.LoadScenario(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseScenarioErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the joined error; nil: valid
	}{
		{"valid minimal", "name: x\nmonitors: {count: 1, hz: 1}\n", nil},
		{"unknown key", "name: x\nmonitors: {count: 1, hz: 1}\nbogus: 1\n", []string{"field bogus not found"}},
		{"no devices", "name: x\n", []string{"devices: the scenario has no device"}},
		{"bad qos and batch", "name: x\nmonitors: {count: 1, hz: 1}\ntransport: {qos: 2, batch: 0}\n",
			[]string{"transport.qos: must be 0 or 1", "transport.batch: must be 1..10000"}},
		{"unknown profile", "name: x\npillcases: {count: 2, profiles: {sleepy: 1}}\n", []string{"pillcases.profiles.sleepy: unknown profile"}},
		{"overlapping windows", "name: x\npillcases: {count: 1, dose_every: 5m}\n", []string{"pillcases.dose_every: must exceed"}},
		{"bad zone", "name: x\npillcases: {count: 1, timezone: Mars/Base}\n", []string{"pillcases.timezone"}},
		{"nominal rate without hz", "name: x\nmonitors: {count: 3}\n", []string{"rate: is 0 (nominal)"}},
		{"unthrottled without hz ok", "name: x\nrate: -1\nmonitors: {count: 3}\n", nil},
		{"bad rate", "name: x\nrate: -5\nmonitors: {count: 3, hz: 1}\n", []string{"rate: must be -1"}},
		{"history in_run", "name: x\npillcases: {count: 1, history: in_run}\n", nil},
		{"unknown history", "name: x\npillcases: {count: 1, history: later}\n", []string{`pillcases.history: "later" is not "preload" or "in_run"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := bench.ParseScenario([]byte(c.yaml))
			if c.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want errors %q, got none", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func smokeFleet(t *testing.T, start time.Time, send time.Duration) (*bench.Scenario, *bench.Fleet) {
	t.Helper()
	sc, err := bench.LoadScenario("scenarios/smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := bench.NewFleet(sc, "run1", "tenant-x", start, start.Add(send))
	if err != nil {
		t.Fatal(err)
	}
	return sc, f
}

// The simulator's plan must be self-consistent: every dose's expected
// outcome follows from its intake offset under the schedule's windows.
func TestFleetPlanMatchesDefinitions(t *testing.T) {
	start := time.Date(2026, 3, 10, 14, 0, 30, 0, time.UTC)
	sc, f := smokeFleet(t, start, 20*time.Minute)
	grace := time.Duration(sc.Pillcases.GraceMinutes) * time.Minute
	early := time.Duration(sc.Pillcases.EarlyWindowMinutes) * time.Minute
	late := time.Duration(sc.Pillcases.LateWindowMinutes) * time.Minute
	profiles := map[string]int{}
	var live, hist, missed int
	for _, p := range f.Patients {
		profiles[p.Profile]++
		for _, m := range p.Meds {
			if len(m.Schedule.Times) != len(m.Doses) {
				t.Fatalf("%s: %d times for %d doses", p.ID, len(m.Schedule.Times), len(m.Doses))
			}
			for i, d := range m.Doses {
				if i > 0 && d.Scheduled.Sub(m.Doses[i-1].Scheduled) <= early+late {
					t.Fatalf("%s: doses %s and %s too close", p.ID, m.Doses[i-1].Scheduled, d.Scheduled)
				}
				if d.Live {
					live++
				} else {
					hist++
				}
				if d.Intake.IsZero() {
					missed++
					if d.Expected != pb.Outcome_MISSED {
						t.Fatalf("skipped dose expected %s", d.Expected)
					}
					continue
				}
				off := d.Intake.Sub(d.Scheduled)
				var want pb.Outcome
				switch {
				case off >= -grace && off <= grace:
					want = pb.Outcome_TAKEN_ON_TIME
				case off < -grace && off >= -early:
					want = pb.Outcome_TAKEN_EARLY
				case off > grace && off <= late:
					want = pb.Outcome_TAKEN_LATE
				default:
					t.Fatalf("intake offset %s outside every window", off)
				}
				if want != d.Expected {
					t.Fatalf("offset %s: expected %s, plan says %s", off, want, d.Expected)
				}
				if d.SendAt.Before(d.Intake) {
					t.Fatalf("intake reported (%s) before it happened (%s)", d.SendAt, d.Intake)
				}
				if d.Live && d.SendAt.Add(0).After(start.Add(20*time.Minute)) {
					t.Fatalf("live intake sent after the sending phase")
				}
			}
		}
	}
	for _, pr := range []string{"adherent", "forgetful", "late", "offline", "duplicate"} {
		if profiles[pr] == 0 {
			t.Errorf("profile %s not dealt: %v", pr, profiles)
		}
	}
	if live == 0 || hist == 0 || missed == 0 {
		t.Errorf("want live, history and missed doses; got live %d history %d missed %d", live, hist, missed)
	}
	e := f.Expect(nil)
	var due, taken, nMissed int
	for _, a := range e.Adherence {
		due += a[0]
		taken += a[1]
	}
	for _, n := range e.MissedAlerts {
		nMissed += n
	}
	if due != len(e.Doses) || due-taken != nMissed || nMissed != missed {
		t.Errorf("expectations disagree: due %d doses %d taken %d missed %d/%d", due, len(e.Doses), taken, nMissed, missed)
	}
}

// Doses never cross the start's local midnight, so a schedule's times
// repeat on no other date.
func TestFleetStaysOnOneLocalDay(t *testing.T) {
	start := time.Date(2026, 3, 10, 23, 50, 0, 0, time.UTC)
	_, f := smokeFleet(t, start, 30*time.Minute)
	for _, p := range f.Patients {
		for _, m := range p.Meds {
			if m.Schedule.StartDate != "2026-03-10" || m.Schedule.EndDate != "2026-03-10" {
				t.Fatalf("schedule dates %s..%s", m.Schedule.StartDate, m.Schedule.EndDate)
			}
			for _, d := range m.Doses {
				if d.Scheduled.Day() != 10 {
					t.Fatalf("dose at %s crosses midnight", d.Scheduled)
				}
			}
		}
	}
}

func TestPillEventsOrderAndDuplicates(t *testing.T) {
	start := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	_, f := smokeFleet(t, start, 15*time.Minute)
	ev := f.PillEvents()
	seenSched := map[string]bool{}
	dups := 0
	for i, e := range ev {
		if i > 0 && e.At.Before(ev[i-1].At) {
			t.Fatal("events out of order")
		}
		switch e.Reading.Kind {
		case bench.KindSchedule:
			seenSched[e.Reading.PatientID+e.Reading.MedicationID] = true
		case bench.KindIntake:
			if !seenSched[e.Reading.PatientID+e.Reading.MedicationID] {
				t.Fatalf("intake of %s before its schedule", e.Reading.PatientID)
			}
			if e.Copies > 1 {
				dups++
			}
		}
	}
	if dups == 0 {
		t.Error("the duplicate profile sent no duplicate")
	}
}

func TestTelemetryMixAndProbes(t *testing.T) {
	start := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	_, f := smokeFleet(t, start, time.Minute)
	g := f.NewTelemetry()
	kinds := map[bench.Kind]int{}
	probes := 0
	ids := map[string]bool{}
	for i := range 2080 {
		for _, r := range g.Next(start.Add(time.Duration(i)*time.Millisecond), 1) {
			kinds[r.Kind]++
			if r.Probe {
				probes++
			}
			if ids[r.EventID] {
				t.Fatalf("event id %s repeated", r.EventID)
			}
			ids[r.EventID] = true
		}
	}
	// Weights: monitors 20*10 = 200, pumps 4*2 = 8 -> 8/208 of readings.
	pumps := kinds[bench.KindPump] + kinds[bench.KindPumpFailure]
	if pumps < 70 || pumps > 90 {
		t.Errorf("pump readings %d of 2080, want ~80 (%v)", pumps, kinds)
	}
	if probes != 2080/10 {
		t.Errorf("probes %d, want %d", probes, 2080/10)
	}
	batch := g.Next(start, 100)
	if len(batch) != 100 || batch[0].DeviceID != batch[99].DeviceID {
		t.Fatalf("a batch is 100 readings of one device")
	}
}

func TestEncodings(t *testing.T) {
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	r := bench.Reading{Kind: bench.KindVitals, DeviceID: "d1", DeviceType: bench.TypeMonitor, PatientID: "p1", EventID: "e1", EventTime: at, HeartRate: 70}
	p := bench.EncodeMQTT("t1", &r)
	if p.Topic != "medical/t1/vitals-monitor/d1/vitals" {
		t.Errorf("topic %s", p.Topic)
	}
	var m map[string]any
	if err := json.Unmarshal(p.Payload, &m); err != nil || m["deviceId"] != "d1" || m["messageId"] != "e1" || m["heartRate"] != 70.0 {
		t.Errorf("payload %s (%v)", p.Payload, err)
	}
	b := bench.EncodeMQTTBatch("t1", []bench.Reading{r, r})
	if b.Topic != bench.BatchTopic || b.Readings != 2 {
		t.Errorf("batch %s %d", b.Topic, b.Readings)
	}
	var env struct {
		DeviceID string           `json:"deviceId"`
		Count    int              `json:"count"`
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal(b.Payload, &env); err != nil || env.Count != 2 || len(env.Messages) != 2 || env.DeviceID != "d1" {
		t.Errorf("batch payload %s (%v)", b.Payload, err)
	}
	for _, kind := range []string{"bad_json", "missing_fields", "spoofed_device"} {
		bad := bench.EncodeMQTT("t1", &bench.Reading{Kind: bench.KindMalformed, Malformed: kind, DeviceID: "d1", DeviceType: bench.TypeMonitor, EventID: "x"})
		var mm map[string]any
		err := json.Unmarshal(bad.Payload, &mm)
		switch kind {
		case "bad_json":
			if err == nil {
				t.Error("bad_json parses")
			}
		case "missing_fields":
			if err != nil || mm["deviceId"] != nil {
				t.Errorf("missing_fields: %s", bad.Payload)
			}
		case "spoofed_device":
			if err != nil || mm["deviceId"] == "d1" {
				t.Errorf("spoofed_device: %s", bad.Payload)
			}
		}
	}
	rec := bench.EncodeKafka("t1", &r, at)
	if rec.Topic != "wardstream.vitals" || string(rec.Key) != "d1" || len(rec.Value) == 0 {
		t.Errorf("kafka record %s %s", rec.Topic, rec.Key)
	}
	// A batch via Kafka: its vitals as one VitalsBatch record, equal to
	// the single records reading by reading; an intake stays a record.
	r2 := r
	r2.EventID = "e2"
	in := bench.Reading{Kind: bench.KindIntake, DeviceID: "d1", PatientID: "p1", MedicationID: "m1", EventID: "i1", EventTime: at, IntakeTime: at, Status: "taken"}
	recs := bench.EncodeKafkaBatch("t1", "e1", []bench.Reading{r, in, r2}, at)
	if len(recs) != 2 || recs[0].Topic != "wardstream.vitals-batches" || string(recs[0].Key) != "d1" || recs[1].Topic != "wardstream.medication-intake" {
		t.Fatalf("kafka batch records %v", recs)
	}
	var vb pb.VitalsBatch
	if err := codec.Unmarshal(recs[0].Value, &vb); err != nil || len(vb.Readings) != 2 || vb.BatchId != "e1" {
		t.Fatalf("vitals batch %v (%v)", &vb, err)
	}
	for i, one := range []bench.Reading{r, r2} {
		var want pb.VitalsTelemetry
		if err := codec.Unmarshal(bench.EncodeKafka("t1", &one, at).Value, &want); err != nil {
			t.Fatal(err)
		}
		want.BatchId = "e1"
		if !proto.Equal(&want, vb.Readings[i]) {
			t.Errorf("batch reading %d = %v, want %v", i, vb.Readings[i], &want)
		}
	}
}

func TestLineChart(t *testing.T) {
	svg := bench.LineChart("t <&>", "x", "y", []bench.Series{{Name: "a", Color: "#000", Points: [][2]float64{{0, 1}, {1, 2500}, {2, 4}}}})
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "<polyline") || !strings.Contains(svg, "t &lt;&amp;&gt;") {
		t.Errorf("bad svg:\n%s", svg)
	}
	if empty := bench.LineChart("t", "x", "y", nil); !strings.Contains(empty, "no data") {
		t.Error("empty chart does not say so")
	}
}

func TestResultsWrite(t *testing.T) {
	dir := t.TempDir()
	r := &bench.Results{RunID: "r", Scenario: "s", Stage: "all", Sent: 10, Delivered: 10,
		Timeline:    []bench.Sample{{T: 0}, {T: 1, Sent: 10, SendRate: 10, P50Ms: 5, P99Ms: 9}},
		Correctness: &bench.Correctness{DoseOutcomes: bench.Check{Expected: 2, Matched: 1, Wrong: 1}}}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "results.md", "rate.svg", "latency.svg"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var back map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sent", "delivered", "lost", "duplicates_visible", "msgs_per_min", "latency", "stages", "roles", "correctness"} {
		if _, ok := back[k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
	c := back["correctness"].(map[string]any)["dose_outcomes"].(map[string]any)
	for _, k := range []string{"expected", "matched", "wrong", "missing"} {
		if _, ok := c[k]; !ok {
			t.Errorf("correctness.dose_outcomes lacks %q", k)
		}
	}
}
