package bench

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
)

func TestSetPath(t *testing.T) {
	cases := []struct {
		name, in string
		path     []string
		value    string
		want     []string
	}{
		{"replace scalar", "tenant: a\nkafka:\n  brokers: [x:1]\n", []string{"tenant"}, "bench-1", []string{"tenant: bench-1", "brokers:"}},
		{"nested existing", "clickhouse:\n  database: wardstream\n  username: default\n", []string{"clickhouse", "database"}, "bench_1", []string{"database: bench_1", "username: default"}},
		{"create mappings", "tenant: a\n", []string{"sinks", "clickhouse", "group"}, "g1", []string{"sinks:", "clickhouse:", "group: g1"}},
		{"numeric-looking value stays a string", "tenant: a\n", []string{"tenant"}, "123", []string{`tenant: "123"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(c.in), &doc); err != nil {
				t.Fatal(err)
			}
			setPath(&doc, c.path, c.value)
			out, err := yaml.Marshal(&doc)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestProcSampleSelf(t *testing.T) {
	p := WatchPid("self", os.Getpid())
	p.Sample(time.Now())
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) { // burn CPU so utime moves
	}
	p.Sample(time.Now())
	u := p.Usage()
	if u.RSSMiB <= 0 || u.PeakRSSMiB < u.RSSMiB {
		t.Errorf("rss: %+v", u)
	}
	if u.CPUSeconds <= 0 || u.AvgCores <= 0 || u.WindowSecs <= 0 {
		t.Errorf("cpu: %+v", u)
	}
	if _, _, err := readProc(1 << 30); err == nil {
		t.Error("reading a non-existent pid succeeded")
	}
}

func TestQuantiles(t *testing.T) {
	var ms []float64
	for i := 1; i <= 100; i++ {
		ms = append(ms, float64(101-i))
	}
	q := quantiles(ms, "probes", 250*time.Millisecond)
	if q.P50Ms != 50 || q.P95Ms != 95 || q.P99Ms != 99 || q.MaxMs != 100 || q.Samples != 100 || q.ResolutionMs != 250 {
		t.Errorf("%+v", q)
	}
	if e := quantiles(nil, "x", 0); e.Samples != 0 || e.P99Ms != 0 {
		t.Errorf("%+v", e)
	}
}

func TestInListEscapes(t *testing.T) {
	if got := inList([]string{"a", "b'c", `d\`}); got != `'a','b\'c','d\\'` {
		t.Errorf("got %s", got)
	}
}

func TestStageRoles(t *testing.T) {
	cases := map[string]string{StageAll: "sink,processors,mqtt", StageMQTT: "mqtt", StageKafka: "sink,processors", StageSink: "sink"}
	for st, want := range cases {
		if got := strings.Join(stageRoles(st, false), ","); got != want {
			t.Errorf("%s: %s, want %s", st, got, want)
		}
	}
	if got := strings.Join(stageRoles(StageAll, true), ","); got != "sink,processors,mqtt,rtsp" {
		t.Errorf("cameras: %s", got)
	}
}

// The hand-written telemetry JSON must say exactly what the generic
// encoder says.
func TestAppendTelemetryMatchesGeneric(t *testing.T) {
	at := time.Date(2026, 3, 10, 9, 0, 0, 123e6, time.UTC)
	for _, r := range []Reading{
		{Kind: KindVitals, DeviceID: "d\"1", DeviceType: TypeMonitor, PatientID: "p1", EventID: "e1", EventTime: at,
			HeartRate: 72, SystolicBP: 118.5, DiastolicBP: 79, SpO2: 97.3, Temperature: 36.8, RespiratoryRate: 16},
		{Kind: KindPump, DeviceID: "d2", DeviceType: TypePump, EventID: "e2", EventTime: at, MedicationDose: 5.01, AdministrationRate: 2.5, BatteryLevel: 80},
		{Kind: KindPumpFailure, DeviceID: "d3", DeviceType: TypePump, PatientID: "p3", EventID: "e3\n", EventTime: at, Severity: 8, AlertType: "PUMP_FAILURE", BatteryLevel: 80},
	} {
		var fast, generic map[string]any
		if err := json.Unmarshal(appendTelemetry(nil, &r, ""), &fast); err != nil {
			t.Fatalf("fast JSON invalid: %v: %s", err, appendTelemetry(nil, &r, ""))
		}
		gb, _ := json.Marshal(deviceJSON(&r))
		_ = json.Unmarshal(gb, &generic)
		if !reflect.DeepEqual(fast, generic) {
			t.Errorf("kind %d:\nfast    %v\ngeneric %v", r.Kind, fast, generic)
		}
	}
}

func TestMovingAverage(t *testing.T) {
	got := movingAverage([][2]float64{{0, 2}, {1, 4}, {2, -6}, {3, 6}}, 2)
	want := [][2]float64{{0, 2}, {1, 3}, {2, 2}, {3, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
}

func TestRecordAfterWarmup(t *testing.T) {
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		warmup     time.Duration
		events     []time.Duration // after start
		wantAll    int
		wantSteady int
	}{
		{"no warmup keeps every probe", 0, []time.Duration{0, time.Second, 20 * time.Second}, 3, 3},
		{"warmup leaves out the start", 15 * time.Second, []time.Duration{0, 14 * time.Second, 15 * time.Second, 40 * time.Second}, 4, 2},
		{"all inside the warmup", 15 * time.Second, []time.Duration{time.Second, 2 * time.Second}, 2, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{start: start}
			h.o.Config.Warmup = config.Duration(tc.warmup)
			for i, d := range tc.events {
				h.record(start.Add(d), float64(100*(i+1)))
			}
			if len(h.latencies) != tc.wantAll || len(h.afterWarmup) != tc.wantSteady {
				t.Fatalf("latencies %d, after warmup %d; want %d, %d", len(h.latencies), len(h.afterWarmup), tc.wantAll, tc.wantSteady)
			}
		})
	}
}

func TestConfigWarmupValidated(t *testing.T) {
	c := DefaultConfig()
	if c.Warmup.D() != 15*time.Second {
		t.Fatalf("default warmup %s, want 15s", c.Warmup.D())
	}
	c.Warmup = config.Duration(-time.Second)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "bench.warmup: -1s is negative") {
		t.Fatalf("Validate() = %v, want bench.warmup negative", err)
	}
}

func TestParseProcAge(t *testing.T) {
	// starttime (field 22) 123456 ticks = 1234.56 s after boot.
	stat := []byte("4242 (java -x) S 1 4242 4242 0 -1 4194560 100 0 0 0 50 20 0 0 20 0 80 0 123456 1000000 200 18446744073709551615")
	cases := []struct {
		name    string
		stat    []byte
		uptime  string
		want    time.Duration
		wantErr bool
	}{
		{"a minute old", stat, "1294.56 2000.00\n", 60 * time.Second, false},
		{"clock skew clamps to zero", stat, "1000.00 10.00\n", 0, false},
		{"short stat", []byte("1 (x) S 1 2 3"), "10.0 1.0", 0, true},
		{"no parenthesis", []byte("garbage"), "10.0 1.0", 0, true},
		{"bad uptime", stat, "", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcAge(tc.stat, []byte(tc.uptime))
			if (err != nil) != tc.wantErr || (!tc.wantErr && (got-tc.want).Abs() > 10*time.Millisecond) {
				t.Fatalf("parseProcAge = %s, %v; want %s (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestProcAgeSelf(t *testing.T) {
	age, err := procAge(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if age < 0 || age > 24*time.Hour {
		t.Fatalf("this test process started %s ago", age)
	}
}
