package clickhouse

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

func strColOf(vs ...string) *strCol {
	c := &strCol{}
	for _, v := range vs {
		c.add(v)
	}
	return c
}

func strsColOf(rows ...[]string) *strsCol {
	c := &strsCol{}
	for _, r := range rows {
		c.add(r)
	}
	return c
}

// TestWireMatchesPublicAPI: a column written from the sink's buffer in the
// native layout (wire.go) encodes to the same bytes as clickhouse-go's
// public Append of the same values, for every type the direct path takes;
// the others are refused (and take the public Append in send).
func TestWireMatchesPublicAPI(t *testing.T) {
	long := strings.Repeat("x", 300) // a two-byte length
	for _, c := range []struct {
		typ    string
		v      colBuf
		direct bool
	}{
		{"String", strColOf("", "tenant-1", "dev-1", "dev-1", "é", long), true},
		{"Float64", &typed[float64]{v: []float64{0, -0.5, 72, 1e300}}, true},
		{"Float32", &typed[float32]{v: []float32{0, -0.5, 72}}, true},
		{"Int64", &typed[int64]{v: []int64{0, -1, 1 << 40}}, true},
		{"Int32", &typed[int32]{v: []int32{2, -3}}, true},
		{"UInt64", &typed[uint64]{v: []uint64{2, 1 << 63}}, true},
		{"UInt8", &typed[uint8]{v: []uint8{0, 1, 255}}, true},
		{"Bool", &typed[uint8]{v: []uint8{0, 1}}, false}, // Bool columns take the public Append
		{"Array(String)", strsColOf([]string{"heartRate", "spo2"}, nil, []string{}, []string{"x", long}, []string{"heartRate", "spo2", "temperature"}), true},
		{"LowCardinality(String)", strColOf("a", "b", "a"), false},
		{"DateTime", &msCol{ms: []int64{0, 999, 1_700_000_000_999, 1_796_147_664_336}}, true},
		{"DateTime('UTC')", &msCol{ms: []int64{0, 1_700_000_000_999}}, true},
		{"DateTime64(3, 'UTC')", &msCol{ms: []int64{1, 1_700_000_000_999}}, true},
		{"DateTime64(6, 'UTC')", &msCol{ms: []int64{1}}, false},
		{"Array(Int32)", &typed[[]int32]{v: [][]int32{{1, 2}, nil}}, false},
		{"Date", &typed[time.Time]{v: []time.Time{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}}, false},
	} {
		t.Run(c.typ, func(t *testing.T) {
			mk := func() column.Interface {
				col, err := column.Type(c.typ).Column("c", &column.ServerContext{})
				if err != nil {
					t.Fatal(err)
				}
				return col
			}
			w, ok := c.v.(wireCol)
			got := ok && w.wire(column.Type(c.typ))
			if got != c.direct {
				t.Fatalf("direct: %v, want %v", got, c.direct)
			}
			if !c.direct {
				return
			}
			direct := &rawCol{Interface: mk(), src: w}
			public := mk()
			var pv any
			switch v := c.v.(type) {
			case *strCol:
				pv = v.strings()
			case *strsCol:
				pv = v.lists()
			case *msCol:
				ts := make([]time.Time, len(v.ms))
				for i, ms := range v.ms {
					ts[i] = time.UnixMilli(ms).UTC()
				}
				pv = ts
			case *typed[float64]:
				pv = v.v
			case *typed[float32]:
				pv = v.v
			case *typed[int64]:
				pv = v.v
			case *typed[int32]:
				pv = v.v
			case *typed[uint64]:
				pv = v.v
			case *typed[uint8]:
				pv = v.v
			}
			if _, err := public.Append(pv); err != nil {
				t.Fatal(err)
			}
			if direct.Rows() != public.Rows() {
				t.Fatalf("rows %d, public API %d", direct.Rows(), public.Rows())
			}
			var a, b proto.Buffer
			direct.Encode(&a)
			public.Encode(&b)
			if !bytes.Equal(a.Buf, b.Buf) {
				t.Errorf("encoded column differs:\n direct %x\n public %x", a.Buf, b.Buf)
			}
			direct.Reset()
			if direct.Rows() != 0 {
				t.Errorf("rows after Reset: %d", direct.Rows())
			}
		})
	}
}

// TestStrColRoundTrip: the values read back from the native layout are
// the values added (the public Append's input).
func TestStrColRoundTrip(t *testing.T) {
	vs := []string{"", "a", strings.Repeat("é", 100), "dev-1"}
	c := strColOf(vs...)
	if got := c.strings(); len(got) != len(vs) {
		t.Fatalf("%d values, want %d", len(got), len(vs))
	}
	for i, v := range vs {
		if c.at(i) != v || c.strings()[i] != v {
			t.Errorf("value %d: %q / %q, want %q", i, c.at(i), c.strings()[i], v)
		}
	}
	c.reset()
	if c.len() != 0 || len(c.strings()) != 0 {
		t.Errorf("after reset: %d rows", c.len())
	}
}
