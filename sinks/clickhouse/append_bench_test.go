package clickhouse

import (
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// BenchmarkAppendStringList compares ways of handing an Array(String)
// column of 100k rows (the vitals' present list) to clickhouse-go and
// encoding it for the wire: its Append, its AppendRow per row, and the
// sink's direct path (the sink's own buffering of the rows included).
func BenchmarkAppendStringList(b *testing.B) {
	list := []string{"heartRate", "systolicBp", "diastolicBp", "spo2", "temperature", "batteryLevel"}
	rows := make([][]string, 100_000)
	for i := range rows {
		rows[i] = list
	}
	sc := &strsCol{}
	var buf proto.Buffer
	for _, bc := range []struct {
		name string
		fn   func(c column.Interface) (column.Interface, error)
	}{
		{"append_all", func(c column.Interface) (column.Interface, error) { _, err := c.Append(rows); return c, err }},
		{"direct", func(c column.Interface) (column.Interface, error) {
			sc.reset() // kept across batches, as the sink's buffers
			for _, r := range rows {
				sc.add(r)
			}
			if !sc.wire(c.Type()) {
				b.Fatal("no direct path")
			}
			return &rawCol{Interface: c, src: sc}, nil
		}},
		{"append_row", func(c column.Interface) (column.Interface, error) {
			for _, r := range rows {
				if err := c.AppendRow(r); err != nil {
					return nil, err
				}
			}
			return c, nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := column.Type("Array(String)").Column("present", &column.ServerContext{})
				if err != nil {
					b.Fatal(err)
				}
				if c, err = bc.fn(c); err != nil {
					b.Fatal(err)
				}
				buf.Reset()
				c.Encode(&buf)
			}
		})
	}
}
