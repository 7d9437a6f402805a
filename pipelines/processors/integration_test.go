package processors_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/pipelines/processors"
	"github.com/wardstream/wardstream/pipelines/reference"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

var berlin, _ = time.LoadLocation("Europe/Berlin")

// simClock is the processing-time clock shared by all instances; with a
// file set it is also written there for instances in other processes.
type simClock struct {
	ms   atomic.Int64
	file string
}

func (c *simClock) now() time.Time { return time.UnixMilli(c.ms.Load()) }
func (c *simClock) set(t time.Time) {
	c.ms.Store(t.UnixMilli())
	if c.file != "" {
		tmp := c.file + ".tmp"
		if os.WriteFile(tmp, []byte(strconv.FormatInt(t.UnixMilli(), 10)), 0o600) == nil {
			_ = os.Rename(tmp, c.file)
		}
	}
}

// fileClock reads the simulated clock another process writes.
func fileClock(path string) func() time.Time {
	var mu sync.Mutex
	var last time.Time
	var ms int64
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) > 10*time.Millisecond {
			if b, err := os.ReadFile(path); err == nil {
				if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
					ms = v
				}
			}
			last = time.Now()
		}
		return time.UnixMilli(ms)
	}
}

// itConfig is the topology and section the failover test's instances run.
func itConfig(brokers []string, prefix string) (config.Root, processors.Config) {
	root := config.Default()
	root.Tenant = "it"
	root.Kafka.Brokers = brokers
	root.Kafka.Partitions = 4
	root.DrainTimeout = config.Duration(20 * time.Second)
	cfg := processors.DefaultConfig()
	cfg.TopicPrefix = prefix
	cfg.TickInterval = config.Duration(300 * time.Millisecond)
	cfg.CorrectionHorizon = config.Duration(30 * 24 * time.Hour)
	cfg.Groups = []string{processors.GroupAdherence, processors.GroupAlerts}
	return root, cfg
}

