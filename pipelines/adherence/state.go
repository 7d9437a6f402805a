package adherence

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/pipelines/internal/wire"
	"github.com/wardstream/wardstream/pipelines/schedule"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// State is one patient's adherence state, the value of the group table
// (keyed by patient id), stored in the binary form of [StateCodec].
type State struct {
	Tenant string               `json:"tn,omitempty"`
	Meds   map[string]*MedState `json:"m,omitempty"`
}

// MedState is the state of one patient's medication.
type MedState struct {
	// Sched is the latest schedule (deterministic protobuf bytes); nil
	// while intakes arrived before any schedule.
	Sched []byte `json:"s,omitempty"`
	// Hist holds the schedule versions that still define doses within the
	// correction horizon, by version. A version applies from its event
	// time on: the dose instants at t come from the highest version written
	// at or before t (see [MedState.specAt]), so a schedule change never
	// rewrites the doses before it, and versions arriving in any order give
	// the same doses.
	Hist []*SchedVer `json:"h,omitempty"`
	// Gone are doses a schedule version removed after their outcome was
	// emitted (and retracted): if a later version brings one back, its
	// outcome continues from the retraction's version, so versions of a
	// dose id only ever grow.
	Gone []*DoseRec `json:"g,omitempty"`
	// From is the earliest event time of any schedule version seen: doses
	// are due from then on (a schedule applies from when it was written).
	From int64 `json:"f,omitempty"`
	// Through is the end (exclusive, Unix ms) of the doses materialized.
	Through int64      `json:"t,omitempty"`
	Doses   []*DoseRec `json:"d,omitempty"`
	Intakes []*Intake  `json:"i,omitempty"`
	// Days holds due/taken counts of days whose doses were pruned (older
	// than the correction horizon), by local date.
	Days map[string][2]int `json:"y,omitempty"`
	// Pruned is the highest horizon floor below which doses were pruned
	// (folded into Days): they are final, and a schedule version arriving
	// later never materializes a dose before it again, also when this
	// message's clock is behind the one that pruned (a visit ahead, another
	// instance after a rebalance). 0: nothing pruned yet (or a state of
	// format 1 or 2).
	Pruned int64 `json:"pr,omitempty"`
	// AdhVer is the version counter of adherence windows.
	AdhVer int64 `json:"av,omitempty"`
	// Low is set while the latest 7-day ratio is below the threshold;
	// LowAlert names the open LOW_ADHERENCE alert window (crossing day).
	Low      bool   `json:"lo,omitempty"`
	LowAlert string `json:"la,omitempty"`
	Ward     string `json:"w,omitempty"`
	Device   string `json:"dv,omitempty"`

	spec *schedule.Spec
}

// SchedVer is one schedule version and the time it applies from.
type SchedVer struct {
	Ver   int64  `json:"v"`
	From  int64  `json:"f"`
	Sched []byte `json:"s"`

	spec *schedule.Spec
}

// DoseRec is one materialized dose and its last emitted outcome.
type DoseRec struct {
	At   int64  `json:"a"`
	Slot int    `json:"s,omitempty"`
	Date string `json:"d"`
	// Out is the last emitted outcome (0: none yet).
	Out      pb.Outcome `json:"o,omitempty"`
	Ver      int64      `json:"v,omitempty"`
	IntakeID string     `json:"i,omitempty"`
	// Alert is set while a MISSED_DOSE alert for the dose is open.
	Alert bool `json:"al,omitempty"`
}

// Intake is one intake seen within the correction horizon.
type Intake struct {
	ID    string `json:"i"`
	T     int64  `json:"t"`
	Taken bool   `json:"k,omitempty"`
	Dev   string `json:"dv,omitempty"`
	Ward  string `json:"w,omitempty"`
	Verif string `json:"vf,omitempty"`
	// Extra is set while an EXTRA outcome is emitted for the intake;
	// ExtraVer is its outcome version.
	Extra    bool  `json:"x,omitempty"`
	ExtraVer int64 `json:"xv,omitempty"`
	// Used is set when the dose the intake matched was pruned: the intake
	// stays for de-duplication but takes part in no further matching.
	Used bool `json:"u,omitempty"`
	// XDate is the local date the EXTRA outcome was emitted with (it moves
	// when a schedule brings the patient's time zone).
	XDate string `json:"xd,omitempty"`
}

