package clickhouse

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// genMeta returns a Meta with a random subset of its fields set, or nil.
func genMeta(r *rand.Rand, id string) *pb.Meta {
	if r.IntN(20) == 0 {
		return nil
	}
	m := &pb.Meta{}
	if r.IntN(4) != 0 {
		m.EventId = id
	}
	if r.IntN(3) != 0 {
		m.Tenant = []string{"h1", "Hospital-A", "ü"}[r.IntN(3)]
	}
	times := []int64{0, -1, -1_700_000_000_000, 1, 999, 1_700_000_000_123, math.MaxUint32*1000 + 999, math.MaxUint32*1000 + 1000, math.MaxInt64, math.MinInt64}
	if r.IntN(3) != 0 {
		m.EventTimeMs = times[r.IntN(len(times))]
	}
	if r.IntN(3) != 0 {
		m.IngestTimeMs = times[r.IntN(len(times))]
	}
	if r.IntN(2) == 0 {
		m.Source = "mqtt"
	}
	return m
}

func genFloat(r *rand.Rand) float64 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.Inf(1 - 2*r.IntN(2))
	case 3:
		return -r.Float64() * 100
	}
	return r.Float64() * 200
}

func genStr(r *rand.Rand) string {
	return []string{"", "a", "w1", "ward ß", string(make([]byte, 200))}[r.IntN(5)]
}

func genReading(r *rand.Rand, id string) *pb.VitalsTelemetry {
	v := &pb.VitalsTelemetry{Meta: genMeta(r, id)}
	for _, p := range []*string{&v.DeviceId, &v.DeviceType, &v.PatientId, &v.Kind, &v.AlertType, &v.Message, &v.Quality, &v.BatchId, &v.Ward} {
		if r.IntN(2) == 0 {
			*p = genStr(r)
		}
	}
	for _, p := range []*float64{&v.HeartRate, &v.SystolicBp, &v.DiastolicBp, &v.Spo2, &v.Temperature, &v.RespiratoryRate, &v.Glucose, &v.MedicationDose, &v.AdministrationRate, &v.BatteryLevel} {
		if r.IntN(2) == 0 {
			*p = genFloat(r)
		}
	}
	if r.IntN(2) == 0 {
		v.Severity = int32(r.IntN(21) - 10)
	}
	for range r.IntN(4) {
		v.Present = append(v.Present, genStr(r))
	}
	if r.IntN(10) == 0 {
		v.Extra = map[string]float64{"co2": genFloat(r)}
	}
	return v
}

func genScore(r *rand.Rand, id string) *pb.AnomalyScore {
	s := &pb.AnomalyScore{Meta: genMeta(r, id)}
	for _, p := range []*string{&s.DeviceId, &s.PatientId, &s.ReadingEventId, &s.Level, &s.Ward} {
		if r.IntN(2) == 0 {
			*p = genStr(r)
		}
	}
	for _, p := range []*float64{&s.Score, &s.RuleScore, &s.ZScore, &s.HeartRate, &s.SystolicBp, &s.Spo2} {
		if r.IntN(2) == 0 {
			*p = genFloat(r)
		}
	}
	for range r.IntN(4) {
		s.Reasons = append(s.Reasons, genStr(r))
	}
	return s
}

// TestFastPathMatchesGeneralGenerated: generated records of every fast
// topic, with random subsets of their fields (missing meta, missing event
// id, zero, negative and out-of-range times, signed zeros, infinities,
// empty and long strings, empty lists), give the same rows, and the same
// range-check verdict, on both paths whenever the fast path takes them.
func TestFastPathMatchesGeneralGenerated(t *testing.T) {
	fast, general := fastPair(t)
	r := rand.New(rand.NewPCG(1, 2))
	took := map[string]int{}
	for i := range 4000 {
		id := fmt.Sprint("e", i)
		var tp string
		var data []byte
		switch i % 4 {
		case 0:
			tp, data = topics.Vitals, mustMarshal(t, genReading(r, id))
		case 1:
			b := &pb.VitalsBatch{Meta: genMeta(r, "batch|"+id), DeviceId: genStr(r), BatchId: genStr(r)}
			for j := range r.IntN(4) {
				b.Readings = append(b.Readings, genReading(r, fmt.Sprint(id, "-", j)))
			}
			tp, data = topics.VitalsBatches, mustMarshal(t, b)
		case 2:
			tp, data = topics.AnomalyScores, mustMarshal(t, genScore(r, id))
		case 3:
			b := &pb.AnomalyScoreBatch{Meta: genMeta(r, "anomaly|"+id), DeviceId: genStr(r)}
			for j := range r.IntN(4) {
				b.Scores = append(b.Scores, genScore(r, fmt.Sprint(id, "-", j)))
			}
			tp, data = topics.ScoreBatches, mustMarshal(t, b)
		}
		if compareFast(t, fast, general, tp, data) {
			took[tp]++
			fe, ge := fast.routes[tp][0].tb.checkRange(0), general.routes[tp][0].tb.checkRange(0)
			if (fe == nil) != (ge == nil) {
				t.Fatalf("%s record %d: range check fast %v, general %v", tp, i, fe, ge)
			}
		}
	}
	for _, tp := range fastTopics {
		if took[tp] < 50 {
			t.Errorf("the fast path took only %d generated %s records", took[tp], tp)
		}
	}
	t.Log(took)
}
