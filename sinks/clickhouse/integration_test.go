package clickhouse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/testutil"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
	chsink "github.com/wardstream/wardstream/sinks/clickhouse"
)

// itEnv is one test's private slice of the shared real services: a
// ClickHouse database and a topic prefix of its own.
type itEnv struct {
	Brokers    []string `json:"brokers"`
	CHAddr     string   `json:"ch_addr"`
	Database   string   `json:"database"`
	Prefix     string   `json:"prefix"`
	Group      string   `json:"group"`
	Topics     []string `json:"topics"`
	BatchRows  int      `json:"batch_rows"`
	Partitions int32    `json:"partitions"`
	// GeneralPath turns the fast path off (A/B of the throughput test).
	GeneralPath bool `json:"general_path"`

	conn driver.Conn
}

func newEnv(t *testing.T, catalog ...string) *itEnv {
	t.Helper()
	svc := testutil.Integration(t)
	e := &itEnv{Brokers: svc.KafkaBrokers, CHAddr: svc.ClickHouseAddr, Database: testutil.Unique(t, "ws"),
		Prefix: testutil.Unique(t, "it") + ".", Group: testutil.Unique(t, "sink"), Topics: catalog, BatchRows: 100_000, Partitions: 6}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{svc.ClickHouseAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := (&chschema.Migrator{Conn: chschema.Adapt(conn), Database: e.Database}).Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	var names []string
	for _, c := range catalog {
		names = append(names, e.Prefix+c)
	}
	if _, err := adm.CreateTopics(ctx, e.Partitions, 1, nil, names...); err != nil {
		t.Fatalf("creating topics: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, names...)
		_, _ = adm.DeleteGroup(ctx, e.Group)
		cl.Close()
		if os.Getenv("WARDSTREAM_KEEP_DB") == "" {
			_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+e.Database)
		}
		conn.Close()
	})
	return e
}

// root is the topology the sink under test runs with; chAddr may be a proxy.
func (e *itEnv) root(chAddr string) (*config.Root, chsink.Config) {
	r := config.Default()
	r.Tenant = "hospital-it"
	r.Kafka.Brokers = e.Brokers
	r.ClickHouse.Addr = []string{chAddr}
	r.ClickHouse.Database = e.Database
	r.ClickHouse.DialTimeout = config.Duration(2 * time.Second)
	r.DrainTimeout = config.Duration(20 * time.Second)
	cfg := chsink.DefaultConfig()
	cfg.Topics, cfg.TopicPrefix, cfg.Group, cfg.BatchRows = e.Topics, e.Prefix, e.Group, e.BatchRows
	cfg.BatchAge = config.Duration(500 * time.Millisecond)
	cfg.MaxBufferedRows = 4 * e.BatchRows
	cfg.RetryBackoff, cfg.RetryBackoffMax = config.Duration(100*time.Millisecond), config.Duration(time.Second)
	cfg.BreakerCooldown = config.Duration(time.Second)
	cfg.SessionTimeout = config.Duration(6 * time.Second)
	cfg.Compression = "none" // loopback, as in deploy/local/topology.yaml
	cfg.DisableFastPath = e.GeneralPath
	return &r, cfg
}

