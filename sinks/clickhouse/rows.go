package clickhouse

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// colBuf is one column of a table's pending batch, held as a typed Go
// slice so that it is appended to the clickhouse-go batch in one call
// (columnar, no per-row interface boxing).
type colBuf interface {
	// appendTo appends the buffered values to a batch's column through
	// clickhouse-go's public API (where the native hand-over of wire.go
	// does not apply).
	appendTo(c driver.BatchColumn) error
	// len is the number of rows.
	len() int
	reset()
	// truncate drops the values after the first n rows (a record whose
	// rows were appended and then refused: tableBuf.truncate).
	truncate(n int)
	// swap exchanges the values with o, a column of the same type
	// (tableBuf.detach).
	swap(o colBuf)
}

type typed[T any] struct{ v []T }

func (c *typed[T]) appendTo(bc driver.BatchColumn) error { return bc.Append(c.v) }
func (c *typed[T]) reset()                               { clear(c.v); c.v = c.v[:0] }
func (c *typed[T]) swap(o colBuf)                        { p := o.(*typed[T]); c.v, p.v = p.v, c.v }
func (c *typed[T]) truncate(n int)                       { clear(c.v[n:]); c.v = c.v[:n] }

// strCol is a String column in ClickHouse's native layout (wire.go): each
// value as its uvarint length and bytes, in one buffer. No string header
// or allocation per value, and nothing for the garbage collector to scan
// (a []string column of a 100k-row batch is pointers it walks on every
// cycle).
type strCol struct {
	n   int // rows
	buf []byte
}

func (c *strCol) add(v string)      { c.buf = appendStr(c.buf, v); c.n++ }
func (c *strCol) addBytes(v []byte) { c.buf = appendStr(c.buf, v); c.n++ }
func (c *strCol) reset()            { c.buf, c.n = c.buf[:0], 0 }
func (c *strCol) swap(o colBuf)     { p := o.(*strCol); *c, *p = *p, *c }

// truncate walks the first n values (only refused records pay for it).
func (c *strCol) truncate(n int) {
	if n >= c.n {
		return
	}
	b := c.buf
	for range n {
		l, k := binary.Uvarint(b)
		b = b[k+int(l):]
	}
	c.buf, c.n = c.buf[:len(c.buf)-len(b)], n
}

// at returns value i (tests; it walks the buffer).
func (c *strCol) at(i int) string {
	b := c.buf
	var v string
	for range i + 1 {
		v, b = nextStr(b)
	}
	return v
}

// strings returns the values as a []string (for the public Append).
func (c *strCol) strings() []string {
	out := make([]string, 0, c.n)
	for b := c.buf; len(b) > 0; {
		var v string
		v, b = nextStr(b)
		out = append(out, v)
	}
	return out
}

func (c *strCol) appendTo(bc driver.BatchColumn) error { return bc.Append(c.strings()) }

// strsCol is an Array(String) column in the native layout: each row's end
// in the values (the offsets column) and the values as one strCol.
type strsCol struct {
	rowEnd []uint64
	vals   strCol
}

func (c *strsCol) add(v []string) {
	for _, x := range v {
		c.vals.add(x)
	}
	c.rowEnd = append(c.rowEnd, uint64(c.vals.n))
}

func (c *strsCol) addBytes(v [][]byte) {
	for _, x := range v {
		c.vals.addBytes(x)
	}
	c.rowEnd = append(c.rowEnd, uint64(c.vals.n))
}

func (c *strsCol) reset()        { c.rowEnd = c.rowEnd[:0]; c.vals.reset() }
func (c *strsCol) swap(o colBuf) { p := o.(*strsCol); *c, *p = *p, *c }
func (c *strsCol) truncate(n int) {
	if n >= len(c.rowEnd) {
		return
	}
	vals := 0
	if n > 0 {
		vals = int(c.rowEnd[n-1])
	}
	c.rowEnd = c.rowEnd[:n]
	c.vals.truncate(vals)
}

