package clickhouse

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestReportedJSONNotSilentlyDropped: structJSON swallowed protojson's
// error, so a device status whose reported state holds one NaN/Inf number
// (valid on the protobuf wire, refused by protojson) landed with
// reported_json = "": every reported field dropped, silently (no dead
// letter, no error, no metric). It is now refused, so record() dead-letters
// it (reason convert, the error naming the field); shadows likewise.
func TestReportedJSONNotSilentlyDropped(t *testing.T) {
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
		// Refused: record() dead-letters it with this error.
		if !errors.Is(err, ErrUnconvertible) || !strings.Contains(err.Error(), "reported") {
			t.Fatalf("refused with %v, want an ErrUnconvertible naming the field", err)
		}
		if tb.rows != 0 || tb.cols[0].len() != 0 {
			t.Fatalf("refused after appending %d rows", tb.rows)
		}
		sh := &pb.DeviceShadow{Meta: &pb.Meta{EventId: "sh-1"}, DeviceId: "d1", Desired: m.Reported}
		for _, fn := range []mapper{mapShadow, mapShadowDesired} {
			if err := fn(sh, &recCtx{defaultTenant: "t"}, func() *rowWriter { t.Fatal("a row was emitted"); return nil }); !errors.Is(err, ErrUnconvertible) {
				t.Errorf("shadow with a NaN in its desired state: %v, want ErrUnconvertible", err)
			}
		}
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
