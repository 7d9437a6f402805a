package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

func TestConfig(t *testing.T) {
	cases := []struct {
		name, yaml string
		errs       []string
	}{
		{"defaults", ``, nil},
		{"tuned", "batch_rows: 5000\nbatch_age: 250ms\nmax_buffered_rows: 20000\ntopics: [wardstream.vitals]\n", nil},
		{"bad values", "batch_rows: 0\nbatch_age: 0s\nbreaker_failures: 0\ntopics: [nope]\nsession_timeout: 1s\n",
			[]string{"sinks.clickhouse.batch_rows", "sinks.clickhouse.batch_age", "sinks.clickhouse.breaker_failures", "sinks.clickhouse.topics[0]", "sinks.clickhouse.session_timeout"}},
		{"buffer below batch", "batch_rows: 1000\nmax_buffered_rows: 10\n", []string{"sinks.clickhouse.max_buffered_rows"}},
		{"unknown key", "batch_size: 3\n", []string{"unknown field batch_size"}},
		{"bi user", "bi_users: [{name: bi}]\n", []string{"sinks.clickhouse.bi_users[0]"}},
		{"table batch age", "table_batch_age: {dead_letters: 5s, vitals: 250ms}\n", nil},
		{"table batch age bad", "table_batch_age: {dead_letter: 5s, alerts: 0s}\n",
			[]string{"sinks.clickhouse.table_batch_age.dead_letter", "sinks.clickhouse.table_batch_age.alerts: must be > 0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := config.Default()
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte("clickhouse:\n"+indent(c.yaml)), &doc); err != nil {
				t.Fatal(err)
			}
			if c.yaml != "" {
				root.Sinks.ClickHouse = *doc.Content[0].Content[1]
			}
			_, err := Load(&root)
			if len(c.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", c.errs)
			}
			for _, e := range c.errs {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q lacks %q", err, e)
				}
			}
		})
	}
}

func indent(s string) string {
	if s == "" {
		return "  {}\n"
	}
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// TestEveryTopicRouted: every catalog topic has a table and its mapper
// matches the table's columns (New checks each mapper against the schema).
func TestEveryTopicRouted(t *testing.T) {
	root := config.Default()
	s, err := New(&root, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KafkaTopics()) != len(topics.All()) {
		t.Fatalf("%d topics consumed, catalog has %d", len(s.KafkaTopics()), len(topics.All()))
	}
	written := map[string]bool{}
	for _, tb := range s.tables {
		written[tb.table.Name] = true
		if !strings.HasPrefix(tb.insert, "INSERT INTO wardstream."+tb.table.Name+" (tenant, event_id, event_time, ingest_time, source, ") {
			t.Errorf("insert without explicit column list: %s", tb.insert)
		}
	}
	for _, tb := range chschema.Tables() {
		if !written[tb.Name] {
			t.Errorf("table %s is written by no topic", tb.Name)
		}
	}
}

// harness is a sink with a kfake Kafka client, no ClickHouse.
func harness(t *testing.T) (*Sink, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.DeadLetters, topics.Vitals, topics.Detections, topics.Schedules))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	root := config.Default()
	cfg := DefaultConfig()
	cfg.Topics = []string{topics.Vitals, topics.Detections, topics.Schedules, topics.DeadLetters}
	s, err := New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.cl, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.cl.Close)
	for _, tp := range cfg.Topics {
		for p := int32(0); p < 3; p++ {
			s.assigned[partKey{tp, p}] = true
		}
	}
	return s, c
}

