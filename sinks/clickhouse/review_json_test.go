package clickhouse

import (
	"math"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestReviewReportedJSONNotSilentlyDropped: structJSON swallows protojson's
// error, so a device status whose reported state holds one NaN/Inf number
// (valid on the protobuf wire, refused by protojson) lands with
// reported_json = "": every reported field is dropped, silently (no dead
// letter, no error, no metric).
func TestReviewReportedJSONNotSilentlyDropped(t *testing.T) {
	s, _ := harness(t)
	tb := s.table(chschema.TDeviceStatus)
	if tb == nil {
		def, _ := chschema.LookupTable(chschema.TDeviceStatus)
		tb = newTableBuf("db", def)
	}
	m := &pb.DeviceStatus{Meta: &pb.Meta{EventId: "st-1"}, DeviceId: "d1", Reported: &structpb.Struct{Fields: map[string]*structpb.Value{
		"firmware": structpb.NewStringValue("1.2.3"),
		"temp_c":   structpb.NewNumberValue(math.NaN()),
	}}}
	err := mapStatus(m, &recCtx{defaultTenant: "t"}, func() *rowWriter { tb.rows++; return tb.emit() })
	if err != nil {
		t.Logf("refused (dead-lettered): %v", err)
		return
	}
	idx := -1
	for i, c := range tb.table.Columns {
		if c.Name == "reported_json" {
			idx = i
		}
	}
	if got := tb.cols[idx].(*strCol).at(0); got == "" {
		t.Fatalf("record converted with reported_json %q: the reported state %v was dropped silently", got, m.Reported.AsMap())
	}
}