// startSink runs the sink in-process; stop cancels it and returns Run's error.
func (e *itEnv) startSink(t *testing.T, chAddr string, reg prometheus.Registerer) (stop func() error) {
	t.Helper()
	r, cfg := e.root(chAddr)
	s, err := chsink.New(r, cfg, chsink.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var res error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case res = <-done:
			case <-time.After(40 * time.Second):
				res = errors.New("sink did not stop within 40s")
			}
		})
		return res
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func (e *itEnv) producer(t *testing.T) *kgo.Client {
	t.Helper()
	cfg := config.Default().Kafka
	cfg.Brokers = e.Brokers
	cl, err := kafka.NewClient(cfg, kgo.MaxBufferedRecords(200_000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func vitals(i int, device string) *pb.VitalsTelemetry {
	ms := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli() + int64(i)*10
	return &pb.VitalsTelemetry{
		Meta:     &pb.Meta{Tenant: "hospital-it", EventId: fmt.Sprintf("ev-%09d", i), EventTimeMs: ms, IngestTimeMs: ms + 5, Source: "it"},
		DeviceId: device, DeviceType: "vitals_monitor", PatientId: "p-" + device, Kind: "vitals",
		HeartRate: 60 + float64(i%40), Spo2: 95 + float64(i%5), Ward: "ward-1", Present: []string{"heartRate", "spo2"},
	}
}

// produceVitals produces n vitals records [from, from+n) and waits for acks.
func (e *itEnv) produceVitals(t *testing.T, cl *kgo.Client, from, n int) {
	e.produceVitalsBatched(t, cl, from, n, 1)
}

// produceVitalsBatched produces readings [from, from+n); per > 1 packs
// each device's consecutive readings into VitalsBatch records of per
// readings on the vitals-batches topic, as the mqtt connector does.
func (e *itEnv) produceVitalsBatched(t *testing.T, cl *kgo.Client, from, n, per int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := e.Prefix + topics.Vitals
	if per > 1 {
		topic = e.Prefix + topics.VitalsBatches
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	pending := map[string]*pb.VitalsBatch{}
	for i := from; i < from+n; i++ {
		dev := fmt.Sprintf("dev-%03d", i%200)
		var msg proto.Message = vitals(i, dev)
		if per > 1 {
			b := pending[dev]
			if b == nil {
				b = &pb.VitalsBatch{Meta: &pb.Meta{EventId: fmt.Sprint("batch|", i)}, DeviceId: dev, BatchId: fmt.Sprint(i)}
				pending[dev] = b
			}
			b.Readings = append(b.Readings, vitals(i, dev))
			if len(b.Readings) < per && i < from+n-200 {
				continue
			}
			delete(pending, dev)
			msg = b
		}
		v, err := codec.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(dev), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("producing vitals: %v", firstErr)
	}
}

// lag is how many records of the test's topics the group has not committed.
func (e *itEnv) lag(t *testing.T) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	for _, c := range e.Topics {
		names = append(names, e.Prefix+c)
	}
	lags, err := adm.Lag(ctx, e.Group)
	if err != nil {
		t.Fatalf("group lag: %v", err)
	}
	var total int64
	l := lags[e.Group]
	if l.FetchErr != nil || l.DescribeErr != nil {
		// Typically GROUP_ID_NOT_FOUND before the group's first join.
		return math.MaxInt64
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	committed := l.Lag
	ends.Each(func(o kadm.ListedOffset) {
		if m, ok := committed[o.Topic][o.Partition]; ok && m.Commit.At >= 0 {
			total += o.Offset - m.Commit.At
		} else {
			total += o.Offset
		}
	})
	return total
}

func (e *itEnv) count(t *testing.T, q string) uint64 {
	t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), fmt.Sprintf(q, e.Database)).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitCount polls until query q (with %s for the database) returns want.
func (e *itEnv) waitCount(t *testing.T, q string, want uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var n uint64
	for time.Now().Before(deadline) {
		if n = e.count(t, q); n == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: got %d, want %d after %v", fmt.Sprintf(q, e.Database), n, want, timeout)
}

// TestIntegrationEndToEnd is the foundation's first end-to-end proof: a
// record produced with franz-go to the real broker is consumed, decoded,
// inserted into the real ClickHouse and read back with a query. A record
// that is not protobuf goes to the dead-letter topic, and from there (the
// sink consumes it too) into the dead_letters table.
func TestIntegrationEndToEnd(t *testing.T) {
	e := newEnv(t, topics.Vitals, topics.DeadLetters)
	prod := e.producer(t)
	stop := e.startSink(t, e.CHAddr, nil)

	rec := vitals(42, "dev-e2e")
	v, _ := codec.Marshal(rec)
	ctx := context.Background()
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: e.Prefix + topics.Vitals, Key: []byte("dev-e2e"), Value: v},
		&kgo.Record{Topic: e.Prefix + topics.Vitals, Key: []byte("dev-bad"), Value: []byte("\xff\xffnot protobuf")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitCount(t, "SELECT count() FROM %s.vitals", 1, 30*time.Second)
	var (
		tenant, eventID, device, ward string
		hr, spo2                      float64
		at                            time.Time
		present                       []string
	)
	if err := e.conn.QueryRow(ctx, "SELECT tenant, event_id, device_id, ward, heart_rate, spo2, event_time, present FROM "+e.Database+".vitals").
		Scan(&tenant, &eventID, &device, &ward, &hr, &spo2, &at, &present); err != nil {
		t.Fatal(err)
	}
	if tenant != "hospital-it" || eventID != rec.Meta.EventId || device != "dev-e2e" || ward != "ward-1" || hr != rec.HeartRate || spo2 != rec.Spo2 ||
		at.Unix() != rec.Meta.EventTimeMs/1000 || len(present) != 2 {
		t.Fatalf("row read back = %s %s %s %s %v %v %v %v, want the produced record %v", tenant, eventID, device, ward, hr, spo2, at, present, rec)
	}
	// The rollup saw it too.
	e.waitCount(t, "SELECT toUInt64(uniqExactMerge(readings)) FROM %s.vitals_1m", 1, 10*time.Second)
	// The garbage record: dead-lettered with its reason, then stored.
	e.waitCount(t, "SELECT count() FROM %s.dead_letters WHERE reason = 'decode' AND stage = 'sink' AND key_hex = lower(hex('dev-bad'))", 1, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("sink stop: %v", err)
	}
	// Offsets were committed: a second sink in the same group inserts nothing new.
	stop2 := e.startSink(t, e.CHAddr, nil)
	time.Sleep(3 * time.Second)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, "SELECT count() FROM %s.vitals"); n != 1 {
		t.Fatalf("after restart vitals has %d rows, want 1 (offsets not committed?)", n)
	}
}

const childEnv = "WARDSTREAM_SINK_CHILD"

// TestIntegrationSinkChild is not a test: it is the sink process that
// TestIntegrationKilledMidBatch starts (re-executing the test binary) and
// kills with SIGKILL.
func TestIntegrationSinkChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("helper process for TestIntegrationKilledMidBatch")
	}
	var e itEnv
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	r, cfg := e.root(e.CHAddr)
	s, err := chsink.New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func (e *itEnv) startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	raw, _ := json.Marshal(e)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationSinkChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw), testutil.EnvGate+"=1")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestIntegrationKilledMidBatch: 1M records through Kafka, the sink process
