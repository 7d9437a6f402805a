package clickhouse

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// TestReviewDateTimeOutOfRange: a compat-profile DateTime column holds
// 1970-01-01 .. 2106-02-07 as UInt32 seconds. The sink writes
// uint32(seconds) of whatever it got, so a time before 1970 becomes a time
// in 2106 and one after 2106 a time decades in the past (another month
// partition: compat retention then drops it with that partition). The
// value written should at least stay on the same side (clamped) or the
// record be refused; it must not wrap.
func TestReviewDateTimeOutOfRange(t *testing.T) {
	for _, in := range []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		c := &msCol{ms: []int64{in.UnixMilli()}}
		if !c.wire(column.Type("DateTime('UTC')")) {
			t.Fatal("DateTime not on the direct path")
		}
		var b proto.Buffer
		c.encode(&b)
		got := time.Unix(int64(binary.LittleEndian.Uint32(b.Buf)), 0).UTC()
		if in.Year() < 1970 && got.Year() > 1970 || in.Year() > 2106 && got.Year() < 2106 {
			t.Errorf("%s written to DateTime as %s", in.Format(time.RFC3339), got.Format(time.RFC3339))
		}
	}
}

// TestReviewDateOutOfRange: the same for Date columns (adherence.day and
// dose_outcomes.local_date, UInt16 days from 1970): a YYYY-MM-DD the
// mappers accept (any date time.Parse takes) is written modulo 2^16 days.
func TestReviewDateOutOfRange(t *testing.T) {
	for _, day := range []string{"1969-12-31", "2200-01-01"} {
		d, _ := time.Parse(time.DateOnly, day)
		col, err := column.Type("Date").Column("day", &column.ServerContext{})
		if err != nil {
			t.Fatal(err)
		}
		// What send does for a Date column: the public Append of the
		// typed[time.Time] buffer.
		c := &typed[time.Time]{v: []time.Time{d}}
		if _, err := col.Append(c.v); err != nil {
			t.Logf("%s refused: %v", day, err)
			continue
		}
		var b proto.Buffer
		col.Encode(&b)
		got := time.Unix(int64(binary.LittleEndian.Uint16(b.Buf))*86400, 0).UTC().Format(time.DateOnly)
		if got != day {
			t.Errorf("day %s written to Date as %s", day, got)
		}
	}
}