// lists returns the rows as [][]string (for the public Append).
func (c *strsCol) lists() [][]string {
	all := c.vals.strings()
	out := make([][]string, len(c.rowEnd))
	start := uint64(0)
	for i, e := range c.rowEnd {
		out[i] = all[start:e:e]
		start = e
	}
	return out
}

func (c *strsCol) appendTo(bc driver.BatchColumn) error { return bc.Append(c.lists()) }

// msCol is a DateTime column as Unix milliseconds: 8 bytes a value and no
// pointer for the garbage collector (a time.Time holds its location).
type msCol struct {
	ms   []int64
	ms64 bool // the column is DateTime64(3) (see wire)
}

func (c *msCol) reset()         { c.ms = c.ms[:0] }
func (c *msCol) swap(o colBuf)  { p := o.(*msCol); c.ms, p.ms = p.ms, c.ms }
func (c *msCol) truncate(n int) { c.ms = c.ms[:n] }

func (c *msCol) appendTo(bc driver.BatchColumn) error {
	ts := make([]time.Time, len(c.ms))
	for i, ms := range c.ms {
		ts[i] = time.UnixMilli(clampDateTime(ms)).UTC()
	}
	return bc.Append(ts)
}

// The range of a DateTime column (UInt32 seconds, compat profile) in Unix
// milliseconds. Rows are checked against it whatever the profile (a
// DateTime64(3) column of the modern profile holds 1900-2299), so that a
// record gives the same rows, or the same dead letter, on both.
const (
	minDateTimeMs = 0
	maxDateTimeMs = math.MaxUint32*1000 + 999
)

// The range of a Date column: UInt16 days since 1970-01-01.
var (
	minDate = time.Unix(0, 0).UTC()
	maxDate = minDate.AddDate(0, 0, math.MaxUint16)
)

// clampDateTime keeps ms within a DateTime column's range. Converted rows
// are checked (tableBuf.checkRange: such a record is dead-lettered); this
// only guards the writes that are not, the broken dead letters written
// straight to dead_letters, against wrapping around (uint32 seconds).
func clampDateTime(ms int64) int64 { return min(max(ms, minDateTimeMs), maxDateTimeMs) }

// errTimeRange: a time or date outside its column type's range (DateTime:
// 1970-01-01 00:00:00 to 2106-02-07 06:28:15 UTC; Date: 1970-01-01 to
// 2149-06-06). ClickHouse would store it wrapped around, in another month
// partition; the record is dead-lettered with reason time_out_of_range.
var errTimeRange = errors.New("time out of the column type's range")

// checkRange returns an error naming the first time or date of the rows
// after the first before rows that is out of its column type's range.
func (tb *tableBuf) checkRange(before int) error {
	for _, i := range tb.timeCols {
		switch c := tb.cols[i].(type) {
		case *msCol:
			for _, ms := range c.ms[before:] {
				if ms < minDateTimeMs || ms > maxDateTimeMs {
					return fmt.Errorf("%w: %w: %s %s (Unix ms %d) is outside 1970-01-01..2106-02-07", ErrUnconvertible, errTimeRange,
						tb.table.Columns[i].Name, time.UnixMilli(ms).UTC().Format(time.RFC3339), ms)
				}
			}
		case *typed[time.Time]:
			for _, d := range c.v[before:] {
				if d.Before(minDate) || d.After(maxDate) {
					return fmt.Errorf("%w: %w: %s %s is outside 1970-01-01..2149-06-06", ErrUnconvertible, errTimeRange,
						tb.table.Columns[i].Name, d.Format(time.DateOnly))
				}
			}
		}
	}
	return nil
}

// truncate drops the rows after the first n (rows of a refused record).
func (tb *tableBuf) truncate(n int) {
	for _, c := range tb.cols {
		c.truncate(n)
	}
	tb.rows = n
}