// TestIntegrationHelperInstance is not a test: the failover test runs the
// test binary again with WS_HELPER=1 to get a processors instance in its own
// process, which it then kills with SIGKILL.
func TestIntegrationHelperInstance(t *testing.T) {
	if os.Getenv("WS_HELPER") != "1" {
		t.Skip("helper process of TestIntegrationFailoverAndRestartEqualReference")
	}
	root, cfg := itConfig(strings.Split(os.Getenv("WS_BROKERS"), ","), os.Getenv("WS_PREFIX"))
	h := runtime.NewHealth()
	r, err := processors.New(&root, cfg, processors.WithClock(fileClock(os.Getenv("WS_CLOCK_FILE"))), processors.WithHealth(h))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	for h.Ready() != nil {
		select {
		case err := <-done:
			t.Fatal(err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := os.WriteFile(os.Getenv("WS_READY_FILE"), []byte("ready"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Fatal(<-done) // runs until killed
}

// startProcess runs an instance in a child process and waits until ready.
func startProcess(t *testing.T, brokers []string, prefix, clockFile string) *exec.Cmd {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationHelperInstance$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WS_HELPER=1", "WS_BROKERS="+strings.Join(brokers, ","), "WS_PREFIX="+prefix,
		"WS_CLOCK_FILE="+clockFile, "WS_READY_FILE="+ready)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("child instance not ready after 60s: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type instance struct {
	role   *processors.Role
	health *runtime.Health
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, root *config.Root, cfg processors.Config, clk *simClock) *instance {
	t.Helper()
	h := runtime.NewHealth()
	r, err := processors.New(root, cfg, processors.WithClock(clk.now), processors.WithHealth(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{role: r, health: h, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- r.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for h.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("instance not ready after 60s: %v", h.Ready())
		}
		select {
		case err := <-in.done:
			t.Fatalf("instance stopped while starting: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return in
}

func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("instance stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("instance did not stop within 30s")
	}
}

type event struct {
	arrive time.Time
	topic  string
	key    string
	bytes  []byte
}

// scenario builds schedules and intakes (on time, early, late, missed,
// skipped, extra, duplicated, hours-late flushes) for 2 days.
func scenario(rng *rand.Rand, prefix string, from time.Time) (scheds []*pb.DoseSchedule, intakes []*pb.MedicationIntake, evs []event) {
	n := 0
	for p := 0; p < 8; p++ {
		for m := 0; m < 2; m++ {
			pid, mid := fmt.Sprintf("p%d", p), fmt.Sprintf("m%d", m)
			s := &pb.DoseSchedule{Meta: &pb.Meta{Tenant: "it", EventId: "s" + pid + mid, EventTimeMs: from.UnixMilli()},
				PatientId: pid, MedicationId: mid, Timezone: "Europe/Berlin", Times: []string{"08:00", "09:30", "20:00"},
				StartDate: from.In(berlin).Format("2006-01-02"), EndDate: from.In(berlin).AddDate(0, 0, 1).Format("2006-01-02"), Version: 1}
			scheds = append(scheds, s)
			b, _ := codec.Marshal(s)
			evs = append(evs, event{arrive: from, topic: prefix + topics.Schedules, key: topics.ScheduleKey(pid, mid), bytes: b})
			for d := 0; d < 2; d++ {
				for _, hm := range s.Times {
					base, _ := time.ParseInLocation("2006-01-02 15:04", from.In(berlin).AddDate(0, 0, d).Format("2006-01-02")+" "+hm, berlin)
					var off time.Duration
					status := "taken"
					switch rng.IntN(7) {
					case 0:
						continue
					case 1:
						off = -time.Duration(16+rng.IntN(44)) * time.Minute
					case 2:
						off = time.Duration(16+rng.IntN(224)) * time.Minute
					case 3:
						status = "skipped"
					case 4:
						off = time.Duration(rng.IntN(600)-300) * time.Minute
					default:
						off = time.Duration(rng.IntN(31)-15) * time.Minute
					}
					n++
					at := base.Add(off)
					in := &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "it", EventId: fmt.Sprintf("i%d", n), EventTimeMs: at.UnixMilli()},
						DeviceId: "pc-" + pid, PatientId: pid, MedicationId: mid, IntakeTimeMs: at.UnixMilli(), Status: status}
					intakes = append(intakes, in)
					b, _ := codec.Marshal(in)
					delay := time.Duration(rng.IntN(60)) * time.Second
					if rng.IntN(5) == 0 {
						delay = time.Duration(2+rng.IntN(20)) * time.Hour
					}
					copies := 1
					if rng.IntN(8) == 0 {
						copies = 2
					}
					for c := 0; c < copies; c++ {
						evs = append(evs, event{arrive: at.Add(delay + time.Duration(c)*time.Minute), topic: prefix + topics.Intake, key: pid, bytes: b})
					}
				}
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].arrive.Before(evs[j].arrive) })
	return scheds, intakes, evs
}

// outputs reads a topic from the start in the background.
type outputs struct {
	mu   sync.Mutex
	outs map[string]*pb.DoseOutcome
	n    int
}

func consume(t *testing.T, ctx context.Context, brokers []string, topic string) *outputs {
	o := &outputs{outs: map[string]*pb.DoseOutcome{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				var d pb.DoseOutcome
				if err := codec.Unmarshal(r.Value, &d); err != nil {
					t.Errorf("undecodable outcome: %v", err)
					return
				}
				o.mu.Lock()
				o.n++
				if cur := o.outs[d.DoseId]; cur == nil || d.Version > cur.Version {
					o.outs[d.DoseId] = &d
				} else if d.Version == cur.Version && d.Outcome != cur.Outcome {
					t.Errorf("dose %s version %d emitted as %s and %s", d.DoseId, d.Version, d.Outcome, cur.Outcome)
				}
				o.mu.Unlock()
			})
		}
	}()
	return o
}

// diff compares the final outcomes with the reference; "" when equal.
func (o *outputs) diff(want reference.Result) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := 0
	for _, d := range o.outs {
		if d.Outcome != pb.Outcome_OUTCOME_UNSPECIFIED {
			got++
		}
	}
	for id, w := range want.Outcomes {
		g := o.outs[id]
		if g == nil || g.Outcome != w.Outcome || g.IntakeEventId != w.IntakeEventID {
			return fmt.Sprintf("dose %s: got %v, reference %s/%s", id, g.GetOutcome(), w.Outcome, w.IntakeEventID)
		}
	}
	if got != len(want.Outcomes) {
		return fmt.Sprintf("%d outcomes, reference %d", got, len(want.Outcomes))
	}
	return ""
}

func TestIntegrationFailoverAndRestartEqualReference(t *testing.T) {
	svc := testutil.Integration(t)
	prefix := testutil.Unique(t, "wsit") + "."
	root, cfg := itConfig(svc.KafkaBrokers, prefix)
	t.Cleanup(func() { cleanup(t, root, prefix) })

	from := time.Date(2026, 3, 2, 0, 0, 0, 0, berlin)
	clk := &simClock{file: filepath.Join(t.TempDir(), "clock")}
	clk.set(from)
	rng := rand.New(rand.NewPCG(42, 1))
	scheds, intakes, evs := scenario(rng, prefix, from)
	want, err := reference.Compute(reference.Input{Schedules: scheds, Intakes: intakes, From: from, To: from.AddDate(0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}

	// Instance A runs in a child process (so that it can be killed with
	// SIGKILL: no drain, no offset commit, no flush); B in this process.
	// B starts first so that it has created the tables when A joins.
	b := start(t, &root, cfg, clk)
	a := startProcess(t, svc.KafkaBrokers, prefix, clk.file)
	defer func() { _ = a.Process.Kill(); _ = a.Wait() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outs := consume(t, ctx, svc.KafkaBrokers, prefix+topics.DoseOutcomes)
	cl, err := kafka.NewClient(root.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	stoppedA := false
	for i, ev := range evs {
		// Let the clock pass each 30 minutes of simulated time so that
		// MISSED is emitted before late intakes correct it.
		for clk.now().Add(30 * time.Minute).Before(ev.arrive) {
			clk.set(clk.now().Add(30 * time.Minute))
			time.Sleep(15 * time.Millisecond)
		}
		if ev.arrive.After(clk.now()) {
			clk.set(ev.arrive)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: ev.topic, Key: []byte(ev.key), Value: ev.bytes}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if !stoppedA && i >= len(evs)/2 {
			// Kill one of the two instances mid-stream: once the group
			// notices (session timeout), the survivor takes over its
			// partitions, restores their tables and re-reads what A had not
			// committed.
			if err := a.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = a.Wait()
			stoppedA = true
		}
	}
	clk.set(from.AddDate(0, 0, 4))
	waitEqual(t, outs, want, 90*time.Second)

	// Restart from the table topics: a fresh instance (empty local
	// storage) replaces the survivor.
	b.stop(t)
	c := start(t, &root, cfg, clk)
	defer c.stop(t)
	outs.mu.Lock()
	before := outs.n
	var missed *pb.DoseOutcome
	for _, d := range outs.outs {
		if d.Outcome == pb.Outcome_MISSED && (missed == nil || d.DoseId < missed.DoseId) {
			missed = d
		}
	}
	outs.mu.Unlock()
	if missed == nil {
		t.Fatal("scenario has no missed dose")
	}
	// A replayed intake changes nothing (its id is in the restored state)...
	dup := intakes[0]
	bdup, _ := codec.Marshal(dup)
	// ...and a late intake for a missed dose is corrected with the next
	// version, which only the restored state can know.
	late := &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "it", EventId: "late-1", EventTimeMs: missed.ScheduledTimeMs}, DeviceId: "pc-" + missed.PatientId,
		PatientId: missed.PatientId, MedicationId: missed.MedicationId, IntakeTimeMs: missed.ScheduledTimeMs, Status: "taken"}
	blate, _ := codec.Marshal(late)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: prefix + topics.Intake, Key: []byte(dup.PatientId), Value: bdup},
		&kgo.Record{Topic: prefix + topics.Intake, Key: []byte(late.PatientId), Value: blate}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		outs.mu.Lock()
		got := outs.outs[missed.DoseId]
		outs.mu.Unlock()
		if got.Outcome == pb.Outcome_TAKEN_ON_TIME {
			if got.Version != missed.Version+1 {
				t.Fatalf("correction after restart has version %d, want %d", got.Version, missed.Version+1)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no correction after restart: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	outs.mu.Lock()
	extra := outs.n - before
	outs.mu.Unlock()
	// One corrected outcome; the replayed duplicate and the restart emit
	// nothing else (an EXTRA may be retracted if the late intake displaced
	// nothing, so allow none).
	if extra != 1 {
		t.Fatalf("restart emitted %d outcome records, want exactly the 1 correction", extra)
	}
	t.Logf("%d outcome records for %d doses/extras; failover and restart equal the reference", before, len(want.Outcomes))
}

func waitEqual(t *testing.T, o *outputs, want reference.Result, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		diff := o.diff(want)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("final outcomes differ from the reference after %v: %s", d, diff)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// cleanup deletes the test's topics.
func cleanup(t testing.TB, root config.Root, prefix string) {
	cl, err := kafka.NewClient(root.Kafka)
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts, err := adm.ListTopics(ctx)
	if err != nil {
		return
	}
	var del []string
	for _, n := range ts.Names() {
		if len(n) > len(prefix) && n[:len(prefix)] == prefix {
			del = append(del, n)
		}
	}
	if _, err := adm.DeleteTopics(ctx, del...); err != nil {
		t.Logf("deleting test topics: %v", err)
	}
}
