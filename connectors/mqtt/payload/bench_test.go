package payload_test

import (
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"
	"github.com/wardstream/wardstream/connectors/mqtt/payload"
)

// BenchmarkDecode measures decoding plus protobuf encoding (what the
// connector does per message before producing), per publish; the batch
// cases report readings/s, with the batch encoder and without it.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name    string
		batch   int
		typ     payload.Type
		general bool
	}{{"single", 0, payload.Telemetry, false}, {"batch100", 100, payload.Batch, false}, {"batch100_general", 100, payload.Batch, true}} {
		b.Run(bc.name, func(b *testing.B) {
			sim := devicesim.Options{Tenant: "h1", DeviceType: "monitor", Batch: bc.batch, RunID: "bench"}
			topic, body := sim.Payload(1, 1, time.Now())
			src := payload.Source{Topic: topic, Tenant: "h1", DeviceType: "monitor", DeviceID: devicesim.DeviceID("", 1), Kind: "vitals"}
			if bc.batch > 0 {
				src = payload.Source{Topic: topic}
			}
			// BatchRecords as the connector's default; general: without
			// the batch encoder.
			o := payload.Options{Tenant: "t", MaxBytes: 1 << 20, Now: time.Now(), BatchRecords: true}
			if bc.general {
				o = payload.GeneralPath(o)
			}
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
					v, err := out.Encoded()
					if err != nil {
						b.Fatal(err)
					}
					if bc.batch > 0 {
						n += bc.batch
					} else {
						n++
					}
					_ = v
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