func newCol(t chschema.Type) colBuf {
	switch t {
	case chschema.Str, chschema.LC:
		return &strCol{}
	case chschema.Time:
		return &msCol{}
	case chschema.Date:
		return &typed[time.Time]{}
	case chschema.F64:
		return &typed[float64]{}
	case chschema.F32:
		return &typed[float32]{}
	case chschema.I64:
		return &typed[int64]{}
	case chschema.I32:
		return &typed[int32]{}
	case chschema.U64:
		return &typed[uint64]{}
	case chschema.Bool:
		return &typed[uint8]{}
	case chschema.Strs:
		return &strsCol{}
	case chschema.I32s:
		return &typed[[]int32]{}
	}
	panic(fmt.Sprintf("sinks/clickhouse: no buffer for column type %d", t))
}

// errColumn is a programmer error: a mapper wrote a value of the wrong type
// or the wrong number of values. New checks every mapper against the schema,
// so it never reaches production.
var errColumn = errors.New("mapper does not match the table's columns")

// rowWriter appends one row, column by column in schema order.
type rowWriter struct {
	cols []colBuf
	i    int
	err  error
}

// nextCol returns the row's next column as a PC and advances, or nil
// after recording the mismatch.
func nextCol[C any, PC interface {
	*C
	colBuf
}](w *rowWriter) PC {
	if w.i >= len(w.cols) {
		w.err = fmt.Errorf("%w: more than %d values", errColumn, len(w.cols))
		return nil
	}
	c, ok := w.cols[w.i].(PC)
	if !ok {
		w.err = fmt.Errorf("%w: column %d is %T, the value needs a %T", errColumn, w.i, w.cols[w.i], c)
		return nil
	}
	w.i++
	return c
}

func put[T any](w *rowWriter, v T) {
	if c := nextCol[typed[T]](w); c != nil {
		c.v = append(c.v, v)
	}
}

func (w *rowWriter) s(v string) {
	if c := nextCol[strCol](w); c != nil {
		c.add(v)
	}
}
func (w *rowWriter) f64(v float64) { put(w, v) }
func (w *rowWriter) f32(v float32) { put(w, v) }
func (w *rowWriter) i64(v int64)   { put(w, v) }
func (w *rowWriter) i32(v int32)   { put(w, v) }
func (w *rowWriter) u64(v int64)   { put(w, uint64(max(v, 0))) }
func (w *rowWriter) strs(v []string) {
	if c := nextCol[strsCol](w); c != nil {
		c.add(v)
	}
}
func (w *rowWriter) i32s(v []int32) { put(w, nonNilI(v)) }
func (w *rowWriter) t(ms int64) {
	if c := nextCol[msCol](w); c != nil {
		c.ms = append(c.ms, ms)
	}
}
func (w *rowWriter) date(d time.Time) { put(w, d) }
func (w *rowWriter) bool(v bool) {
	var b uint8
	if v {
		b = 1
	}
	put(w, b)
}

func nonNilI(v []int32) []int32 {
	if v == nil {
		return []int32{}
	}
	return v
}

// recCtx is what a mapper knows about the record besides its value.
type recCtx struct {
	defaultTenant string
	// recordMs is the Kafka record timestamp, the fallback for missing
	// event/ingest times.
	recordMs  int64
	topic     string
	partition int32
	offset    int64
	key       []byte
}

// ErrUnconvertible wraps why a record cannot become rows; such records go
// to the dead-letter topic with this reason.
var ErrUnconvertible = errors.New("record cannot be converted to rows")

func unconvertible(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnconvertible, fmt.Sprintf(format, a...))
}

// metaCheck validates the Meta every row needs.
func metaCheck(m *pb.Meta) error {
	if m.GetEventId() == "" {
		return unconvertible("meta.event_id is empty (it is the dedup key)")
	}
	return nil
}

