package clickhouse

import (
	"bytes"
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

// TestHandoverMatchesPublicAPI: the direct hand-over (handover.go) puts the
// same bytes on the wire as clickhouse-go's Append, after rows appended
// either way, and it is in use for String, Float64 and Array(String) with
// the pinned clickhouse-go (a layout change fails here, not silently).
func TestHandoverMatchesPublicAPI(t *testing.T) {
	for _, c := range []struct {
		typ      string
		before   any
		v        any
		handover bool
	}{
		{"String", []string{"x"}, strColOf("", "tenant-1", "dev-1", "dev-1", "é"), true},
		{"Float64", []float64{1}, []float64{0, -0.5, 72, 1e300}, true},
		{"Array(String)", [][]string{{"a"}}, strsColOf([]string{"heartRate", "spo2"}, nil, []string{}, []string{"x"}, []string{"heartRate", "spo2", "temperature"}), true},
		{"LowCardinality(String)", []string{"x"}, strColOf("a", "b", "a"), false},
		{"Int32", []int32{1}, []int32{2, 3}, false},
		{"DateTime", []time.Time{time.UnixMilli(1_700_000_000_000)}, &msCol{ms: []int64{0, 999, 1_700_000_000_999, 1_796_147_664_336}}, true},
		{"DateTime64(3, 'UTC')", []time.Time{time.UnixMilli(1)}, &msCol{ms: []int64{1_700_000_000_999}}, false},
	} {
		t.Run(c.typ, func(t *testing.T) {
			mk := func() column.Interface {
				col, err := column.Type(c.typ).Column("c", &column.ServerContext{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := col.Append(c.before); err != nil {
					t.Fatal(err)
				}
				return col
			}
			direct, public := mk(), mk()
			var got bool
			if sc, ok := c.v.(*strCol); ok {
				got = handoverStr(sc, direct)
			} else if ac, ok := c.v.(*strsCol); ok {
				got = handoverStrs(ac, direct)
			} else if mc, ok := c.v.(*msCol); ok {
				got = handoverMs(mc, direct)
			} else {
				got = handover(c.v, direct)
			}
			if got != c.handover {
				t.Fatalf("handover took it: %v, want %v", got, c.handover)
			}
			if !c.handover {
				return
			}
			pv := c.v
			if sc, ok := pv.(*strCol); ok {
				pv = sc.strings()
			}
			if ac, ok := pv.(*strsCol); ok {
				pv = ac.lists()
			}
			if mc, ok := pv.(*msCol); ok {
				ts := make([]time.Time, len(mc.ms))
				for i, ms := range mc.ms {
					ts[i] = time.UnixMilli(ms).UTC()
				}
				pv = ts
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
		})
	}
}
