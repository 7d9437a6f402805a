package clickhouse

import (
	"fmt"
	"strings"
	"time"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
)

// partKey names one Kafka partition.
type partKey struct {
	topic string
	part  int32
}

// tableBuf is a table's pending batch: columnar rows plus, per partition,
// the first offset whose rows are in it (the batch holds no row of that
// partition from before that offset, so the partition's commit point
// cannot pass it until the batch is acknowledged).
type tableBuf struct {
	table  chschema.Table
	insert string // INSERT INTO db.t (explicit column list)
	cols   []colBuf
	rows   int
	since  time.Time // when the first row was added
	first  map[partKey]int64
	last   map[partKey]int64 // last offset per partition (dedup token)
	w      rowWriter
}

func newTableBuf(database string, t chschema.Table) *tableBuf {
	tb := &tableBuf{table: t, first: map[partKey]int64{}, last: map[partKey]int64{}}
	tb.insert = fmt.Sprintf("INSERT INTO %s.%s (%s)", database, t.Name, strings.Join(t.ColumnNames(), ", "))
	for _, c := range t.Columns {
		tb.cols = append(tb.cols, newCol(c.Type))
	}
	return tb
}

// emit starts a new row; the mapper fills it through the returned writer.
func (tb *tableBuf) emit() *rowWriter {
	tb.w = rowWriter{cols: tb.cols}
	return &tb.w
}

// reset empties the batch after it was sent or dropped.
func (tb *tableBuf) reset() {
	for _, c := range tb.cols {
		c.reset()
	}
	tb.rows = 0
	clear(tb.first)
	clear(tb.last)
}