func (w *rowWriter) meta(m *pb.Meta, rc *recCtx) {
	tenant := m.GetTenant()
	if tenant == "" {
		tenant = rc.defaultTenant
	}
	et, it := m.GetEventTimeMs(), m.GetIngestTimeMs()
	if et <= 0 {
		et = rc.recordMs
	}
	if it <= 0 {
		it = rc.recordMs
	}
	w.s(tenant)
	w.s(m.GetEventId())
	w.t(et)
	w.t(it)
	w.s(m.GetSource())
}

// mapper turns one decoded record into rows of one table. It validates
// first and appends only when the whole record converts, so columns never
// go out of step. emit starts each row and returns its writer.
type mapper func(m proto.Message, rc *recCtx, emit func() *rowWriter) error

// route is one table a topic's records are written to.
type route struct {
	table string
	fn    mapper
	// fast, if set, maps the record value without decoding a message (see
	// fast.go); fn is the fallback and the reference.
	fast fastMapper
}

// routes maps each catalog topic to its tables.
func routes() map[string][]route {
	return map[string][]route{
		topics.Intake:         {{chschema.TIntakes, mapIntake, nil}},
		topics.Schedules:      {{chschema.TSchedules, mapSchedule, nil}},
		topics.DeviceStatus:   {{chschema.TDeviceStatus, mapStatus, nil}},
		topics.Vitals:         {{chschema.TVitals, mapVitals, fastVitals}},
		topics.VitalsBatches:  {{chschema.TVitals, mapVitalsBatch, fastVitalsBatch}},
		topics.Commands:       {{chschema.TDeviceCommands, mapCommand, nil}},
		topics.CommandStates:  {{chschema.TDeviceCommands, mapCommand, nil}},
		topics.Shadows:        {{chschema.TDeviceShadows, mapShadow, nil}},
		topics.ShadowDesired:  {{chschema.TShadowDesired, mapShadowDesired, nil}},
		topics.Detections:     {{chschema.TFrames, mapFrame, nil}, {chschema.TDetections, mapDetections, nil}},
		topics.VideoEvents:    {{chschema.TVideoEvents, mapVideo, nil}},
		topics.CameraControls: {{chschema.TCameraControls, mapVideo, nil}},
		topics.DoseOutcomes:   {{chschema.TDoseOutcomes, mapOutcome, nil}},
		topics.Adherence:      {{chschema.TAdherence, mapAdherence, nil}},
		topics.AnomalyScores:  {{chschema.TAnomalyScores, mapAnomaly, fastScore}},
		topics.ScoreBatches:   {{chschema.TAnomalyScores, mapScoreBatch, fastScoreBatch}},
		topics.Alerts:         {{chschema.TAlerts, mapAlert, nil}},
		topics.AlertAcks:      {{chschema.TAlertAcks, mapAck, nil}},
		topics.DeadLetters:    {{chschema.TDeadLetters, mapDeadLetter, nil}},
		topics.Audit:          {{chschema.TAudit, mapAudit, nil}},
	}
}

func mapIntake(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.MedicationIntake)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.DeviceId)
	w.s(m.PatientId)
	w.s(m.MedicationId)
	w.s(m.Ward)
	w.t(m.IntakeTimeMs)
	w.s(m.Status)
	w.f64(m.Dosage)
	w.s(m.Unit)
	w.s(m.Location)
	w.s(m.Method)
	w.s(m.Verification)
	return nil
}

func mapSchedule(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DoseSchedule)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	if m.PatientId == "" || m.MedicationId == "" {
		return unconvertible("schedule without patient_id or medication_id")
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.PatientId)
	w.s(m.MedicationId)
	w.s(m.DeviceId)
	w.s(m.Ward)
	w.s(m.MedicationName)
	w.s(m.Timezone)
	w.strs(m.Times)
	w.i32s(m.DaysOfWeek)
	w.s(m.StartDate)
	w.s(m.EndDate)
	w.i32(m.DosesPerTime)
	w.i32(m.GraceMinutes)
	w.i32(m.LateWindowMinutes)
	w.i32(m.EarlyWindowMinutes)
	w.bool(m.Deleted)
	w.u64(m.Version)
	return nil
}