// killed with SIGKILL mid-stream (after some batches were inserted, with
// others buffered or in flight, offsets partly committed), a new process
// takes over, and every event id is in the answers exactly once, both with
// FINAL and with the argMax/uniqExact pattern.
func TestIntegrationKilledMidBatch(t *testing.T) {
	const n = 1_000_000
	e := newEnv(t, topics.Vitals)
	e.BatchRows = 50_000
	prod := e.producer(t)
	start := time.Now()
	e.produceVitals(t, prod, 0, n)
	t.Logf("produced %d records in %v", n, time.Since(start).Round(time.Millisecond))

	first := e.startChild(t)
	t0 := time.Now()
	for e.count(t, "SELECT count() FROM %s.vitals") < 300_000 {
		if time.Since(t0) > 90*time.Second {
			t.Fatal("sink did not insert 300k rows in 90s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := e.count(t, "SELECT count() FROM %s.vitals")
	t.Logf("killed the sink after %d rows were in ClickHouse (%v)", killedAt, time.Since(t0).Round(time.Millisecond))

	// Upstream redelivery on top of the sink's own replay: the first 100k
	// events again, same ids, so that duplicates certainly exist.
	const dup = 100_000
	e.produceVitals(t, prod, 0, dup)

	second := e.startChild(t)
	t1 := time.Now()
	// The dead member holds its partitions until its session times out.
	for e.count(t, "SELECT count() FROM %s.vitals") == killedAt {
		if time.Since(t1) > time.Minute {
			t.Fatal("second sink inserted nothing in 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t2 := time.Now()
	// Done when the group committed every record (the redelivered
	// duplicates included: they are the last ones) and every event is in.
	// Raw row counts prove nothing here: merges collapse duplicates at any time.
	for e.lag(t) > 0 || e.count(t, "SELECT uniqExact(event_id) FROM %s.vitals") != n {
		if time.Since(t2) > 2*time.Minute {
			t.Fatalf("second sink did not catch up in 2 minutes: lag %d, %d events", e.lag(t), e.count(t, "SELECT uniqExact(event_id) FROM %s.vitals"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(t2)
	raw := e.count(t, "SELECT count() FROM %s.vitals")
	t.Logf("second sink: took over after %v, then caught up in %v (%d records incl. %d redelivered: %.0f records/s); %d raw rows left unmerged for %d events",
		t2.Sub(t1).Round(time.Millisecond), elapsed.Round(time.Millisecond), n+dup-int(killedAt), dup, float64(n+dup-int(killedAt))/elapsed.Seconds(), raw, n)
	if got := e.count(t, "SELECT uniqExact(event_id) FROM %s.vitals"); got != n {
		t.Fatalf("uniqExact(event_id) = %d, want %d", got, n)
	}
	if got := e.count(t, "SELECT count() FROM %s.vitals FINAL"); got != n {
		t.Fatalf("SELECT count() FROM vitals FINAL = %d, want %d", got, n)
	}
	if got := e.count(t, "SELECT count() FROM (SELECT event_id FROM %s.vitals GROUP BY event_id HAVING count() >= 1)"); got != n {
		t.Fatalf("distinct event ids = %d, want %d", got, n)
	}
	if got := e.count(t, "SELECT toUInt64(sum(c)) FROM (SELECT uniqExactMerge(readings) AS c FROM %s.vitals_1m GROUP BY tenant, ward, device_id, minute)"); got != n {
		t.Fatalf("vitals_1m readings = %d, want %d (rollup counts must be exact under replay)", got, n)
	}
	_ = second.Process.Signal(syscall.SIGTERM)
	_ = second.Wait()
}

// proxy forwards TCP connections to a real server and can cut them: it is
// how we take ClickHouse away from the sink without stopping the shared
// server other engineers use.
type proxy struct {
	addr, upstream string
	mu             sync.Mutex
	ln             net.Listener
	conns          map[net.Conn]bool
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), upstream: upstream, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *proxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("re-listening on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestIntegrationClickHouseOutage: ClickHouse unreachable for 30 s
// mid-stream (a TCP proxy between the sink and the real server is cut; the
// shared server itself keeps running) -> the sink retries with backoff,
// opens its breaker and pauses fetching, then catches up with nothing lost
// and nothing doubled in the answers.
func TestIntegrationClickHouseOutage(t *testing.T) {
	e := newEnv(t, topics.Vitals)
	e.BatchRows = 20_000
	px := newProxy(t, e.CHAddr)
	prod := e.producer(t)
	reg := prometheus.NewRegistry()
	stop := e.startSink(t, px.addr, reg)

	e.produceVitals(t, prod, 0, 50_000)
	e.waitCount(t, "SELECT count() FROM %s.vitals", 50_000, time.Minute)

	px.cut()
	cutAt := time.Now()
	// Keep producing through the outage.
	for i := 0; i < 10; i++ {
		e.produceVitals(t, prod, 50_000+i*10_000, 10_000)
		time.Sleep(2 * time.Second)
	}
	if n := e.count(t, "SELECT count() FROM %s.vitals"); n != 50_000 {
		t.Fatalf("rows changed during the outage: %d", n)
	}
	if v := gauge(t, reg, "wardstream_sink_breaker_open"); v != 1 {
		t.Fatalf("breaker_open = %v during the outage, want 1", v)
	}
	time.Sleep(time.Until(cutAt.Add(30 * time.Second)))
	px.restore(t)
	restored := time.Now()
	e.waitCount(t, "SELECT uniqExact(event_id) FROM %s.vitals", 150_000, time.Minute)
	t.Logf("caught up %d rows %v after ClickHouse came back", 100_000, time.Since(restored).Round(time.Millisecond))
	if got := e.count(t, "SELECT count() FROM %s.vitals FINAL"); got != 150_000 {
		t.Fatalf("count FINAL = %d, want 150000", got)
	}
	if v := gauge(t, reg, "wardstream_sink_breaker_open"); v != 0 {
		t.Fatalf("breaker_open = %v after recovery, want 0", v)
	}
	if err := stop(); err != nil {
		t.Fatalf("sink stop: %v", err)
	}
}

func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// labelled returns the counter name{label=value}, 0 when absent.
func labelled(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	v, _ := testutil.MetricValue(t, g, name, label, value)
	return v
}

// TestIntegrationThroughput measures the sink alone: 1M vitals records
// already in Kafka, one in-process sink, time and CPU until all are in
// ClickHouse. It reports rows/s and rows per CPU-second of this process
// (the sink's own cost; ClickHouse and Kafka run on the same machine).
func TestIntegrationThroughput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		topic   string
		per     int
		general bool
	}{
		{"single", topics.Vitals, 1, false},
		{"batch100", topics.VitalsBatches, 100, false},
		// The same batches without the fast path: the ratio to batch100,
		// measured minutes apart on the same machine, is the fast path's
		// gain (see fast.go).
		{"batch100_general_path", topics.VitalsBatches, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) { throughput(t, tc.topic, tc.per, tc.general) })
	}
}

// throughput: 1M vitals readings in per-reading records (per 1) or in
// VitalsBatch records of per readings.
func throughput(t *testing.T, topic string, per int, general bool) {
	const n = 1_000_000
	e := newEnv(t, topic)
	e.GeneralPath = general
	prod := e.producer(t)
	e.produceVitalsBatched(t, prod, 0, n, per)
	prod.Close()
	cpu0 := cpuTime()
	start := time.Now()
	peak := make(chan uint64)
	quit := make(chan struct{})
	go func() { // peak Go heap while the sink works through the backlog
		var ms goruntime.MemStats
		var max uint64
		for {
			select {
			case <-quit:
				peak <- max
				return
			case <-time.After(100 * time.Millisecond):
				goruntime.ReadMemStats(&ms)
				if ms.HeapInuse > max {
					max = ms.HeapInuse
				}
			}
		}
	}()
	if f := os.Getenv("WARDSTREAM_SINK_BENCH_CPUPROFILE"); f != "" {
		// The sink phase alone (the test's own producing is left out).
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); out.Close() }()
	}
	reg := prometheus.NewRegistry()
	stop := e.startSink(t, e.CHAddr, reg)
	for e.lag(t) > 0 {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("not done after 2 minutes: lag %d", e.lag(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall, cpu := time.Since(start), cpuTime()-cpu0
	close(quit)
	heap := <-peak
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := e.count(t, "SELECT uniqExact(event_id) FROM %s.vitals"); got != n {
		t.Fatalf("%d events, want %d", got, n)
	}
	// Every column of the vitals table is handed over in the native
	// layout with the pinned clickhouse-go (wire.go); a layout change
	// there would move them to the slower public Append, and fail here.
	direct, appended := labelled(t, reg, "wardstream_sink_columns_total", "path", "direct"), labelled(t, reg, "wardstream_sink_columns_total", "path", "append")
	if direct == 0 || appended != 0 {
		t.Errorf("columns handed over directly %v, through Append %v: want all direct", direct, appended)
	}
	path := "fast path"
	if general {
		path = "general path"
	}
	t.Logf("%s, %d readings per record, %s: sink throughput: %d rows in %v = %.0f rows/s; sink process CPU %v = %.0f rows per CPU-second; peak Go heap %d MiB (batch_rows %d, max_buffered_rows %d)",
		topic, per, path, n, wall.Round(time.Millisecond), n/wall.Seconds(), cpu.Round(time.Millisecond), n/cpu.Seconds(), heap>>20, e.BatchRows, 4*e.BatchRows)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIntegrationRebalance: replicas share the topics through the consumer
// group. A second sink joins mid-stream and the first leaves mid-stream;
// every event is in the answers exactly once.
func TestIntegrationRebalance(t *testing.T) {
	const n = 300_000
	e := newEnv(t, topics.Vitals)
	e.BatchRows = 20_000
	prod := e.producer(t)
	e.produceVitals(t, prod, 0, n)
	stopA := e.startSink(t, e.CHAddr, nil)
	for e.count(t, "SELECT count() FROM %s.vitals") < 60_000 {
		time.Sleep(20 * time.Millisecond)
	}
	stopB := e.startSink(t, e.CHAddr, nil)
	// Keep producing while the group rebalances.
	e.produceVitals(t, prod, n, 100_000)
	for e.count(t, "SELECT count() FROM %s.vitals") < 200_000 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := stopA(); err != nil {
		t.Fatalf("first sink: %v", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for e.lag(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("lag %d after 90s", e.lag(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stopB(); err != nil {
		t.Fatalf("second sink: %v", err)
	}
	if got := e.count(t, "SELECT uniqExact(event_id) FROM %s.vitals"); got != n+100_000 {
		t.Fatalf("uniqExact(event_id) = %d, want %d", got, n+100_000)
	}
	if got := e.count(t, "SELECT count() FROM %s.vitals FINAL"); got != n+100_000 {
		t.Fatalf("count FINAL = %d, want %d", got, n+100_000)
	}
}