func rec(t *testing.T, topic string, part int32, off int64, m proto.Message) *kgo.Record {
	t.Helper()
	var v []byte
	if m != nil {
		var err error
		if v, err = codec.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	return &kgo.Record{Topic: topic, Partition: part, Offset: off, Value: v, Key: []byte("k"), Timestamp: time.UnixMilli(1_700_000_000_000)}
}

// recordLocked is record as the loop calls it, with s.mu held (a dead
// letter's produce releases it).
func (s *Sink) recordLocked(ctx context.Context, r *kgo.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.record(ctx, r)
}

func (s *Sink) table(name string) *tableBuf {
	for _, tb := range s.tables {
		if tb.table.Name == name {
			return tb
		}
	}
	return nil
}

// TestRecordsToRowsAndCommitPoints follows records of one partition into
// two tables and checks where the partition may be committed as batches
// are acknowledged in a different order.
func TestRecordsToRowsAndCommitPoints(t *testing.T) {
	s, _ := harness(t)
	ctx := context.Background()
	frame := &pb.FrameDetections{Meta: &pb.Meta{EventId: "f1", Tenant: "h"}, CameraId: "cam", Detections: []*pb.Detection{{ClassName: "person"}, {ClassName: "bed"}}}
	steps := []*kgo.Record{
		rec(t, topics.Vitals, 0, 10, vitalsMsg("v1")),
		rec(t, topics.Detections, 0, 5, frame),
		rec(t, topics.Vitals, 0, 11, vitalsMsg("v2")),
		rec(t, topics.Schedules, 1, 7, nil), // tombstone: no row
	}
	for _, r := range steps {
		if err := s.record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	vit, frames, dets := s.table(chschema.TVitals), s.table(chschema.TFrames), s.table(chschema.TDetections)
	if vit.rows != 2 || frames.rows != 1 || dets.rows != 2 || s.buffered != 5 {
		t.Fatalf("rows vitals %d frames %d detections %d buffered %d", vit.rows, frames.rows, dets.rows, s.buffered)
	}
	for _, tb := range []*tableBuf{vit, frames, dets} {
		n := tb.cols[0].len()
		for i, c := range tb.cols {
			if l := c.len(); l != n || l != tb.rows {
				t.Fatalf("%s column %d has %d values, want %d", tb.table.Name, i, l, tb.rows)
			}
		}
	}
	if c := vit.cols[1].(*strCol); c.at(0) != "v1" || c.at(1) != "v2" {
		t.Fatalf("event ids %v", c.strings())
	}
	if got := vit.cols[0].(*strCol).at(0); got != "default" {
		t.Fatalf("tenant fallback = %q, want the topology tenant", got)
	}
	pv, pd, ps := partKey{topics.Vitals, 0}, partKey{topics.Detections, 0}, partKey{topics.Schedules, 1}
	check := func(pk partKey, want int64) {
		t.Helper()
		if got, _ := s.commitPoint(pk); got != want {
			t.Fatalf("commit point %v = %d, want %d", pk, got, want)
		}
	}
	check(pv, 10)
	check(pd, 5)
	check(ps, 8) // nothing pending: after the tombstone
	// The frames batch is acknowledged, detections not yet: still 5.
	frames.reset()
	check(pd, 5)
	dets.reset()
	check(pd, 6)
	// Re-delivered records (offset below next) are skipped.
	if err := s.record(ctx, rec(t, topics.Vitals, 0, 10, vitalsMsg("v1"))); err != nil {
		t.Fatal(err)
	}
	if vit.rows != 2 {
		t.Fatalf("re-delivered record added a row")
	}
	// Revoked partitions' records are ignored.
	delete(s.assigned, partKey{topics.Vitals, 2})
	if err := s.record(ctx, rec(t, topics.Vitals, 2, 0, vitalsMsg("v9"))); err != nil || vit.rows != 2 {
		t.Fatalf("record of a revoked partition was converted (err %v)", err)
	}
	// Dropping everything (failed flush on revoke) rewinds to the commit point.
	s.dropAll()
	if s.rewind[pv] != 10 || s.buffered != 0 || vit.rows != 0 {
		t.Fatalf("rewind %v buffered %d", s.rewind, s.buffered)
	}
}

func vitalsMsg(id string) *pb.VitalsTelemetry {
	return &pb.VitalsTelemetry{Meta: &pb.Meta{EventId: id, EventTimeMs: 1_700_000_000_123}, DeviceId: "d", HeartRate: 70, Extra: map[string]float64{"b": 2, "a": 1}}
}

// TestDeadLetters: undecodable and unconvertible records go to the
// dead-letter topic with the reason; a broken dead letter is written to
// the dead_letters table directly.
func TestDeadLetters(t *testing.T) {
	s, c := harness(t)
	ctx := context.Background()
	cases := []struct {
		r      *kgo.Record
		reason string
	}{
		{&kgo.Record{Topic: topics.Vitals, Partition: 1, Offset: 3, Key: []byte("dev"), Value: []byte{0xff, 0xff, 0xff}}, "decode"},
		{rec(t, topics.Vitals, 1, 4, &pb.VitalsTelemetry{DeviceId: "no-event-id"}), "convert"},
		{rec(t, topics.Schedules, 0, 1, &pb.DoseSchedule{Meta: &pb.Meta{EventId: "s"}}), "convert"},
	}
	for _, tc := range cases {
		if err := s.recordLocked(ctx, tc.r); err != nil {
			t.Fatal(err)
		}
	}
	if s.table(chschema.TVitals).rows != 0 || s.table(chschema.TSchedules).rows != 0 {
		t.Fatal("a bad record produced rows")
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics.DeadLetters), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []*pb.DeadLetter
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for len(got) < len(cases) && pctx.Err() == nil {
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			dl := &pb.DeadLetter{}
			if err := codec.Unmarshal(r.Value, dl); err != nil {
				t.Fatal(err)
			}
			got = append(got, dl)
		})
	}
	if len(got) != len(cases) {
		t.Fatalf("%d dead letters, want %d", len(got), len(cases))
	}
	seen := map[int64]string{}
	for _, dl := range got {
		seen[dl.SourceOffset] = dl.Reason
		if dl.Stage != "sink" || dl.Error == "" || dl.Meta.GetEventId() == "" {
			t.Errorf("dead letter lacks stage/error/id: %v", dl)
		}
	}
	for _, tc := range cases {
		if seen[tc.r.Offset] != tc.reason {
			t.Errorf("offset %d: reason %q, want %q", tc.r.Offset, seen[tc.r.Offset], tc.reason)
		}
	}
	// A dead letter that cannot be decoded: straight into dead_letters.
	if err := s.recordLocked(ctx, &kgo.Record{Topic: topics.DeadLetters, Partition: 0, Offset: 9, Value: []byte{0xff}}); err != nil {
		t.Fatal(err)
	}
	if n := s.table(chschema.TDeadLetters).rows; n != 1 {
		t.Fatalf("dead_letters rows = %d, want 1", n)
	}
}