// structJSON is s as JSON ("" for none). A Struct protojson refuses (a
// NaN or infinite number, invalid UTF-8: valid on the protobuf wire, not
// in JSON) is an error naming the field: the record is dead-lettered, not
// written with the whole state emptied.
func structJSON(field string, s *structpb.Struct) (string, error) {
	if s == nil {
		return "", nil
	}
	b, err := protojson.Marshal(s)
	if err != nil {
		return "", unconvertible("%s is not valid JSON: %v", field, err)
	}
	return string(b), nil
}

func mapStatus(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DeviceStatus)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	reported, err := structJSON("reported", m.Reported)
	if err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.DeviceId)
	w.s(m.DeviceType)
	w.s(m.Ward)
	w.bool(m.Online)
	w.f64(m.BatteryLevel)
	w.f64(m.SignalStrength)
	w.s(m.FirmwareVersion)
	w.s(m.Status)
	w.s(m.PatientId)
	w.s(m.Location)
	w.s(reported)
	return nil
}

func mapVitals(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.VitalsTelemetry)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	writeVitals(emit(), m, rc)
	return nil
}

// mapVitalsBatch writes every reading of a batch as its own vitals row,
// exactly as if each had been a record on the vitals topic (the batch is
// only transport). One bad reading rejects the whole record, before any
// row is appended.
func mapVitalsBatch(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.VitalsBatch)
	for i, r := range m.Readings {
		if err := metaCheck(r.GetMeta()); err != nil {
			return fmt.Errorf("batch %s reading %d: %w", m.BatchId, i, err)
		}
	}
	for _, r := range m.Readings {
		writeVitals(emit(), r, rc)
	}
	return nil
}

func writeVitals(w *rowWriter, m *pb.VitalsTelemetry, rc *recCtx) {
	var keys, vals []string
	if len(m.Extra) > 0 {
		keys = make([]string, 0, len(m.Extra))
		for k := range m.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		vals = make([]string, len(keys))
		for i, k := range keys {
			vals[i] = strconv.FormatFloat(m.Extra[k], 'g', -1, 64)
		}
	}
	w.meta(m.GetMeta(), rc)
	w.s(m.DeviceId)
	w.s(m.DeviceType)
	w.s(m.PatientId)
	w.s(m.Ward)
	w.s(m.Kind)
	w.f64(m.HeartRate)
	w.f64(m.SystolicBp)
	w.f64(m.DiastolicBp)
	w.f64(m.Spo2)
	w.f64(m.Temperature)
	w.f64(m.RespiratoryRate)
	w.f64(m.Glucose)
	w.f64(m.MedicationDose)
	w.f64(m.AdministrationRate)
	w.f64(m.BatteryLevel)
	w.i32(m.Severity)
	w.s(m.AlertType)
	w.s(m.Message)
	w.s(m.Quality)
	w.s(m.BatchId)
	w.strs(m.Present)
	w.strs(keys)
	w.strs(vals)
}

func mapCommand(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DeviceCommand)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	if m.CommandId == "" {
		return unconvertible("command without command_id")
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.CommandId)
	w.s(m.DeviceId)
	w.s(m.CommandType.String())
	w.s(m.State.String())
	w.s(m.PayloadJson)
	w.s(m.IssuedBy)
	w.i64(m.TimeoutMs)
	w.t(m.SentTimeMs)
	w.t(m.AckTimeMs)
	w.s(m.Error)
	w.u64(m.Version)
	return nil
}

