package clickhouse

import (
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

var fastTopics = []string{topics.Vitals, topics.VitalsBatches, topics.AnomalyScores, topics.ScoreBatches}

// fastPair is a sink with the fast path and one without, on the fast topics.
func fastPair(t testing.TB) (fast, general *Sink) {
	root := config.Default()
	cfg := DefaultConfig()
	cfg.Topics = fastTopics
	fast, err := New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DisableFastPath = true
	general, err = New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fast, general
}

func fullReading(id string) *pb.VitalsTelemetry {
	return &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "h1", EventId: id, EventTimeMs: 1_700_000_000_123, IngestTimeMs: 1_700_000_001_000, Source: "mqtt"},
		DeviceId: "mon-1", DeviceType: "vitals_monitor", PatientId: "p-1", Kind: "vitals", HeartRate: 71, SystolicBp: 121, DiastolicBp: 79, Spo2: 97,
		Temperature: 36.9, RespiratoryRate: 14, Glucose: 5.5, MedicationDose: 1, AdministrationRate: 2, BatteryLevel: 88, Severity: -3, AlertType: "x",
		Message: "m", Quality: "good", BatchId: "b1", Ward: "w1", Present: []string{"heart_rate", "spo2"}}
}

func fullScore(id string) *pb.AnomalyScore {
	return &pb.AnomalyScore{Meta: &pb.Meta{Tenant: "h1", EventId: "anomaly|" + id, EventTimeMs: 1_700_000_000_123, Source: "processors"},
		DeviceId: "mon-1", PatientId: "p-1", ReadingEventId: id, Score: 6.5, RuleScore: 4, ZScore: math.NaN(), Reasons: []string{"hr", "spo2"},
		Level: "WARNING", HeartRate: 130, SystolicBp: 150, Spo2: 91, Ward: "w1"}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	b, err := codec.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fastSeeds are well-formed records of the fast topics, including the
// wire-format corners the fast path must get right.
func fastSeeds(t testing.TB) [][2]any {
	r1, r2 := fullReading("r1"), fullReading("r2")
	r2.Present = []string{"heart_rate", "spo2"} // same list: shared
	sparse := &pb.VitalsTelemetry{Meta: &pb.Meta{EventId: "r3"}, Spo2: 91}
	withExtra := fullReading("r4")
	withExtra.Extra = map[string]float64{"co2": 4}
	v1 := mustMarshal(t, r1)
	// An unknown field, and the meta field twice (merged: the tenant from
	// the first, the source from the second).
	odd := protowire.AppendTag(append([]byte(nil), v1...), 99, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 5)
	odd = protowire.AppendTag(odd, 1, protowire.BytesType)
	odd = protowire.AppendBytes(odd, mustMarshal(t, &pb.Meta{Source: "second"}))
	// A known field with the wrong wire type (proto keeps it as unknown).
	wrongType := protowire.AppendTag(append([]byte(nil), v1...), 6, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 1)
	badUTF8 := protowire.AppendTag(append([]byte(nil), v1...), 2, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff, 0xfe})
	return [][2]any{
		{uint8(0), v1}, {uint8(0), mustMarshal(t, sparse)}, {uint8(0), mustMarshal(t, withExtra)}, {uint8(0), odd}, {uint8(0), wrongType}, {uint8(0), badUTF8},
		{uint8(0), mustMarshal(t, &pb.VitalsTelemetry{DeviceId: "no-meta"})},
		{uint8(1), mustMarshal(t, &pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|b1"}, DeviceId: "mon-1", BatchId: "b1", Readings: []*pb.VitalsTelemetry{r1, r2, sparse}})},
		{uint8(1), mustMarshal(t, &pb.VitalsBatch{Meta: &pb.Meta{EventId: "batch|b2"}, Readings: []*pb.VitalsTelemetry{r1, {DeviceId: "no-id"}}})},
		{uint8(2), mustMarshal(t, fullScore("r1"))},
		{uint8(2), mustMarshal(t, &pb.AnomalyScore{Meta: &pb.Meta{EventId: "a"}})},
		{uint8(3), mustMarshal(t, &pb.AnomalyScoreBatch{Meta: &pb.Meta{EventId: "anomaly|batch|b1"}, DeviceId: "mon-1", Scores: []*pb.AnomalyScore{fullScore("r1"), fullScore("r2")}})},
	}
}

// compareFast maps data on topic tp through both paths; if the fast path
// takes it, the general path must take it too and give the same rows.
// It reports whether the fast path took it.
func compareFast(t *testing.T, fast, general *Sink, tp string, data []byte) bool {
	t.Helper()
	ft, gt := fast.routes[tp][0], general.routes[tp][0]
	ft.tb.reset()
	gt.tb.reset()
	rc := recCtx{defaultTenant: "t", recordMs: 1_700_000_009_000}
	ok := ft.fast(ft.fd, data, &rc)
	if !ok {
		if ft.tb.rows != 0 {
			t.Fatalf("%s: the fast path declined after appending %d rows", tp, ft.tb.rows)
		}
		return false
	}
	tpc, _ := topics.Lookup(tp)
	msg := tpc.New()
	if err := codec.Unmarshal(data, msg); err != nil {
		t.Fatalf("%s: the fast path took a record proto rejects: %v", tp, err)
	}
	if err := gt.fn(msg, &rc, func() *rowWriter { gt.tb.rows++; return gt.tb.emit() }); err != nil {
		t.Fatalf("%s: the fast path took a record the general path rejects: %v", tp, err)
	}
	if ft.tb.rows != gt.tb.rows {
		t.Fatalf("%s: %d rows on the fast path, %d on the general one", tp, ft.tb.rows, gt.tb.rows)
	}
	for i := range ft.tb.cols {
		// %v: NaN prints alike on both sides, where DeepEqual would differ.
		if a, b := fmt.Sprintf("%v", ft.tb.cols[i]), fmt.Sprintf("%v", gt.tb.cols[i]); a != b {
			t.Fatalf("%s column %s: fast %s, general %s", tp, ft.tb.table.Columns[i].Name, a, b)
		}
	}
	return true
}

// TestFastPathMatchesGeneral: the seeds give the same rows on both paths,
// and the fast path takes the ordinary ones (it is not declining
// everything) and declines what it must.
func TestFastPathMatchesGeneral(t *testing.T) {
	fast, general := fastPair(t)
	want := []bool{true, true, false, true, false, false, false, true, false, true, true, true}
	for i, sd := range fastSeeds(t) {
		tp := fastTopics[int(sd[0].(uint8))%len(fastTopics)]
		t.Run(fmt.Sprint(i, "-", tp), func(t *testing.T) {
			if got := compareFast(t, fast, general, tp, sd[1].([]byte)); got != want[i] {
				t.Fatalf("fast path took it: %v, want %v", got, want[i])
			}
		})
	}
}

// FuzzFastPathMatchesProto: on any bytes, the fast path either declines
// before appending anything, or gives exactly the general path's rows.
func FuzzFastPathMatchesProto(f *testing.F) {
	for _, sd := range fastSeeds(f) {
		f.Add(sd[0].(uint8), sd[1].([]byte))
	}
	fast, general := fastPair(f)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		compareFast(t, fast, general, fastTopics[int(which)%len(fastTopics)], data)
	})
}