func TestBreaker(t *testing.T) {
	b := breaker{base: 100 * time.Millisecond, max: time.Second, cooldown: 3 * time.Second, threshold: 3}
	w1 := b.failure()
	w2 := b.failure()
	if b.open() || w1 < 50*time.Millisecond || w1 > 100*time.Millisecond || w2 < 100*time.Millisecond || w2 > 200*time.Millisecond {
		t.Fatalf("backoff %v %v open %v", w1, w2, b.open())
	}
	if w := b.failure(); !b.open() || w != 3*time.Second {
		t.Fatalf("third failure: wait %v open %v", w, b.open())
	}
	b.success()
	if b.open() {
		t.Fatal("breaker open after success")
	}
	b = breaker{base: time.Second, max: 2 * time.Second, cooldown: time.Second, threshold: 100}
	for i := 0; i < 70; i++ {
		if w := b.failure(); w > 2*time.Second || w <= 0 {
			t.Fatalf("failure %d: wait %v beyond max", i, w)
		}
	}
}

// FuzzConvert feeds arbitrary bytes as the value of every catalog topic:
// conversion never panics, and either adds whole rows (every column the
// same length) or rejects the record.
func FuzzConvert(f *testing.F) {
	v, _ := codec.Marshal(vitalsMsg("x"))
	f.Add(uint8(0), v)
	f.Add(uint8(3), []byte{0x0a, 0x02, 0x12, 0x00})
	f.Add(uint8(7), []byte{})
	f.Add(uint8(9), []byte{0xff})
	root := config.Default()
	all := topics.All()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		s, err := New(&root, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		tp := all[int(which)%len(all)]
		msg := tp.New()
		if err := codec.Unmarshal(data, msg); err != nil {
			return // would be dead-lettered as "decode"
		}
		rc := recCtx{defaultTenant: "t", recordMs: 1}
		for _, rt := range s.routes[tp.Name] {
			tb := rt.tb
			before := tb.rows
			err := rt.fn(msg, &rc, func() *rowWriter { tb.rows++; return tb.emit() })
			if err != nil {
				if tb.rows != before {
					t.Fatalf("%s: mapper emitted rows and then failed", tp.Name)
				}
				continue
			}
			if tb.w.err != nil {
				t.Fatalf("%s: %v", tp.Name, tb.w.err)
			}
			for i, c := range tb.cols {
				if l := c.len(); l != tb.rows {
					t.Fatalf("%s.%s has %d values for %d rows", tb.table.Name, tb.table.Columns[i].Name, l, tb.rows)
				}
			}
		}
	})
}

