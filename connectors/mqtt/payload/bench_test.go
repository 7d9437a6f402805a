package payload_test

import (
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"
	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/schemas/codec"
)

// BenchmarkDecode measures decoding plus protobuf encoding (what the
// connector does per message before producing), per publish; the batch
// case reports readings/s.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
		typ   payload.Type
	}{{"single", 0, payload.Telemetry}, {"batch100", 100, payload.Batch}} {
		b.Run(bc.name, func(b *testing.B) {
			sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", Batch: bc.batch, RunID: "bench"}
			topic, body := sim.Payload(1, 1, time.Now())
			src := payload.Source{Topic: topic, Tenant: "h1", DeviceType: "monitor", DeviceID: devicesim.DeviceID("", 1), Kind: "vitals"}
			if bc.batch > 0 {
				src = payload.Source{Topic: topic}
			}
			o := payload.Options{Tenant: "t", MaxBytes: 1 << 20, Now: time.Now()}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			n := 0
			for b.Loop() {
				outs := payload.Decode(bc.typ, src, body, o)
				for _, out := range outs {
					if out.Reason != "" {
						b.Fatalf("rejected: %v", out.Msg)
					}
					if _, err := codec.Marshal(out.Msg); err != nil {
						b.Fatal(err)
					}
				}
				n += len(outs)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