func mapShadow(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DeviceShadow)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	if m.DeviceId == "" {
		return unconvertible("shadow without device_id")
	}
	desired, err := structJSON("desired", m.Desired)
	if err != nil {
		return err
	}
	reported, err := structJSON("reported", m.Reported)
	if err != nil {
		return err
	}
	delta, err := structJSON("delta", m.Delta)
	if err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.DeviceId)
	w.s(desired)
	w.s(reported)
	w.s(delta)
	w.bool(m.Online)
	w.t(m.LastSeenMs)
	w.t(m.DesiredUpdatedMs)
	w.t(m.ReportedUpdatedMs)
	w.u64(m.Version)
	return nil
}

func mapShadowDesired(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DeviceShadow)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	desired, err := structJSON("desired", m.Desired)
	if err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.DeviceId)
	w.s(desired)
	w.u64(m.Version)
	return nil
}

func mapFrame(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.FrameDetections)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.CameraId)
	w.s(m.Ward)
	w.s(m.Zone)
	w.s(m.Location)
	w.t(m.FrameTimeMs)
	w.i64(m.Sequence)
	w.s(m.ModelName)
	w.s(m.ModelVersion)
	w.f32(m.InferenceMs)
	w.i32(m.Width)
	w.i32(m.Height)
	w.i32(int32(len(m.Detections)))
	return nil
}

func mapDetections(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.FrameDetections)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	for i, d := range m.Detections {
		w := emit()
		w.meta(m.GetMeta(), rc)
		w.s(m.CameraId)
		w.s(m.Ward)
		w.s(m.Zone)
		w.i32(int32(i))
		w.s(d.ClassName)
		w.i32(d.ClassId)
		w.f32(d.Confidence)
		b := d.GetBox()
		w.f32(b.GetX())
		w.f32(b.GetY())
		w.f32(b.GetW())
		w.f32(b.GetH())
	}
	return nil
}

func mapVideo(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.VideoEvent)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.CameraId)
	w.s(m.Ward)
	w.s(m.Zone)
	w.s(m.Location)
	w.s(m.EventType.String())
	w.f32(m.Confidence)
	w.i32(m.PersonCount)
	w.t(m.StartTimeMs)
	w.t(m.EndTimeMs)
	w.s(m.Details)
	return nil
}

func mapOutcome(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DoseOutcome)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	if m.DoseId == "" {
		return unconvertible("dose outcome without dose_id")
	}
	if m.ScheduledTimeMs <= 0 {
		return unconvertible("dose outcome %s without scheduled_time_ms (the partition key)", m.DoseId)
	}
	day := time.UnixMilli(m.ScheduledTimeMs).UTC().Truncate(24 * time.Hour)
	if m.LocalDate != "" {
		d, err := time.Parse(time.DateOnly, m.LocalDate)
		if err != nil {
			return unconvertible("dose outcome %s: local_date %q is not YYYY-MM-DD", m.DoseId, m.LocalDate)
		}
		day = d
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.DoseId)
	w.s(m.PatientId)
	w.s(m.MedicationId)
	w.s(m.DeviceId)
	w.s(m.Ward)
	w.t(m.ScheduledTimeMs)
	w.date(day)
	w.s(m.Outcome.String())
	w.s(m.IntakeEventId)
	w.t(m.IntakeTimeMs)
	w.f64(m.DelayMinutes)
	w.s(m.Verification)
	w.u64(m.Version)
	return nil
}

func mapAdherence(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.AdherenceWindow)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	day, err := time.Parse(time.DateOnly, m.Day)
	if err != nil {
		return unconvertible("adherence: day %q is not YYYY-MM-DD", m.Day)
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.PatientId)
	w.s(m.MedicationId)
	w.s(m.Ward)
	w.date(day)
	w.i32(m.DailyDue)
	w.i32(m.DailyTaken)
	w.f64(m.DailyRatio)
	w.i32(m.Due_7D)
	w.i32(m.Taken_7D)
	w.f64(m.Ratio_7D)
	w.i32(m.Due_30D)
	w.i32(m.Taken_30D)
	w.f64(m.Ratio_30D)
	w.f64(m.Pdc_30D)
	w.u64(m.Version)
	return nil
}

