package clickhouse

import (
	"encoding/binary"
	"reflect"
	"strings"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	chproto "github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// Handing a batch to clickhouse-go in ClickHouse's native layout.
//
// clickhouse-go's public Append copies a []string into the ch-go column
// beneath one value at a time, growing its buffers by a quarter at a time,
// and it takes an Array(String) column through reflection, boxing every
// element: a third of the sink's CPU in TestIntegrationThroughput when the
// sink used it. A first fix appended the sink's buffers to the ch-go
// columns directly; ch-go then encoded those columns once more on Send, so
// every string was still copied three times after decoding (into the
// sink's buffer, into ch-go's, into the connection's) and each length
// written again.
//
// The sink's buffers therefore hold each column in the native wire layout
// already: a String as uvarint length and bytes (the layout of a protobuf
// string field, too), numbers as little-endian values, an Array as its
// offsets and then its values. On Send, each of the batch's (still empty)
// columns that the sink's buffer can encode is replaced, in the batch's
// block, by a rawCol that writes the buffer in one copy. The block is
// clickhouse-go's unexported batch.block, found by reflection and checked
// by type; where it is not found (a clickhouse-go upgrade) or a type is not
// one written here (LowCardinality, Date, Array(Int32)), the public Append
// is used, and wardstream_sink_columns_total{path} says which ran.
// TestWireMatchesPublicAPI encodes every type both ways and compares the
// bytes.

// wireCol is a column buffer that can write itself in the native layout.
type wireCol interface {
	colBuf
	// wire reports whether the buffer can write a column of type t.
	wire(t column.Type) bool
	// encode appends the column's native bytes.
	encode(b *proto.Buffer)
}

// rawCol stands in for a batch's empty column: the name, type and state
// prefix are the column's; the rows and bytes are the sink's buffer's.
type rawCol struct {
	column.Interface
	src   wireCol
	reset bool
}

func (c *rawCol) Rows() int {
	if c.reset {
		return 0
	}
	return c.src.len()
}

func (c *rawCol) Encode(b *proto.Buffer) {
	if !c.reset {
		c.src.encode(b)
	}
}

func (c *rawCol) Reset() { c.Interface.Reset(); c.reset = true }

// WriteStatePrefix writes the column's own prefix (none for the types
// written here; kept so that the block encodes the same either way).
func (c *rawCol) WriteStatePrefix(b *proto.Buffer) error {
	if s, ok := c.Interface.(column.CustomSerialization); ok {
		return s.WriteStatePrefix(b)
	}
	return nil
}

// blockOf returns the block a batch from clickhouse-go's native
// connection appends to, or nil.
func blockOf(b driver.Batch) *chproto.Block {
	if p := field[*chproto.Block](b, "block"); p != nil {
		return *p
	}
	return nil
}

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

// littleEndian: numbers are written as their memory (ClickHouse's layout
// is little-endian; on a big-endian host the public Append is used).
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// appendStr appends v in the String layout.
func appendStr[S string | []byte](buf []byte, v S) []byte {
	if len(v) < 0x80 {
		buf = append(buf, byte(len(v)))
	} else {
		buf = binary.AppendUvarint(buf, uint64(len(v)))
	}
	return append(buf, v...)
}

// nextStr returns the String at the start of buf and the rest.
func nextStr(buf []byte) (string, []byte) {
	l, n := binary.Uvarint(buf)
	return string(buf[n : n+int(l)]), buf[n+int(l):]
}

func (c *strCol) wire(t column.Type) bool { return t == "String" }
func (c *strCol) len() int                { return c.n }
func (c *strCol) encode(b *proto.Buffer)  { b.Buf = append(b.Buf, c.buf...) }

func (c *strsCol) wire(t column.Type) bool { return t == "Array(String)" && littleEndian }
func (c *strsCol) len() int                { return len(c.rowEnd) }
func (c *strsCol) encode(b *proto.Buffer) {
	b.Buf = append(b.Buf, asBytes(c.rowEnd)...)
	c.vals.encode(b)
}

// wire also remembers which of DateTime and DateTime64(3) encode writes.
func (c *msCol) wire(t column.Type) bool {
	c.ms64 = strings.HasPrefix(string(t), "DateTime64(3,") || t == "DateTime64(3)"
	return littleEndian && (c.ms64 || t == "DateTime" || strings.HasPrefix(string(t), "DateTime("))
}
func (c *msCol) len() int { return len(c.ms) }

// encode writes DateTime as seconds (UInt32, as ch-go's ToDateTime, but
// clamped to the type's range rather than wrapped: clampDateTime) and
// DateTime64(3) as milliseconds (Int64), as the last wire call found.
func (c *msCol) encode(b *proto.Buffer) {
	if c.ms64 {
		b.Buf = append(b.Buf, asBytes(c.ms)...)
		return
	}
	for _, ms := range c.ms {
		b.Buf = binary.LittleEndian.AppendUint32(b.Buf, uint32(clampDateTime(ms)/1000))
	}
}

func (c *typed[T]) wire(t column.Type) bool {
	if !littleEndian {
		return false
	}
	var z T
	switch any(z).(type) {
	case float64:
		return t == "Float64"
	case float32:
		return t == "Float32"
	case int64:
		return t == "Int64"
	case int32:
		return t == "Int32"
	case uint64:
		return t == "UInt64"
	case uint8:
		return t == "UInt8" // a Bool column takes bool values: the public Append
	}
	return false
}
func (c *typed[T]) len() int { return len(c.v) }
func (c *typed[T]) encode(b *proto.Buffer) {
	b.Buf = append(b.Buf, asBytes(c.v)...)
}

// asBytes is the memory of a slice of fixed-size numbers.
func asBytes[E any](s []E) []byte {
	if len(s) == 0 {
		return nil
	}
	var z E
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}
