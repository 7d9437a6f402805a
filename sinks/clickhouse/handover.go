package clickhouse

import (
	"reflect"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// Handing a batch's columns to clickhouse-go. Its public Append copies a
// []string into the ch-go column beneath one value at a time, growing the
// buffers by a quarter at a time (for a 100k-row batch, about five times
// the final size is allocated and copied), and it takes an Array(String)
// column (the vitals' present list) through reflection, boxing every
// element: together a third of the sink's CPU in TestIntegrationThroughput.
//
// For String, Array(String) and Float64 columns the sink therefore reaches
// the ch-go column inside clickhouse-go's (the unexported field col, found
// by reflection and checked by type), reserves the capacity, and appends
// the values (for an array, the flat values and the offsets) directly. A
// String column is buffered in ch-go's layout already (strCol: one byte
// buffer and end offsets), so its hand-over is a copy. The
// bytes sent are the same; TestHandoverMatchesPublicAPI encodes both ways
// and compares, and fails if the pinned clickhouse-go no longer takes the
// direct hand-over. With another layout (a clickhouse-go upgrade, or
// LowCardinality columns) the lookup finds nothing and the public Append
// is used.

// field returns a pointer to the unexported field name of type T in the
// struct p points to, or nil.
func field[T any](p any, name string) *T {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeFor[T]() {
		return nil
	}
	return (*T)(unsafe.Pointer(f.UnsafeAddr()))
}

// handover appends v to col directly (see above); false: not handled,
// nothing appended.
func handover(v any, col column.Interface) bool {
	switch v := v.(type) {
	case []float64:
		f, ok := col.(*column.Float64)
		if !ok {
			return false
		}
		cf := field[proto.ColFloat64](f, "col")
		if cf == nil {
			return false
		}
		*cf = append(*cf, v...)
		return true
	}
	return false
}

// handoverStr appends a strCol to col's ch-go column: the bytes in one
// copy, the positions shifted by what the column held; false: not handled.
func handoverStr(c *strCol, col column.Interface) bool {
	s, ok := col.(*column.String)
	if !ok {
		return false
	}
	cs := field[proto.ColStr](s, "col")
	if cs == nil {
		return false
	}
	return appendStrCol(cs, c)
}

// appendStrCol appends c to cs: the bytes in one copy, the positions
// shifted by what cs held.
func appendStrCol(cs *proto.ColStr, c *strCol) bool {
	base := len(cs.Buf)
	cs.Buf = append(growBy(cs.Buf, len(c.buf)), c.buf...)
	cs.Pos = growBy(cs.Pos, len(c.end))
	start := base
	for _, e := range c.end {
		cs.Pos = append(cs.Pos, proto.Position{Start: start, End: base + e})
		start = base + e
	}
	return true
}

// handoverMs appends an msCol to col's ch-go DateTime column (seconds,
// as ch-go's ToDateTime of the same instant); false: not handled (a
// DateTime64 column of the modern profile takes the public Append).
func handoverMs(c *msCol, col column.Interface) bool {
	d, ok := col.(*column.DateTime)
	if !ok {
		return false
	}
	cd := field[proto.ColDateTime](d, "col")
	if cd == nil {
		return false
	}
	cd.Data = growBy(cd.Data, len(c.ms))
	for _, ms := range c.ms {
		cd.Data = append(cd.Data, proto.ToDateTime(time.UnixMilli(ms)))
	}
	return true
}

// handoverStrs appends a strsCol to col's ch-go columns (the flat values
// and the offsets); false: not handled.
func handoverStrs(c *strsCol, col column.Interface) bool {
	a, ok := col.(*column.Array)
	if !ok {
		return false
	}
	cs, offs := arrayOfStr(a)
	if cs == nil {
		return false
	}
	var last uint64
	if n := len(*offs); n > 0 {
		last = (*offs)[n-1]
	}
	*offs = growBy(*offs, len(c.rowEnd))
	for _, e := range c.rowEnd {
		*offs = append(*offs, last+uint64(e))
	}
	return appendStrCol(cs, &c.vals)
}

// arrayOfStr returns the values and offsets columns of a one-level
// Array(String), or nils.
func arrayOfStr(a *column.Array) (*proto.ColStr, *proto.ColUInt64) {
	if d := field[int](a, "depth"); d == nil || *d != 1 {
		return nil, nil
	}
	s, ok := a.Base().(*column.String)
	if !ok {
		return nil, nil
	}
	cs := field[proto.ColStr](s, "col")
	v := reflect.ValueOf(a).Elem().FieldByName("offsets")
	if cs == nil || !v.IsValid() || v.Kind() != reflect.Slice || v.Len() != 1 || v.Index(0).Kind() != reflect.Pointer || v.Index(0).IsNil() {
		return nil, nil
	}
	off := (*column.UInt64)(nil)
	if f := v.Index(0).Elem().FieldByName("values"); f.IsValid() && f.Type() == reflect.TypeFor[column.UInt64]() {
		off = (*column.UInt64)(unsafe.Pointer(f.UnsafeAddr()))
	}
	if off == nil {
		return nil, nil
	}
	co := field[proto.ColUInt64](off, "col")
	if co == nil {
		return nil, nil
	}
	return cs, co
}

// growBy makes room for n more elements, exactly: call it once per
// hand-over, not per value.
func growBy[E any](s []E, n int) []E {
	if cap(s)-len(s) >= n {
		return s
	}
	g := make([]E, len(s), len(s)+n)
	copy(g, s)
	return g
}