// BenchmarkConvertVitals is the sink's per-record hot path: decode a vitals
// record (one reading, or a batch of 100) and append it to the columnar
// batch, on the fast path and on the general one.
func BenchmarkConvertVitals(b *testing.B) {
	for _, per := range []int{1, 100} {
		for _, general := range []bool{false, true} {
			b.Run(fmt.Sprintf("readings=%d/general=%v", per, general), func(b *testing.B) { benchConvert(b, per, general) })
		}
	}
}

func benchConvert(b *testing.B, per int, general bool) {
	root := config.Default()
	cfg := DefaultConfig()
	tp := topics.Vitals
	if per > 1 {
		tp = topics.VitalsBatches
	}
	cfg.Topics = []string{tp}
	cfg.DisableFastPath = general
	s, err := New(&root, cfg)
	if err != nil {
		b.Fatal(err)
	}
	s.assigned[partKey{tp, 0}] = true
	var v []byte
	batch := &pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|b"}, DeviceId: "d", BatchId: "b"}
	for i := 0; i < per; i++ {
		m := vitalsMsg(fmt.Sprintf("ev-%09d", i))
		m.Present = []string{"heartRate", "spo2"}
		m.Extra = nil
		batch.Readings = append(batch.Readings, m)
		v, _ = codec.Marshal(m)
	}
	if per > 1 {
		v, _ = codec.Marshal(batch)
	}
	r := &kgo.Record{Topic: tp, Value: v, Timestamp: time.Now()}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for i := 0; b.Loop(); i++ {
		r.Offset = int64(i)
		if err := s.record(ctx, r); err != nil {
			b.Fatal(err)
		}
		if s.table(chschema.TVitals).rows >= 100_000 {
			s.table(chschema.TVitals).reset()
			s.buffered = 0
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "rows/s")
}

// TestTopologySection: the sinks.clickhouse sample in the default topology
// decodes and validates.
func TestTopologySection(t *testing.T) {
	root, err := config.Load("../../deploy/local/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BatchRows != 100_000 || cfg.BatchAge.D() != 500*time.Millisecond || cfg.TableBatchAge[chschema.TDeadLetters].D() != 5*time.Second || cfg.Group != topics.GroupSink {
		t.Fatalf("unexpected sample values: %+v", cfg)
	}
}

// TestToken: a retried batch has the same token, a different batch with
// the same first offsets and row count has another.
func TestToken(t *testing.T) {
	def, _ := chschema.LookupTable(chschema.TVitals)
	a, b := newTableBuf("db", def), newTableBuf("db", def)
	p0, p1 := partKey{"t", 0}, partKey{"t", 1}
	a.mark(p0, 10)
	a.mark(p0, 20)
	a.mark(p1, 5)
	a.mark(p1, 15)
	b.mark(p0, 10)
	b.mark(p0, 25)
	b.mark(p1, 5)
	b.mark(p1, 10)
	a.rows, b.rows = 22, 22
	if r := a.offs[p0]; r.first != 10 || r.last != 20 {
		t.Fatalf("marked offsets %+v, want 10-20", *r)
	}
	if a.token() == b.token() {
		t.Fatal("different batches share a dedup token")
	}
	if a.token() != a.token() {
		t.Fatal("token not stable")
	}
}

// TestRevokeWhileClickHouseDown: a rebalance while ClickHouse is
// unreachable drops the batches uncommitted, forgets the revoked partition,
// and rewinds the kept one to its commit point.
func TestRevokeWhileClickHouseDown(t *testing.T) {
	s, _ := harness(t)
	s.cfg.RevokeFlushTimeout = config.Duration(2 * time.Second)
	s.cfg.InsertTimeout = config.Duration(time.Second)
	down := config.Default().ClickHouse
	down.Addr = []string{"127.0.0.1:1"} // nothing listens there
	down.DialTimeout = config.Duration(200 * time.Millisecond)
	conn, err := Open(down, "none")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.conn = conn
	ctx := context.Background()
	for i, r := range []*kgo.Record{
		rec(t, topics.Vitals, 0, 40, vitalsMsg("a")), rec(t, topics.Vitals, 0, 41, vitalsMsg("b")),
		rec(t, topics.Vitals, 1, 7, vitalsMsg("c")),
	} {
		if err := s.record(ctx, r); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	s.onRevoked(ctx, s.cl, map[string][]int32{topics.Vitals: {1}})
	p0, p1 := partKey{topics.Vitals, 0}, partKey{topics.Vitals, 1}
	if s.assigned[p1] || !s.assigned[p0] {
		t.Fatalf("assigned after revoke: %v", s.assigned)
	}
	if s.buffered != 0 || s.table(chschema.TVitals).rows != 0 {
		t.Fatalf("batches not dropped: buffered %d", s.buffered)
	}
	if off, ok := s.rewind[p0]; !ok || off != 40 {
		t.Fatalf("rewind %v, want %v at 40", s.rewind, p0)
	}
	if _, ok := s.rewind[p1]; ok {
		t.Fatal("revoked partition scheduled for rewind")
	}
	// The next poll applies the rewind and skips that partition's records.
	if err := s.process(ctx, kgo.Fetches{}); err != nil {
		t.Fatal(err)
	}
	if len(s.rewind) != 0 || s.pos[p0] == nil || s.pos[p0].next != 40 {
		t.Fatalf("after process: rewind %v pos %+v", s.rewind, s.pos[p0])
	}
}

// TestBatchesMapLikeSingles: a vitals batch (and a score batch) becomes
// exactly the rows its readings (scores) would as single records, and a
// batch with one unconvertible reading is rejected whole, before any row.
func TestBatchesMapLikeSingles(t *testing.T) {
	ctx := context.Background()
	newSink := func(tps ...string) *Sink {
		root := config.Default()
		cfg := DefaultConfig()
		cfg.Topics = tps
		s, err := New(&root, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range tps {
			s.assigned[partKey{tp, 0}] = true
		}
		return s
	}
	readings := []*pb.VitalsTelemetry{vitalsMsg("r1"), vitalsMsg("r2"), {Meta: &pb.Meta{EventId: "r3", Tenant: "h2"}, DeviceId: "d", Spo2: 91, Present: []string{"spo2"}, BatchId: "b1"}}
	scores := []*pb.AnomalyScore{{Meta: &pb.Meta{EventId: "anomaly|r1"}, DeviceId: "d", Score: 2, Reasons: []string{"hr"}}, {Meta: &pb.Meta{EventId: "anomaly|r2"}, DeviceId: "d", Score: 9}}
	single := newSink(topics.Vitals, topics.AnomalyScores)
	for i, r := range readings {
		if err := single.record(ctx, rec(t, topics.Vitals, 0, int64(i), r)); err != nil {
			t.Fatal(err)
		}
	}
	for i, sc := range scores {
		if err := single.record(ctx, rec(t, topics.AnomalyScores, 0, int64(i), sc)); err != nil {
			t.Fatal(err)
		}
	}
	batched := newSink(topics.VitalsBatches, topics.ScoreBatches)
	if err := batched.record(ctx, rec(t, topics.VitalsBatches, 0, 0, &pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|b1"}, DeviceId: "d", BatchId: "b1", Readings: readings})); err != nil {
		t.Fatal(err)
	}
	if err := batched.record(ctx, rec(t, topics.ScoreBatches, 0, 0, &pb.AnomalyScoreBatch{Meta: &pb.Meta{EventId: "anomaly|batch|b1"}, DeviceId: "d", Scores: scores})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		table string
		rows  int
	}{{chschema.TVitals, len(readings)}, {chschema.TAnomalyScores, len(scores)}} {
		a, b := single.table(tc.table), batched.table(tc.table)
		if a.rows != tc.rows || b.rows != tc.rows {
			t.Fatalf("%s: %d rows from single records, %d from a batch, want %d", tc.table, a.rows, b.rows, tc.rows)
		}
		for i := range a.cols {
			if !reflect.DeepEqual(a.cols[i], b.cols[i]) {
				t.Errorf("%s column %s differs: single %v, batch %v", tc.table, a.table.Columns[i].Name, a.cols[i], b.cols[i])
			}
		}
	}
	bad := &pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|b2"}, BatchId: "b2", Readings: []*pb.VitalsTelemetry{vitalsMsg("ok"), {DeviceId: "no-event-id"}}}
	tb := batched.table(chschema.TVitals)
	before := tb.rows
	err := mapVitalsBatch(bad, &recCtx{defaultTenant: "t"}, func() *rowWriter { tb.rows++; return tb.emit() })
	if !errors.Is(err, ErrUnconvertible) || tb.rows != before {
		t.Fatalf("bad batch: err %v, rows %d -> %d; want ErrUnconvertible and no rows", err, before, tb.rows)
	}
}

// recordingConn is a ClickHouse connection that records each insert's row
// count (unit tests of the batching; the integration tests insert into the
// real server). While hold is set, Send waits for a value on it (or the
// insert's context); while failing, Send fails.
type recordingConn struct {
	driver.Conn
	mu       sync.Mutex
	inserts  []int
	attempts int
	hold     chan struct{}
	failing  bool
}

func (c *recordingConn) PrepareBatch(ctx context.Context, _ string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	return &recordingBatch{c: c, ctx: ctx}, nil
}

func (c *recordingConn) got() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.inserts...)
}

type recordingBatch struct {
	driver.Batch
	c    *recordingConn
	ctx  context.Context
	rows int
}

func (b *recordingBatch) Column(i int) driver.BatchColumn { return recordingColumn{b, i} }
func (b *recordingBatch) Send() error {
	b.c.mu.Lock()
	b.c.attempts++
	hold, failing := b.c.hold, b.c.failing
	b.c.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
	if failing {
		return errors.New("clickhouse is down")
	}
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	b.c.inserts = append(b.c.inserts, b.rows)
	return nil
}
func (b *recordingBatch) Close() error                { return nil }
func (b *recordingBatch) Columns() []column.Interface { return nil }

type recordingColumn struct {
	b *recordingBatch
	i int
}

func (c recordingColumn) Append(v any) error {
	if c.i == 0 {
		c.b.rows = reflect.ValueOf(v).Len()
	}
	return nil
}
func (c recordingColumn) AppendRow(any) error { return nil }

// TestPollOfBatchesKeepsBounds: one poll of vitals batch records holds 20x
// batch_rows rows; the sink flushes within the poll, so no insert exceeds
// batch_rows by more than one record's rows and the buffered rows never
// exceed max_buffered_rows by more than that either.
func TestPollOfBatchesKeepsBounds(t *testing.T) {
	for _, serial := range []bool{false, true} {
		t.Run(fmt.Sprint("serial=", serial), func(t *testing.T) { pollOfBatches(t, serial) })
	}
}

func pollOfBatches(t *testing.T, serial bool) {
	root := config.Default()
	cfg := DefaultConfig()
	cfg.Topics = []string{topics.VitalsBatches}
	cfg.BatchRows, cfg.MaxBufferedRows = 250, 1000
	cfg.SerialInserts = serial
	s, err := New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := &recordingConn{}
	s.conn = conn
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.VitalsBatches))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s.cl, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...)); err != nil {
		t.Fatal(err)
	}
	defer s.cl.Close()
	s.assigned[partKey{topics.VitalsBatches, 0}] = true
	var recs []*kgo.Record
	maxBuffered := 0
	for i := 0; i < 50; i++ {
		b := &pb.VitalsBatch{Meta: &pb.Meta{EventId: fmt.Sprint("batch|", i)}, DeviceId: "d", BatchId: fmt.Sprint(i)}
		for j := 0; j < 100; j++ {
			b.Readings = append(b.Readings, vitalsMsg(fmt.Sprint(i, "-", j)))
		}
		recs = append(recs, rec(t, topics.VitalsBatches, 0, int64(i), b))
	}
	fetches := kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topics.VitalsBatches, Partitions: []kgo.FetchPartition{{Partition: 0, Records: recs}}}}}}
	s.mu.Lock()
	err = s.process(context.Background(), fetches)
	maxBuffered = max(maxBuffered, s.buffered)
	if serial && s.flying != 0 {
		t.Errorf("serial_inserts: %d inserts in the air after the poll", s.flying)
	}
	if err == nil {
		err = s.waitFor(context.Background(), func() bool { return s.flying == 0 })
	}
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	inserts := conn.got()
	for _, n := range inserts {
		if n > cfg.BatchRows+100 {
			t.Errorf("an insert of %d rows (batch_rows %d, 100 rows per record)", n, cfg.BatchRows)
		}
		total += n
	}
	if len(inserts) == 0 || total+s.buffered != 5000 || maxBuffered > cfg.MaxBufferedRows+100 {
		t.Fatalf("inserts %v + %d buffered, want 5000 rows in inserts of about %d", inserts, s.buffered, cfg.BatchRows)
	}
}