// StateCodec is the goka codec of [State]: a compact, versioned binary
// form (every intake decodes and encodes its patient's state).
type StateCodec struct{}

// stateFormat 2 adds the schedule history; format 1 states decode with a
// history of their one schedule (see [MedState.versions]). Format 3 adds
// [MedState.Pruned]; states of formats 1 and 2 decode with 0.
const stateFormat = 3

// Encode implements goka.Codec.
func (StateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*State)
	if !ok {
		return nil, fmt.Errorf("encoding adherence state: got %T, want *adherence.State", v)
	}
	return s.AppendBinary(make([]byte, 0, 512)), nil
}

// AppendBinary appends s's binary form to b.
func (s *State) AppendBinary(b []byte) []byte {
	b = append(b, stateFormat)
	b = wire.AppendString(b, s.Tenant)
	meds := make([]string, 0, len(s.Meds))
	for k := range s.Meds {
		meds = append(meds, k)
	}
	sort.Strings(meds)
	b = wire.AppendUvarint(b, uint64(len(meds)))
	for _, k := range meds {
		m := s.Meds[k]
		b = wire.AppendString(b, k)
		if len(m.Hist) > 0 {
			// The latest schedule is the history's last entry.
			b = wire.AppendBytes(b, nil)
		} else {
			b = wire.AppendBytes(b, m.Sched)
		}
		b = wire.AppendVarint(b, m.From)
		b = wire.AppendVarint(b, m.Through)
		b = wire.AppendUvarint(b, uint64(len(m.Doses)))
		for _, d := range m.Doses {
			b = wire.AppendVarint(b, d.At)
			b = wire.AppendUvarint(b, uint64(d.Slot))
			b = wire.AppendString(b, d.Date)
			b = wire.AppendUvarint(b, uint64(d.Out))
			b = wire.AppendUvarint(b, uint64(d.Ver))
			b = wire.AppendString(b, d.IntakeID)
			b = append(b, boolByte(d.Alert))
		}
		b = wire.AppendUvarint(b, uint64(len(m.Intakes)))
		for _, it := range m.Intakes {
			b = wire.AppendString(b, it.ID)
			b = wire.AppendVarint(b, it.T)
			b = append(b, boolByte(it.Taken)|boolByte(it.Extra)<<1|boolByte(it.Used)<<2)
			b = wire.AppendString(b, it.Dev)
			b = wire.AppendString(b, it.Ward)
			b = wire.AppendString(b, it.Verif)
			b = wire.AppendUvarint(b, uint64(it.ExtraVer))
			b = wire.AppendString(b, it.XDate)
		}
		days := make([]string, 0, len(m.Days))
		for d := range m.Days {
			days = append(days, d)
		}
		sort.Strings(days)
		b = wire.AppendUvarint(b, uint64(len(days)))
		for _, d := range days {
			b = wire.AppendString(b, d)
			b = wire.AppendUvarint(b, uint64(m.Days[d][0]))
			b = wire.AppendUvarint(b, uint64(m.Days[d][1]))
		}
		b = wire.AppendUvarint(b, uint64(m.AdhVer))
		b = append(b, boolByte(m.Low))
		b = wire.AppendString(b, m.LowAlert)
		b = wire.AppendString(b, m.Ward)
		b = wire.AppendString(b, m.Device)
		b = wire.AppendUvarint(b, uint64(len(m.Hist)))
		for _, h := range m.Hist {
			b = wire.AppendVarint(b, h.Ver)
			b = wire.AppendVarint(b, h.From)
			b = wire.AppendBytes(b, h.Sched)
		}
		b = wire.AppendUvarint(b, uint64(len(m.Gone)))
		for _, d := range m.Gone {
			b = wire.AppendVarint(b, d.At)
			b = wire.AppendUvarint(b, uint64(d.Slot))
			b = wire.AppendUvarint(b, uint64(d.Ver))
		}
		b = wire.AppendVarint(b, m.Pruned)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// Decode implements goka.Codec.
func (StateCodec) Decode(b []byte) (any, error) { return DecodeState(b) }

// DecodeState parses the binary form of a State.
func DecodeState(b []byte) (*State, error) {
	if len(b) == 0 || b[0] < 1 || b[0] > stateFormat {
		return nil, fmt.Errorf("decoding adherence state (%d bytes): unknown format version", len(b))
	}
	format := b[0]
	r := wire.NewReader(b[1:])
	s := &State{Tenant: r.String()}
	n := r.Count(8)
	if n > 0 {
		s.Meds = make(map[string]*MedState, n)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		k := r.String()
		m := &MedState{Sched: r.Bytes(), From: r.Varint(), Through: r.Varint()}
		if len(m.Sched) == 0 {
			m.Sched = nil
		}
		// Records are allocated in one slab per kind: a state holds dozens.
		nd := r.Count(7)
		m.Doses = make([]*DoseRec, 0, nd+4)
		doses := make([]DoseRec, nd)
		for j := 0; j < nd && r.Err() == nil; j++ {
			d := &doses[j]
			*d = DoseRec{At: r.Varint(), Slot: int(r.Uvarint()), Date: r.String(), Out: pb.Outcome(r.Uvarint()), Ver: int64(r.Uvarint()), IntakeID: r.String()}
			d.Alert = r.Byte() == 1
			m.Doses = append(m.Doses, d)
		}
		ni := r.Count(8)
		m.Intakes = make([]*Intake, 0, ni+1)
		intakes := make([]Intake, ni)
		for j := 0; j < ni && r.Err() == nil; j++ {
			it := &intakes[j]
			it.ID, it.T = r.String(), r.Varint()
			f := r.Byte()
			it.Taken, it.Extra, it.Used = f&1 != 0, f&2 != 0, f&4 != 0
			it.Dev, it.Ward, it.Verif, it.ExtraVer = r.String(), r.String(), r.String(), int64(r.Uvarint())
			it.XDate = r.String()
			m.Intakes = append(m.Intakes, it)
		}
		ny := r.Count(3)
		if ny > 0 {
			m.Days = make(map[string][2]int, ny)
		}
		for j := 0; j < ny && r.Err() == nil; j++ {
			d := r.String()
			m.Days[d] = [2]int{int(r.Uvarint()), int(r.Uvarint())}
		}
		m.AdhVer = int64(r.Uvarint())
		m.Low = r.Byte() == 1
		m.LowAlert, m.Ward, m.Device = r.String(), r.String(), r.String()
		if format >= 2 {
			nh := r.Count(3)
			for j := 0; j < nh && r.Err() == nil; j++ {
				m.Hist = append(m.Hist, &SchedVer{Ver: r.Varint(), From: r.Varint(), Sched: r.Bytes()})
			}
			if len(m.Hist) > 0 {
				if m.Sched != nil {
					return nil, fmt.Errorf("decoding adherence state (%d bytes): medication %q has a schedule and a history", len(b), k)
				}
				m.Sched = m.Hist[len(m.Hist)-1].Sched
			}
			ng := r.Count(3)
			for j := 0; j < ng && r.Err() == nil; j++ {
				m.Gone = append(m.Gone, &DoseRec{At: r.Varint(), Slot: int(r.Uvarint()), Ver: int64(r.Uvarint())})
			}
		}
		if format >= 3 {
			m.Pruned = r.Varint()
		}
		s.Meds[k] = m
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("decoding adherence state (%d bytes): %w", len(b), r.Err())
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("decoding adherence state (%d bytes): %d trailing bytes", len(b), r.Len())
	}
	return s, nil
}

// specs caches parsed schedules by their bytes: every message decodes its
// patient's state, and parsing the schedule each time would dominate the
// intake path. Specs are immutable, so sharing them is safe. The cache is
// dropped when it grows past specCacheMax entries.
var (
	specs    sync.Map // string(schedule bytes) -> *schedule.Spec
	specsLen atomic.Int64
)

const specCacheMax = 1 << 18

// specOf parses (and caches) the medication's latest schedule.
func (m *MedState) specOf() (*schedule.Spec, error) {
	if m.spec != nil || m.Sched == nil {
		return m.spec, nil
	}
	sp, err := parseSched(m.Sched)
	if err != nil {
		return nil, err
	}
	m.spec = sp
	return sp, nil
}

// parseSched parses stored schedule bytes through the cache.
func parseSched(b []byte) (*schedule.Spec, error) {
	if v, ok := specs.Load(string(b)); ok {
		return v.(*schedule.Spec), nil
	}
	var s pb.DoseSchedule
	if err := proto.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding stored schedule: %w", err)
	}
	sp, err := schedule.Parse(&s)
	if err != nil {
		return nil, err
	}
	if specsLen.Add(1) > specCacheMax {
		specs.Clear()
		specsLen.Store(0)
	}
	specs.Store(string(b), sp)
	return sp, nil
}

// versions returns the schedule history, parsed. A state written before
// the history existed (format 1) gets one entry: its schedule, from From.
func (m *MedState) versions() []*SchedVer {
	if len(m.Hist) == 0 && m.Sched != nil {
		if sp, err := m.specOf(); err == nil && sp != nil {
			m.Hist = []*SchedVer{{Ver: sp.Version, From: m.From, Sched: m.Sched, spec: sp}}
		}
	}
	for _, h := range m.Hist {
		if h.spec == nil {
			sp, err := parseSched(h.Sched)
			if err != nil {
				// Validated before it was stored; an unreadable one
				// defines no doses.
				sp = &schedule.Spec{Version: h.Ver, Deleted: true}
			}
			h.spec = sp
		}
	}
	return m.Hist
}

// addVersion records a schedule version applying from from. It returns
// the earliest instant whose doses the change may affect (no version
// applies before its time), and false for a version already recorded.
func (m *MedState) addVersion(ver, from int64, b []byte, sp *schedule.Spec) (int64, bool) {
	hs := m.versions()
	i := sort.Search(len(hs), func(i int) bool { return hs[i].Ver >= ver })
	since := from
	switch {
	case i < len(hs) && hs[i].Ver == ver && standsIn(hs[i].Sched) && !standsIn(b):
		// The schedule written after a tombstone takes the number the
		// deletion stood in with (the natural next version).
		since = min(from, hs[i].From)
		m.Hist[i] = &SchedVer{Ver: ver, From: from, Sched: b, spec: sp}
	case i < len(hs) && hs[i].Ver == ver:
		return 0, false
	default:
		m.Hist = append(m.Hist, nil)
		copy(m.Hist[i+1:], m.Hist[i:])
		m.Hist[i] = &SchedVer{Ver: ver, From: from, Sched: b, spec: sp}
	}
	last := m.Hist[len(m.Hist)-1]
	m.Sched, m.spec = last.Sched, last.spec
	if m.From == 0 || from < m.From {
		m.From = from
	}
	return since, true
}

// TombstoneSource is the Meta.Source of the deletion the group stores for
// a tombstone on the schedules topic: the record names no version, so the
// deletion stands in as the version after the latest until a schedule
// with that number arrives.
const TombstoneSource = "pipelines/adherence/tombstone"

// standsIn reports whether the stored schedule b is a tombstone's
// stand-in deletion.
func standsIn(b []byte) bool {
	var s pb.DoseSchedule
	return proto.Unmarshal(b, &s) == nil && s.GetDeleted() && s.GetMeta().GetSource() == TombstoneSource
}

// specAt returns the schedule version that defines the doses at instant
// t: the highest version whose event time is at or before t (nil before
// the first). A deleted version defines no doses.
func (m *MedState) specAt(t int64) *schedule.Spec {
	var best *SchedVer
	for _, h := range m.versions() {
		if h.From <= t && (best == nil || h.Ver > best.Ver) {
			best = h
		}
	}
	if best == nil {
		return nil
	}
	return best.spec
}

// graceAt is the grace of the dose at t (the default without a schedule).
func (m *MedState) graceAt(t int64) int64 {
	if sp := m.specAt(t); sp != nil {
		return sp.Grace.Milliseconds()
	}
	return int64(schedule.DefaultGraceMinutes) * 60_000
}

// instances returns the doses in [from, to) under the history: each
// version's instants that it defines (see [MedState.specAt]).
func (m *MedState) instances(from, to int64) []*DoseRec {
	var out []*DoseRec
	for _, h := range m.versions() {
		if h.spec.Deleted {
			continue
		}
		for _, in := range h.spec.Instances(time.UnixMilli(from), time.UnixMilli(to)) {
			at := in.At.UnixMilli()
			if sp := m.specAt(at); sp == nil || sp.Version != h.Ver {
				continue
			}
			out = append(out, &DoseRec{At: at, Slot: in.Slot, Date: in.LocalDate})
		}
	}
	return out
}

// dosesFrom reports whether a version that is not a deletion is in effect
// at some instant at or after t (so that doses may be due from t on).
func (m *MedState) dosesFrom(t int64) bool {
	hs := m.versions()
	for _, h := range hs {
		if !h.spec.Deleted && !overriddenFrom(hs, h, t) {
			return true
		}
	}
	return false
}

// pruneVersions drops the versions that define no dose at or after
// floor: those overridden, from floor (or from their own start) on, by a
// higher version.
func (m *MedState) pruneVersions(floor int64) {
	hs := m.versions()
	k := 0
	for _, h := range hs {
		if !overriddenFrom(hs, h, floor) {
			hs[k] = h
			k++
		}
	}
	m.Hist = hs[:k]
}

// overriddenFrom reports whether a higher version than h is in effect from
// t (or from h's own start, if later) on, so that h defines nothing then.
func overriddenFrom(hs []*SchedVer, h *SchedVer, t int64) bool {
	start := max(h.From, t)
	for _, o := range hs {
		if o.Ver > h.Ver && o.From <= start {
			return true
		}
	}
	return false
}

func (m *MedState) schedProto() *pb.DoseSchedule {
	var s pb.DoseSchedule
	if m.Sched != nil {
		_ = proto.Unmarshal(m.Sched, &s)
	}
	return &s
}

// doseKey orders doses by instant then slot.
func doseLess(a, b *DoseRec) bool {
	if a.At != b.At {
		return a.At < b.At
	}
	return a.Slot < b.Slot
}

func intakeLess(a, b *Intake) bool {
	if a.T != b.T {
		return a.T < b.T
	}
	return a.ID < b.ID
}

// chunk is the granularity of dose materialization: doses are materialized
// ahead in whole chunks so that the state changes only when a chunk is
// added, not on every clock tick.
const chunk = int64(6 * time.Hour / time.Millisecond)

// materialize adds the doses due before upto (rounded up to a chunk) from
// the schedule history.
func (m *MedState) materialize(upto int64) bool {
	if len(m.versions()) == 0 {
		return false
	}
	upto = (upto/chunk + 1) * chunk
	from := m.Through
	if from < m.From {
		from = m.From
	}
	if upto <= from {
		return false
	}
	m.Doses = append(m.Doses, m.instances(from, upto)...)
	m.Through = upto
	sort.SliceStable(m.Doses, func(i, j int) bool { return doseLess(m.Doses[i], m.Doses[j]) })
	return true
}

// regenerate rebuilds the materialized doses at or after since (the
// instant from which a version added changes them) from the schedule
// history, keeping the records (and emitted outcomes) of doses that still
// exist; doses that no longer exist are returned so that their outcomes
// can be retracted. Doses before since, before the horizon floor or
// before m.Pruned are kept as they are: rebuilding those would bring back
// doses that a visit (whose clock may run ahead of this message's)
// already pruned.
func (m *MedState) regenerate(floor, since int64) (gone []*DoseRec) {
	old := m.Doses
	m.Doses = nil
	floor = max(floor, since, m.Pruned)
	if m.Through > floor {
		from := m.From
		if from < floor {
			from = floor
		}
		m.Doses = m.instances(from, m.Through)
	}
	idx := make(map[[2]int64]*DoseRec, len(m.Doses))
	for _, d := range m.Doses {
		idx[[2]int64{d.At, int64(d.Slot)}] = d
	}
	// A dose retracted earlier and back now continues its versions.
	k := 0
	for _, g := range m.Gone {
		if nd, ok := idx[[2]int64{g.At, int64(g.Slot)}]; ok {
			nd.Ver = g.Ver
			continue
		}
		m.Gone[k] = g
		k++
	}
	m.Gone = m.Gone[:k]
	for _, d := range old {
		if nd, ok := idx[[2]int64{d.At, int64(d.Slot)}]; ok {
			nd.Out, nd.Ver, nd.IntakeID, nd.Alert = d.Out, d.Ver, d.IntakeID, d.Alert
			continue
		}
		if d.At < floor {
			// Older than the horizon floor or the change: kept as is.
			m.Doses = append(m.Doses, d)
			continue
		}
		gone = append(gone, d)
	}
	sort.SliceStable(m.Doses, func(i, j int) bool { return doseLess(m.Doses[i], m.Doses[j]) })
	return gone
}

// match runs the matching definition over the state: taken intakes in
// event-time order (ties by event id) each take the nearest unmatched dose
// whose window contains them (ties: the earlier dose). It returns, per
// dose index, the matched intake (nil: none) and its outcome, and the set
// of unmatched taken intakes.
func (m *MedState) match() (byDose []*Intake, outs []pb.Outcome, extra map[*Intake]bool) {
	byDose = make([]*Intake, len(m.Doses))
	outs = make([]pb.Outcome, len(m.Doses))
	extra = map[*Intake]bool{}
	// Each dose's window is its own version's; the widest bound the search.
	var late, early int64
	for _, h := range m.versions() {
		late, early = max(late, h.spec.Late.Milliseconds()), max(early, h.spec.Early.Milliseconds())
	}
	for _, it := range m.Intakes {
		if !it.Taken || it.Used {
			continue
		}
		// Doses are sorted: only those with At in [T-late, T+early] can
		// hold the intake in their window.
		lo := sort.Search(len(m.Doses), func(i int) bool { return m.Doses[i].At >= it.T-late })
		best := -1
		var bestDist int64
		var bestOut pb.Outcome
		for i := lo; i < len(m.Doses) && m.Doses[i].At <= it.T+early; i++ {
			if byDose[i] != nil {
				continue
			}
			sp := m.specAt(m.Doses[i].At)
			if sp == nil {
				continue
			}
			o, ok := sp.Classify(m.Doses[i].At, it.T)
			if !ok {
				continue
			}
			dist := it.T - m.Doses[i].At
			if dist < 0 {
				dist = -dist
			}
			if best < 0 || dist < bestDist {
				best, bestDist, bestOut = i, dist, o
			}
		}
		if best < 0 {
			extra[it] = true
			continue
		}
		byDose[best], outs[best] = it, bestOut
	}
	return byDose, outs, extra
}

// patientOf returns the patient id of a schedule key "patient|medication".
func patientOf(key string) (string, string, bool) {
	p, m, ok := strings.Cut(key, "|")
	return p, m, ok && p != "" && m != ""
}
