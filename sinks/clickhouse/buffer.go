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
	// oldestMs is the oldest Kafka record timestamp (Unix ms) in the batch.
	oldestMs int64
	// offs: per partition, the first and last offset with rows in the
	// batch (the last is part of the dedup token); cur caches the entry
	// of the partition marked last (consecutive records share it).
	offs  map[partKey]*offRange
	curPK partKey
	cur   *offRange
	w     rowWriter
	// fl is the table's previous batch while ClickHouse inserts it (nil
	// when none is in the air: see flight.go); spare is an empty batch
	// kept for the next detach.
	fl    *flight
	spare *tableBuf
	// timeCols: the indices of the DateTime and Date columns (checkRange).
	timeCols []int
}

// offRange is the offsets of a partition's records in a batch.
type offRange struct{ first, last int64 }

// mark records that the record at offset off of pk put rows in the batch.
func (tb *tableBuf) mark(pk partKey, off int64) {
	if tb.cur != nil && tb.curPK == pk {
		tb.cur.last = off
		return
	}
	r := tb.offs[pk]
	if r == nil {
		r = &offRange{first: off}
		tb.offs[pk] = r
	}
	r.last = off
	tb.curPK, tb.cur = pk, r
}

func newTableBuf(database string, t chschema.Table) *tableBuf {
	tb := &tableBuf{table: t, offs: map[partKey]*offRange{}}
	tb.insert = fmt.Sprintf("INSERT INTO %s.%s (%s)", database, t.Name, strings.Join(t.ColumnNames(), ", "))
	for i, c := range t.Columns {
		tb.cols = append(tb.cols, newCol(c.Type))
		if c.Type == chschema.Time || c.Type == chschema.Date {
			tb.timeCols = append(tb.timeCols, i)
		}
	}
	return tb
}

// emit starts a new row; the mapper fills it through the returned writer.
func (tb *tableBuf) emit() *rowWriter {
	tb.w = rowWriter{cols: tb.cols}
	return &tb.w
}

// detach moves the batch into a batch of its own (spare's buffers, or new
// ones) and leaves tb empty, to fill on while the detached one is
// inserted. Columns exchange their values, not their identity: routes and
// fast decoders keep pointers to tb's columns.
func (tb *tableBuf) detach() *tableBuf {
	b := tb.spare
	tb.spare = nil
	if b == nil {
		b = &tableBuf{table: tb.table, insert: tb.insert, offs: map[partKey]*offRange{}}
		for _, c := range tb.table.Columns {
			b.cols = append(b.cols, newCol(c.Type))
		}
	}
	for i, c := range tb.cols {
		c.swap(b.cols[i])
	}
	b.rows, b.since, b.oldestMs = tb.rows, tb.since, tb.oldestMs
	b.offs, tb.offs = tb.offs, b.offs
	tb.rows, tb.oldestMs, tb.cur = 0, 0, nil
	return b
}

// reset empties the batch after it was sent or dropped.
func (tb *tableBuf) reset() {
	for _, c := range tb.cols {
		c.reset()
	}
	tb.rows, tb.oldestMs = 0, 0
	clear(tb.offs)
	tb.cur = nil
}
