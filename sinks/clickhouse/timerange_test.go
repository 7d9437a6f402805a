package clickhouse

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestDateTimeOutOfRange: a compat-profile DateTime column holds
// 1970-01-01 .. 2106-02-07 as UInt32 seconds. The sink wrote
// uint32(seconds) of whatever it got, so a time before 1970 became a time
// in 2106 and one after 2106 a time decades in the past (another month
// partition: compat retention then drops it with that partition).
// Converted rows with such times are dead-lettered
// (TestDateOutOfRange); what is written without that
// check (a broken dead letter straight into dead_letters) is clamped, and
// must not wrap.
func TestDateTimeOutOfRange(t *testing.T) {
	for _, in := range []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		c := &msCol{ms: []int64{in.UnixMilli()}}
		if !c.wire(column.Type("DateTime('UTC')")) {
			t.Fatal("DateTime not on the direct path")
		}
		var b proto.Buffer
		c.encode(&b)
		got := time.Unix(int64(binary.LittleEndian.Uint32(b.Buf)), 0).UTC()
		if in.Year() < 1970 && got.Year() > 1970 || in.Year() > 2106 && got.Year() < 2106 {
			t.Errorf("%s written to DateTime as %s", in.Format(time.RFC3339), got.Format(time.RFC3339))
		}
	}
}

// TestDateOutOfRange: the same for Date columns (adherence.day and
// dose_outcomes.local_date, UInt16 days from 1970): clickhouse-go writes a
// date modulo 2^16 days, and the mappers accept any date time.Parse takes.
// The sink checks the range before the rows reach clickhouse-go: such a
// record is dead-lettered (reason time_out_of_range), as is a DateTime out
// of range, on the general and on the fast path; in-range dates at both
// ends pass.
func TestDateOutOfRange(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.DeadLetters, topics.Adherence, topics.DoseOutcomes, topics.Vitals))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := config.Default()
	cfg := DefaultConfig()
	cfg.Topics = []string{topics.Adherence, topics.DoseOutcomes, topics.Vitals, topics.DeadLetters}
	s, err := New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.cl, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer s.cl.Close()
	for _, tp := range cfg.Topics {
		s.assigned[partKey{tp, 0}] = true
	}
	adh := func(day string) *pb.AdherenceWindow {
		return &pb.AdherenceWindow{Meta: &pb.Meta{EventId: "a-" + day}, PatientId: "p", MedicationId: "m", Day: day}
	}
	late := time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	bad := []*kgo.Record{
		rec(t, topics.Adherence, 0, 1, adh("1969-12-31")),
		rec(t, topics.Adherence, 0, 2, adh("2200-01-01")),
		rec(t, topics.DoseOutcomes, 0, 1, &pb.DoseOutcome{Meta: &pb.Meta{EventId: "o"}, DoseId: "d", ScheduledTimeMs: 1_700_000_000_000, LocalDate: "1900-01-01"}),
		rec(t, topics.DoseOutcomes, 0, 2, &pb.DoseOutcome{Meta: &pb.Meta{EventId: "o2"}, DoseId: "d", ScheduledTimeMs: late}),
		rec(t, topics.Vitals, 0, 1, &pb.VitalsTelemetry{Meta: &pb.Meta{EventId: "v", EventTimeMs: late}, DeviceId: "d"}),
	}
	ctx := context.Background()
	for _, r := range bad {
		if err := s.recordLocked(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{chschema.TAdherence, chschema.TDoseOutcomes, chschema.TVitals} {
		tb := s.table(name)
		if tb.rows != 0 {
			t.Errorf("%s: %d rows from out-of-range records", name, tb.rows)
		}
		for i, col := range tb.cols {
			if col.len() != 0 {
				t.Errorf("%s column %s: %d values left after the record was refused", name, tb.table.Columns[i].Name, col.len())
			}
		}
	}
	if off, ok := s.commitPoint(partKey{topics.Adherence, 0}); !ok || off != 3 {
		t.Errorf("adherence commit point %d %v, want 3 (both records dead-lettered)", off, ok)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics.DeadLetters), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got []*pb.DeadLetter
	for len(got) < len(bad) && pctx.Err() == nil {
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			dl := &pb.DeadLetter{}
			if err := codec.Unmarshal(r.Value, dl); err != nil {
				t.Fatal(err)
			}
			got = append(got, dl)
		})
	}
	if len(got) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(got), len(bad))
	}
	for _, dl := range got {
		if dl.Reason != "time_out_of_range" {
			t.Errorf("%s@%d: reason %q (%s), want time_out_of_range", dl.SourceTopic, dl.SourceOffset, dl.Reason, dl.Error)
		}
	}
	// The ends of the ranges are fine.
	for i, r := range []*kgo.Record{rec(t, topics.Adherence, 0, 3, adh("1970-01-01")), rec(t, topics.Adherence, 0, 4, adh("2149-06-06"))} {
		if err := s.recordLocked(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n := s.table(chschema.TAdherence).rows; n != i+1 {
			t.Fatalf("adherence rows %d after %d in-range records", n, i+1)
		}
	}
}

// TestTruncate: a refused record's rows are cut from every column type.
func TestTruncate(t *testing.T) {
	def, _ := chschema.LookupTable(chschema.TSchedules)
	tb := newTableBuf("db", def)
	rc := &recCtx{defaultTenant: "t"}
	emit := func() *rowWriter { tb.rows++; return tb.emit() }
	for _, id := range []string{"a", "b"} {
		m := &pb.DoseSchedule{Meta: &pb.Meta{EventId: id}, PatientId: "p" + id, MedicationId: "m", Times: []string{"08:00", id}, DaysOfWeek: []int32{1}}
		if err := mapSchedule(m, rc, emit); err != nil {
			t.Fatal(err)
		}
	}
	tb.truncate(1)
	for i, c := range tb.cols {
		if c.len() != 1 {
			t.Fatalf("column %s: %d values after truncate(1)", tb.table.Columns[i].Name, c.len())
		}
	}
	m := &pb.DoseSchedule{Meta: &pb.Meta{EventId: "c"}, PatientId: "pc", MedicationId: "m", Times: []string{"09:00"}}
	if err := mapSchedule(m, rc, emit); err != nil {
		t.Fatal(err)
	}
	for i, col := range tb.table.Columns {
		switch c := tb.cols[i].(type) {
		case *strCol:
			if col.Name == "patient_id" && (c.at(0) != "pa" || c.at(1) != "pc") {
				t.Fatalf("patient_id %q %q", c.at(0), c.at(1))
			}
		case *strsCol:
			if l := c.lists(); len(l) != 2 || len(l[0]) != 2 || l[0][1] != "a" || len(l[1]) != 1 || l[1][0] != "09:00" {
				t.Fatalf("%s: %q", col.Name, l)
			}
		}
	}
}
