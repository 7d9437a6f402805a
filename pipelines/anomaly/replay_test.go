package anomaly_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/lovoo/goka"

	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestReplayedReadingsLearnedOnce: goka delivers at least once, so after a
// crash the readings since the last committed offset come again to a
// table that already learned them. The baseline must learn each reading
// once: the replay leaves it as it was.
func TestReplayedReadingsLearnedOnce(t *testing.T) {
	h := newHarness(t)
	table := goka.GroupTable(goka.Group(h.cfg.Group))
	hr := func(i int) float64 { return 60 + float64(i%7) }
	for i := range 30 {
		h.vitals(fmt.Sprint("r", i), int64(i+1)*60_000, "mon-1", "p1", hr(i))
	}
	before := *h.tt.TableValue(table, "mon-1").(*anomaly.State).Patients["p1"]
	for i := 20; i < 30; i++ {
		h.vitals(fmt.Sprint("r", i), int64(i+1)*60_000, "mon-1", "p1", hr(i))
	}
	after := *h.tt.TableValue(table, "mon-1").(*anomaly.State).Patients["p1"]
	if after.N != before.N || after.Mean != before.Mean || after.Var != before.Var {
		t.Fatalf("a replay changed the baseline:\n before %+v\n after  %+v", before, after)
	}
}

// TestStateFormatV4: a state written before baselines kept their newest
// reading (format 4) still decodes, and the next reading is learned.
func TestStateFormatV4(t *testing.T) {
	v4 := []byte{4, 2, 't', '1', 1, 2, 'p', '1'}
	for m, mv := range [3][2]float64{{62, 4}, {0, 0}, {0, 0}} {
		v4 = binary.AppendUvarint(v4, uint64(30*(1-min(m, 1))))
		v4 = binary.LittleEndian.AppendUint64(v4, math.Float64bits(mv[0]))
		v4 = binary.LittleEndian.AppendUint64(v4, math.Float64bits(mv[1]))
	}
	v4 = append(v4, 0) // no episodes
	st, err := anomaly.DecodeState(v4)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Patients["p1"]; b == nil || b.N[anomaly.HR] != 30 || b.Mean[anomaly.HR] != 62 || b.Last != 0 {
		t.Fatalf("format 4 baseline: %+v", st.Patients)
	}
	h := newHarness(t)
	table := goka.GroupTable(goka.Group(h.cfg.Group))
	h.tt.SetTableValue(table, "mon-1", st)
	h.vitals("r1", 60_000, "mon-1", "p1", 64)
	if b := h.tt.TableValue(table, "mon-1").(*anomaly.State).Patients["p1"]; b.N[anomaly.HR] != 31 || b.Last != 60_000 {
		t.Fatalf("after a reading: %+v", b)
	}
}

// TestReplayOpensNoPhantomEpisode: a reading older than the newest that
// judged a condition (a redelivery after a restart, a buffered reading
// flushed late) does not open an episode the newer reading already found
// over: replaying the readings 3 and 4 of an emergency that opened at 2
// and ended at 4 opened a second alert at 3, and a late abnormal reading
// opened one that stayed open until the device's next reading.
func TestReplayOpensNoPhantomEpisode(t *testing.T) {
	t.Run("vitals replay", func(t *testing.T) {
		h := newHarness(t)
		h.vitals("r1", 60_000, "mon-1", "p1", 80)
		h.vitals("r2", 120_000, "mon-1", "p1", 185)
		h.vitals("r3", 180_000, "mon-1", "p1", 186)
		h.vitals("r4", 240_000, "mon-1", "p1", 80)
		want := "[OPEN:VITALS_EMERGENCY|patient|p1|120000 RESOLVED:VITALS_EMERGENCY|patient|p1|120000]"
		if got := fmt.Sprint(alertStrings(h)); got != want {
			t.Fatalf("first delivery: %s, want %s", got, want)
		}
		h.vitals("r3", 180_000, "mon-1", "p1", 186)
		h.vitals("r4", 240_000, "mon-1", "p1", 80)
		if got := alertStrings(h); len(got) != 0 {
			t.Fatalf("replay raised %v", got)
		}
	})
	t.Run("late abnormal reading", func(t *testing.T) {
		h := newHarness(t)
		h.vitals("r1", 60_000, "mon-1", "p1", 80)
		h.vitals("r3", 180_000, "mon-1", "p1", 80)
		h.vitals("r2", 120_000, "mon-1", "p1", 185)
		alertStrings(h)
		st := h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), "mon-1").(*anomaly.State)
		if len(st.Episodes) != 0 {
			t.Fatalf("a late reading left episodes open: %+v", st.Episodes)
		}
	})
	t.Run("status replay", func(t *testing.T) {
		h := newHarness(t)
		status := func(id string, ev int64, online bool) {
			b, _ := codec.Marshal(&pb.DeviceStatus{Meta: &pb.Meta{EventId: id, EventTimeMs: ev}, DeviceId: "mon-1", Online: online})
			h.tt.Consume(h.cfg.Topics.DeviceStatus, "mon-1", b)
		}
		status("s1", 60_000, false)
		status("s2", 120_000, false)
		status("s3", 180_000, true)
		want := "[OPEN:DEVICE_OFFLINE|device|mon-1|60000 RESOLVED:DEVICE_OFFLINE|device|mon-1|60000]"
		if got := fmt.Sprint(alertStrings(h)); got != want {
			t.Fatalf("first delivery: %s, want %s", got, want)
		}
		status("s2", 120_000, false)
		status("s3", 180_000, true)
		if got := alertStrings(h); len(got) != 0 {
			t.Fatalf("replay raised %v", got)
		}
	})
}

// TestBatchReadingOfAnotherDeviceDeadLettered: a batch is handled as its
// readings one by one, and a single reading of another device than its
// key is refused (bad_key): so is such a reading in a batch, instead of
// being learned into this device's state and raising alerts for the
// other device from it.
func TestBatchReadingOfAnotherDeviceDeadLettered(t *testing.T) {
	h := newHarness(t)
	r := func(id, dev string, hr float64) *pb.VitalsTelemetry {
		return &pb.VitalsTelemetry{Meta: &pb.Meta{EventId: id, EventTimeMs: 60_000}, DeviceId: dev, PatientId: "p1", HeartRate: hr, Present: []string{"heart_rate"}}
	}
	b, _ := codec.Marshal(&pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|1"}, DeviceId: "mon-1", BatchId: "1",
		Readings: []*pb.VitalsTelemetry{r("a", "mon-1", 80), r("b", "mon-2", 190)}})
	h.tt.Consume(h.cfg.Topics.VitalsBatches, "mon-1", b)
	_, v, ok := h.dlq.Next()
	if !ok || v.(*pb.DeadLetter).Reason != "bad_key" || v.(*pb.DeadLetter).Meta.EventId != h.cfg.Topics.VitalsBatches+"/0/0#1" {
		t.Fatalf("dead letter %v", v)
	}
	if got := alertStrings(h); len(got) != 0 {
		t.Fatalf("alerts from another device's reading: %v", got)
	}
	if n := h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), "mon-1").(*anomaly.State).Patients["p1"].N[anomaly.HR]; n != 1 {
		t.Fatalf("baseline learned %d readings, want 1", n)
	}
}
