package codec

import (
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func batchOf(n int) *pb.VitalsBatch {
	b := &pb.VitalsBatch{Meta: &pb.Meta{Tenant: "h1", EventId: "batch|b1", EventTimeMs: 5, Source: "mqtt"}, DeviceId: "mon-1", BatchId: "b1"}
	for i := 0; i < n; i++ {
		b.Readings = append(b.Readings, &pb.VitalsTelemetry{
			Meta:     &pb.Meta{Tenant: "h1", EventId: "r" + string(rune('a'+i%26)), EventTimeMs: int64(1000 + i), IngestTimeMs: 2000, Source: "mqtt"},
			DeviceId: "mon-1", DeviceType: "vitals_monitor", PatientId: "p-1", Kind: "vitals", HeartRate: 70 + float64(i), SystolicBp: 120, Spo2: 97,
			BatteryLevel: 80, Severity: int32(i%3) - 1, Ward: "w1", BatchId: "b1", Present: []string{"heart_rate", "systolic_bp", "spo2"},
		})
	}
	b.Readings[n-1].Present = []string{"spo2"}
	b.Readings[0].Temperature = math.Inf(1)
	return b
}

func vitalsSeeds(t testing.TB) map[string][]byte {
	full, _ := proto.Marshal(batchOf(5))
	unknown := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), full...), 50, protowire.VarintType), 1)
	extra := batchOf(2)
	extra.Readings[1].Extra = map[string]float64{"co2": 1}
	withExtra, _ := proto.Marshal(extra)
	twoMetas := protowire.AppendTag(append([]byte(nil), full...), 1, protowire.BytesType)
	m2, _ := proto.Marshal(&pb.Meta{Source: "again", IngestTimeMs: 9})
	twoMetas = protowire.AppendBytes(twoMetas, m2)
	empty, _ := proto.Marshal(&pb.VitalsBatch{})
	noMeta, _ := proto.Marshal(&pb.VitalsBatch{Readings: []*pb.VitalsTelemetry{{DeviceId: "d"}}})
	return map[string][]byte{"full": full, "unknown": unknown, "extra": withExtra, "two metas": twoMetas, "empty": empty, "reading without meta": noMeta,
		"truncated": full[:len(full)-3], "garbage": {0xff, 0xff}}
}

// TestUnmarshalVitalsBatch: the result equals proto.Unmarshal's, and the
// ordinary batches take the fast path (it is not falling back on them).
func TestUnmarshalVitalsBatch(t *testing.T) {
	fast := map[string]bool{"full": true, "two metas": true, "empty": true, "reading without meta": true}
	for name, data := range vitalsSeeds(t) {
		t.Run(name, func(t *testing.T) {
			var want pb.VitalsBatch
			werr := proto.Unmarshal(data, &want)
			var got pb.VitalsBatch
			err := UnmarshalVitalsBatch(data, &got)
			if (err != nil) != (werr != nil) || (err == nil && !proto.Equal(&got, &want)) {
				t.Fatalf("got %v, %v; proto.Unmarshal %v, %v", &got, err, &want, werr)
			}
			var probe pb.VitalsBatch
			if took := fastVitalsBatch(data, &probe); took != fast[name] {
				t.Fatalf("fast path took it: %v, want %v", took, fast[name])
			}
		})
	}
	// Shared present lists cannot be written through.
	data, _ := proto.Marshal(batchOf(3))
	var b pb.VitalsBatch
	if err := UnmarshalVitalsBatch(data, &b); err != nil {
		t.Fatal(err)
	}
	b.Readings[0].Present = append(b.Readings[0].Present, "x")
	if len(b.Readings[1].Present) != 3 || b.Readings[1].Present[0] != "heart_rate" {
		t.Fatalf("appending to one reading's list changed another's: %q", b.Readings[1].Present)
	}
}

// FuzzUnmarshalVitals: single readings, the same property.
func FuzzUnmarshalVitals(f *testing.F) {
	full, _ := proto.Marshal(batchOf(1).Readings[0])
	for _, r := range batchOf(3).Readings {
		data, _ := proto.Marshal(r)
		f.Add(data)
	}
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want pb.VitalsTelemetry
		gerr := UnmarshalVitals(data, &got)
		werr := proto.Unmarshal(data, &want)
		if (gerr != nil) != (werr != nil) || (gerr == nil && !proto.Equal(&got, &want)) {
			t.Fatalf("UnmarshalVitals %v, %v\nproto %v, %v", &got, gerr, &want, werr)
		}
		// Into a reading and Meta reused from a full earlier record (as
		// the anomaly group does): nothing of the earlier one remains.
		var reused pb.VitalsTelemetry
		var m pb.Meta
		if err := UnmarshalVitalsMeta(full, &reused, &m); err != nil {
			t.Fatal(err)
		}
		rerr := UnmarshalVitalsMeta(data, &reused, &m)
		if (rerr != nil) != (werr != nil) || (rerr == nil && !proto.Equal(&reused, &want)) {
			t.Fatalf("UnmarshalVitalsMeta after a full record %v, %v\nproto %v, %v", &reused, rerr, &want, werr)
		}
	})
}

// FuzzUnmarshalVitalsBatch: on any bytes, the fast path either declines or
// gives exactly proto.Unmarshal's message.
func FuzzUnmarshalVitalsBatch(f *testing.F) {
	for _, data := range vitalsSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got pb.VitalsBatch
		if !fastVitalsBatch(data, &got) {
			return
		}
		var want pb.VitalsBatch
		if err := proto.Unmarshal(data, &want); err != nil {
			t.Fatalf("the fast path took bytes proto rejects: %v", err)
		}
		if !proto.Equal(&got, &want) {
			t.Fatalf("fast %v\nproto %v", &got, &want)
		}
	})
}

func BenchmarkUnmarshalVitalsBatch(b *testing.B) {
	data, _ := proto.Marshal(batchOf(100))
	for _, fast := range []bool{true, false} {
		name := "proto"
		if fast {
			name = "fast"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var m pb.VitalsBatch
				var err error
				if fast {
					err = UnmarshalVitalsBatch(data, &m)
				} else {
					err = proto.Unmarshal(data, &m)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnmarshalVitals: single readings from 500 devices in turn, as
// the anomaly group decodes them.
func BenchmarkUnmarshalVitals(b *testing.B) {
	recs := make([][]byte, 500)
	for i := range recs {
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "bench", EventId: fmt.Sprint("v", i), EventTimeMs: int64(i) * 1000, Source: "medical/ward-1/monitor/vitals"},
			DeviceId: fmt.Sprintf("mon-%d", i), PatientId: fmt.Sprintf("p-%d", i), Kind: "vitals", Ward: "ward-1", HeartRate: 72, Spo2: 97,
			Present: []string{"heart_rate", "spo2"}}
		recs[i], _ = proto.Marshal(v)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var v pb.VitalsTelemetry
		if err := UnmarshalVitals(recs[i%len(recs)], &v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
