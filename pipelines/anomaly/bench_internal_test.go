package anomaly

import (
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// gokaContext is embedded (the methods codecCtx leaves out panic).
type gokaContext = goka.Context

// codecCtx is the part of goka.Context the anomaly callbacks use, doing
// what goka does per message: Value decodes the stored table value with
// the group's codec, SetValue and Emit encode with theirs.
type codecCtx struct {
	gokaContext
	key    string
	stored []byte
	emits  int
}

func (c *codecCtx) Key() string          { return c.key }
func (c *codecCtx) Topic() goka.Stream   { return "vitals" }
func (c *codecCtx) Partition() int32     { return 0 }
func (c *codecCtx) Offset() int64        { return 0 }
func (c *codecCtx) Timestamp() time.Time { return time.Time{} }
func (c *codecCtx) Value() any {
	if c.stored == nil {
		return nil
	}
	v, err := StateCodec{}.Decode(c.stored)
	if err != nil {
		panic(err)
	}
	return v
}
func (c *codecCtx) SetValue(v any, _ ...goka.ContextOption) {
	b, err := StateCodec{}.Encode(v)
	if err != nil {
		panic(err)
	}
	c.stored = b
}
func (c *codecCtx) Emit(topic goka.Stream, key string, v any, _ ...goka.ContextOption) {
	var err error
	switch m := v.(type) {
	case *pb.AnomalyScore:
		_, err = scoreCodec.Encode(m)
	case *pb.Alert:
		_, err = alertCodec.Encode(m)
	case *pb.DeadLetter:
		panic(fmt.Sprintf("dead letter: %s", m.GetReason()))
	}
	if err != nil {
		panic(err)
	}
	c.emits++
}

// BenchmarkOnVitals measures the anomaly group's callback per single
// vitals record as goka runs it, without Kafka: decode the record, decode
// the device's state, score, encode the score record and the state.
func BenchmarkOnVitals(b *testing.B) { benchOnVitals(b, false) }

// BenchmarkOnVitalsAfterEpisodes is BenchmarkOnVitals for a patient whose
// state remembers closed emergency and warning episodes.
func BenchmarkOnVitalsAfterEpisodes(b *testing.B) { benchOnVitals(b, true) }

func benchOnVitals(b *testing.B, episodes bool) {
	p, err := New(DefaultConfig(), WithClock(func() time.Time { return time.Unix(1_700_000_000, 0) }))
	if err != nil {
		b.Fatal(err)
	}
	readings := make([][]byte, 64)
	for i := range readings {
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("v", i), EventTimeMs: int64(i) * 1000}, DeviceId: "mon-1",
			PatientId: "p-1", Kind: "vitals", HeartRate: 60 + float64(i%50), SystolicBp: 110 + float64(i%40), Spo2: 93 + float64(i%6),
			Present: []string{"heart_rate", "systolic_bp", "spo2"}}
		readings[i], _ = codec.Marshal(v)
	}
	ctx := &codecCtx{key: "mon-1"}
	if episodes {
		for i, hr := range []float64{185, 80, 155, 80, 186, 80} {
			v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("e", i), EventTimeMs: int64(i-10) * 1000}, DeviceId: "mon-1",
				PatientId: "p-1", Kind: "vitals", HeartRate: hr, Present: []string{"heart_rate"}}
			raw, _ := codec.Marshal(v)
			p.onVitals(ctx, raw)
		}
		if st, _ := DecodeState(ctx.stored); len(st.Closed) != 2 {
			b.Fatalf("closed episodes %v", st.Closed)
		}
	}
	for i := range 200 { // past the baseline's warm-up
		p.onVitals(ctx, readings[i%len(readings)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.onVitals(ctx, readings[i%len(readings)])
	}
}