// TestFlights follows a table's batches through pipelined inserts: the
// commit point holds at a batch in the air while the next one fills, moves
// when it lands, and a batch whose flight dies (ClickHouse down until the
// revoke bound) is dropped and re-read from its first offset; while the
// breaker is open only one flight at a time probes.
func TestFlights(t *testing.T) {
	s, _ := harness(t)
	s.cfg.RetryBackoff, s.cfg.RetryBackoffMax = config.Duration(time.Millisecond), config.Duration(5*time.Millisecond)
	s.brk = breaker{base: time.Millisecond, max: 5 * time.Millisecond, cooldown: 20 * time.Millisecond, threshold: 3}
	conn := &recordingConn{hold: make(chan struct{})}
	s.conn = conn
	ctx := context.Background()
	pv := partKey{topics.Vitals, 0}
	vit := s.table(chschema.TVitals)
	point := func() int64 {
		t.Helper()
		off, ok := s.commitPoint(pv)
		if !ok {
			t.Fatal("no commit point")
		}
		return off
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, off := range []int64{10, 11} {
		if err := s.record(ctx, rec(t, topics.Vitals, 0, off, vitalsMsg(fmt.Sprint("v", off)))); err != nil {
			t.Fatal(err)
		}
	}
	s.launch(vit)
	if vit.rows != 0 || vit.fl == nil || vit.fl.b.rows != 2 || s.buffered != 2 {
		t.Fatalf("after launch: filling %d rows, flight %v, buffered %d", vit.rows, vit.fl, s.buffered)
	}
	if err := s.record(ctx, rec(t, topics.Vitals, 0, 12, vitalsMsg("v12"))); err != nil {
		t.Fatal(err)
	}
	if got := point(); got != 10 {
		t.Fatalf("commit point %d with offsets 10-11 in the air, want 10", got)
	}
	if c := vit.cols[1].(*strCol); vit.rows != 1 || c.at(0) != "v12" {
		t.Fatalf("filling batch %d rows %v, want v12 alone", vit.rows, c.strings())
	}
	// Not due: the landing leaves the next batch filling.
	s.cfg.BatchAge = config.Duration(time.Hour)
	s.mu.Unlock() // the flight takes it
	conn.hold <- struct{}{}
	s.mu.Lock()
	if err := s.waitFor(ctx, func() bool { return s.flying == 0 }); err != nil {
		t.Fatal(err)
	}
	if got := point(); got != 12 || vit.fl != nil || vit.spare == nil || s.buffered != 1 {
		t.Fatalf("after landing: commit point %d (want 12), flight %v, buffered %d", got, vit.fl, s.buffered)
	}
	if got := conn.got(); !reflect.DeepEqual(got, []int{2}) {
		t.Fatalf("inserts %v, want [2]", got)
	}

	// ClickHouse down: the flight retries until the revoke bound ends,
	// dies, and dropAll rewinds to its first offset.
	conn.mu.Lock()
	conn.hold, conn.failing = nil, true
	conn.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := s.settle(rctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("settle with clickhouse down = %v, want the deadline", err)
	}
	s.abort()
	if vit.fl == nil || !vit.fl.dead || s.flying != 0 || point() != 12 {
		t.Fatalf("after abort: flight %v flying %d commit point %d", vit.fl, s.flying, point())
	}
	conn.mu.Lock()
	attempts := conn.attempts
	conn.mu.Unlock()
	// 300 ms at 20 ms per probe once the breaker opened: about 15, never
	// one per millisecond backoff.
	if attempts < 4 || attempts > 25 {
		t.Errorf("%d attempts in 300 ms with a 20 ms breaker cooldown", attempts)
	}
	if !s.brk.open() {
		t.Errorf("breaker closed after %d failures", s.brk.failures)
	}
	s.dropAll()
	if s.rewind[pv] != 12 || s.buffered != 0 || vit.fl != nil || vit.rows != 0 {
		t.Fatalf("after dropAll: rewind %v buffered %d flight %v rows %d", s.rewind, s.buffered, vit.fl, vit.rows)
	}
}

func TestTableBatchAge(t *testing.T) {
	s, _ := harness(t)
	s.cfg.BatchAge = config.Duration(time.Second)
	s.cfg.TableBatchAge = map[string]config.Duration{chschema.TDeadLetters: config.Duration(5 * time.Second)}
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		table string
		rows  int
		after time.Duration
		want  bool
	}{
		{chschema.TVitals, 3, 999 * time.Millisecond, false},
		{chschema.TVitals, 3, time.Second, true},
		{chschema.TDeadLetters, 3, time.Second, false},
		{chschema.TDeadLetters, 3, 4999 * time.Millisecond, false},
		{chschema.TDeadLetters, 3, 5 * time.Second, true},
		{chschema.TDeadLetters, 0, time.Minute, false},
		{chschema.TDeadLetters, 100_000, 0, true}, // full: batch_rows holds for every table
	} {
		tb := &tableBuf{table: chschema.Table{Name: tc.table}, rows: tc.rows, since: t0}
		if got := s.due(tb, t0.Add(tc.after)); got != tc.want {
			t.Errorf("%s with %d rows after %v: due %v, want %v", tc.table, tc.rows, tc.after, got, tc.want)
		}
	}
}