func mapAnomaly(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.AnomalyScore)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	writeAnomaly(emit(), m, rc)
	return nil
}

// mapScoreBatch writes every score of a batch as its own anomaly_scores
// row (see mapVitalsBatch).
func mapScoreBatch(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.AnomalyScoreBatch)
	for i, sc := range m.Scores {
		if err := metaCheck(sc.GetMeta()); err != nil {
			return fmt.Errorf("score batch %s score %d: %w", m.GetMeta().GetEventId(), i, err)
		}
	}
	for _, sc := range m.Scores {
		writeAnomaly(emit(), sc, rc)
	}
	return nil
}

func writeAnomaly(w *rowWriter, m *pb.AnomalyScore, rc *recCtx) {
	w.meta(m.GetMeta(), rc)
	w.s(m.DeviceId)
	w.s(m.PatientId)
	w.s(m.Ward)
	w.s(m.ReadingEventId)
	w.f64(m.Score)
	w.f64(m.RuleScore)
	w.f64(m.ZScore)
	w.strs(m.Reasons)
	w.s(m.Level)
	w.f64(m.HeartRate)
	w.f64(m.SystolicBp)
	w.f64(m.Spo2)
}

func mapAlert(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.Alert)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	if m.AlertId == "" {
		return unconvertible("alert without alert_id")
	}
	opened := m.OpenedTimeMs
	if opened <= 0 {
		// Every version of an alert must land in the same partition;
		// processors set opened_time_ms on every version. Without it we
		// refuse rather than guess.
		return unconvertible("alert %s without opened_time_ms (the partition key)", m.AlertId)
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.AlertId)
	w.s(m.AlertType.String())
	w.s(m.Priority.String())
	w.s(m.State.String())
	w.s(m.SubjectType)
	w.s(m.SubjectId)
	w.s(m.PatientId)
	w.s(m.DeviceId)
	w.s(m.CameraId)
	w.s(m.MedicationId)
	w.s(m.Ward)
	w.s(m.Message)
	w.t(opened)
	w.t(m.AckedTimeMs)
	w.t(m.ResolvedTimeMs)
	w.i32(m.EscalationLevel)
	w.s(m.AckedBy)
	w.u64(m.Version)
	return nil
}

func mapAck(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.AlertAck)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.AlertId)
	w.s(m.User)
	w.s(m.Note)
	return nil
}

func mapDeadLetter(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.DeadLetter)
	meta := m.GetMeta()
	if meta.GetEventId() == "" {
		// A dead letter is never re-dead-lettered: give it a stable id from
		// its own position so that it still lands (exactly once).
		meta = proto.CloneOf(meta)
		if meta == nil {
			meta = &pb.Meta{}
		}
		meta.EventId = fmt.Sprintf("%s/%d/%d", rc.topic, rc.partition, rc.offset)
	}
	w := emit()
	w.meta(meta, rc)
	w.s(m.Stage)
	w.s(m.SourceTopic)
	w.i32(m.SourcePartition)
	w.i64(m.SourceOffset)
	w.s(hex.EncodeToString(m.Key))
	w.s(hex.EncodeToString(m.Raw))
	w.s(m.Reason)
	w.s(m.Error)
	return nil
}

func mapAudit(msg proto.Message, rc *recCtx, emit func() *rowWriter) error {
	m := msg.(*pb.AuditEvent)
	if err := metaCheck(m.GetMeta()); err != nil {
		return err
	}
	w := emit()
	w.meta(m.GetMeta(), rc)
	w.s(m.User)
	w.s(m.Role)
	w.s(m.Action)
	w.s(m.Resource)
	w.s(m.BodyJson)
	w.i32(m.Status)
	return nil
}
