package bench_test

import (
	"testing"
	"time"

	"github.com/wardstream/wardstream/bench"
)

// BenchmarkSimulator measures the harness's own cost per reading: generate
// and encode (it must stay far below the path's cost per reading).
func BenchmarkSimulator(b *testing.B) {
	sc, err := bench.LoadScenario("scenarios/fleet.yaml")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	f, err := bench.NewFleet(sc, "run1", "t", start, start.Add(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name  string
		batch int
		enc   func([]bench.Reading)
	}{
		{"mqtt-single", 1, func(rs []bench.Reading) { _ = bench.EncodeMQTT("t", &rs[0]) }},
		{"mqtt-batch100", 100, func(rs []bench.Reading) { _ = bench.EncodeMQTTBatch("t", rs) }},
		{"kafka-single", 1, func(rs []bench.Reading) { _ = bench.EncodeKafka("t", &rs[0], start) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			g := f.NewTelemetry()
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				rs := g.Next(start, v.batch)
				v.enc(rs)
				n += len(rs)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
