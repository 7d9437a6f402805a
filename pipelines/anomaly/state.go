package anomaly

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// State is one device's state, the value of the group table (keyed by
// device id): the baseline of each patient seen on the device and the open
// alert episodes.
type State struct {
	Tenant   string
	Patients map[string]*Baseline
	// Episodes are the open alert episodes, by alert type and subject: a
	// monitor that measured two patients can have an emergency open for
	// each.
	Episodes map[EpisodeKey]Episode
	// Judged is, per device condition (low battery, device offline: alert
	// type and device), the event time (Unix ms) of the newest reading or
	// status that judged it, open or not: an older one (a redelivery, a
	// device's buffer flushed late) opens no episode the newer one found
	// over. The vitals conditions have their baseline's newest reading.
	Judged map[EpisodeKey]int64
	// Closed are, per condition (vitals emergency and warning, low
	// battery, device offline: alert type and subject), the episodes that
	// ended, newest first, at most [MaxPrevEpisodes]: Start is the
	// episode's start (its alert id's), Last the event time of the reading
	// that ended it, or of the next episode known after it for an episode
	// reported late. A late reading within one (Start <= ev <= Last: a
	// redelivery, a late part of a known episode) changes nothing.
	Closed map[EpisodeKey][]Span
}

// judge notes that an event at ev judged the device condition t of
// subject. It reports whether a newer event judged it before (late) and
// the newest event time that judged it before this one.
func (s *State) judge(t pb.AlertType, subject string, ev int64) (judged int64, late bool) {
	k := EpisodeKey{Type: int32(t), Subject: subject}
	judged, known := s.Judged[k]
	if !known || ev > judged {
		if s.Judged == nil {
			s.Judged = map[EpisodeKey]int64{}
		}
		s.Judged[k] = ev
	}
	return judged, known && ev < judged
}

// closedAt reports whether ev lies within a closed episode of k.
func (s *State) closedAt(k EpisodeKey, ev int64) bool {
	for _, c := range s.Closed[k] {
		if c.Start <= ev && ev <= c.Last {
			return true
		}
	}
	return false
}

// addClosed remembers the closed episode span of condition k, merged with
// the ones it overlaps or touches, newest first, keeping the latest
// MaxPrevEpisodes (a fresh slice: the decoded state's is not shared).
func (s *State) addClosed(k EpisodeKey, span Span) {
	old := s.Closed[k]
	out := make([]Span, 0, len(old)+1)
	for _, c := range old {
		if c.Start <= span.Last && span.Start <= c.Last {
			span = Span{Start: min(span.Start, c.Start), Last: max(span.Last, c.Last)}
			continue
		}
		out = append(out, c)
	}
	out = append(out, span)
	slices.SortFunc(out, func(a, b Span) int { return cmp.Compare(b.Start, a.Start) })
	if s.Closed == nil {
		s.Closed = map[EpisodeKey][]Span{}
	}
	s.Closed[k] = out[:min(len(out), MaxPrevEpisodes)]
}

// EpisodeKey names an open episode: the alert type number and the subject
// (patient, or device when the reading named no patient).
type EpisodeKey struct {
	Type    int32
	Subject string
}

// Episode is an open alert episode: Start (Unix ms) is the alert window
// (and so fixes the alert id); Last is the latest event that continued it.
// SubjectType (alerts.SubjectPatient or SubjectDevice) is the one its
// OPEN request carried, so that its RESOLVED request names the same alert
// id whatever the resolving reading carries.
type Episode struct {
	Start, Last int64
	SubjectType string
	// Prev are earlier episodes of a discrete device event, newest first,
	// at most [MaxPrevEpisodes]: a late report of one (flushed from the
	// device's buffer, in any order) continues it under its own id instead
	// of starting another.
	Prev []Span
}

// Span is an earlier episode: its window start (the alert id's) and its
// latest event (for a closed condition episode in [State.Closed]: its
// end), Unix ms.
type Span struct{ Start, Last int64 }

// MaxPrevEpisodes is how many earlier episodes of a device event, and
// closed episodes of a condition, a state keeps per alert type and
// subject.
const MaxPrevEpisodes = 8

// stateVersion is the format AppendBinary writes. Versions 1 (episodes
// keyed by type alone, without their subject type), 2 (without the
// previous episode), 3 (one previous episode), 4 (baselines without
// the newest reading learned), 5 (without the judged conditions) and 6
// (without the closed condition episodes) are still read.
const (
	stateVersion   = 7
	stateVersionV6 = 6
	stateVersionV1 = 1
	stateVersionV2 = 2
	stateVersionV3 = 3
	stateVersionV4 = 4
	stateVersionV5 = 5
)

// StateCodec is the goka codec of [State]: a compact, versioned binary
// form (the anomaly path is the hottest in wardstream).
type StateCodec struct{}

// Encode implements goka.Codec.
func (StateCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*State)
	if !ok {
		return nil, fmt.Errorf("encoding anomaly state: got %T, want *anomaly.State", v)
	}
	n := 16 + len(s.Tenant) + len(s.Patients)*(2+nMetrics*(10+16)) + len(s.Episodes)*64
	for k, p := range s.Patients {
		n += len(k) + 12
		for _, id := range p.LastIDs {
			n += 2 + len(id)
		}
	}
	for k, e := range s.Episodes {
		n += len(k.Subject) + len(e.SubjectType)
	}
	for k := range s.Judged {
		n += 16 + len(k.Subject)
	}
	for k, c := range s.Closed {
		n += 8 + len(k.Subject) + 20*len(c)
	}
	return s.AppendBinary(make([]byte, 0, n))
}

// AppendBinary appends s's binary form to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b = appendString(b, s.Tenant)
	b = binary.AppendUvarint(b, uint64(len(s.Patients)))
	// In key order, so that equal states encode equally (sorted on the
	// stack for the few keys a device's state has).
	var nameBuf [4]string
	names := nameBuf[:0]
	for k := range s.Patients {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		b = appendBaseline(b, k, s.Patients[k])
	}
	b = binary.AppendUvarint(b, uint64(len(s.Episodes)))
	var keyBuf [4]EpisodeKey
	keys := keyBuf[:0]
	for k := range s.Episodes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		b = appendEpisode(b, k, s.Episodes[k])
	}
	b = binary.AppendUvarint(b, uint64(len(s.Judged)))
	keys = keys[:0]
	for k := range s.Judged {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		b = binary.AppendVarint(b, int64(k.Type))
		b = appendString(b, k.Subject)
		b = binary.AppendVarint(b, s.Judged[k])
	}
	b = binary.AppendUvarint(b, uint64(len(s.Closed)))
	keys = keys[:0]
	for k := range s.Closed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		b = binary.AppendVarint(b, int64(k.Type))
		b = appendString(b, k.Subject)
		c := s.Closed[k]
		b = binary.AppendUvarint(b, uint64(len(c)))
		for _, sp := range c {
			b = binary.AppendVarint(b, sp.Start)
			b = binary.AppendVarint(b, sp.Last)
		}
	}
	return b, nil
}

func compareKeys(x, y EpisodeKey) int {
	if c := cmp.Compare(x.Type, y.Type); c != 0 {
		return c
	}
	return strings.Compare(x.Subject, y.Subject)
}

func appendBaseline(b []byte, name string, p *Baseline) []byte {
	b = appendString(b, name)
	for m := 0; m < nMetrics; m++ {
		b = binary.AppendUvarint(b, uint64(p.N[m]))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Mean[m]))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Var[m]))
	}
	b = binary.AppendVarint(b, p.Last)
	b = binary.AppendUvarint(b, uint64(len(p.LastIDs)))
	for _, id := range p.LastIDs {
		b = appendString(b, id)
	}
	return b
}

func appendEpisode(b []byte, k EpisodeKey, e Episode) []byte {
	b = binary.AppendVarint(b, int64(k.Type))
	b = binary.AppendVarint(b, e.Start)
	b = binary.AppendVarint(b, e.Last)
	b = appendString(b, k.Subject)
	b = appendString(b, e.SubjectType)
	b = binary.AppendUvarint(b, uint64(len(e.Prev)))
	for _, pv := range e.Prev {
		b = binary.AppendVarint(b, pv.Start)
		b = binary.AppendVarint(b, pv.Last)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errShort = errors.New("truncated")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) f64() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errShort
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// names are the names a state decoding read so far: subjects repeat
// them (a subject is usually a patient's or the device's name).
type names struct {
	buf [8]string
	n   int
}

// name reads a string like str, returning one of known when the bytes
// equal it, else adding the new string to known while it has room.
func (r *reader) name(known *names) string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return ""
	}
	bs := r.b[:n]
	r.b = r.b[n:]
	for _, k := range known.buf[:known.n] {
		if k == string(bs) {
			return k
		}
	}
	t := string(bs)
	if known.n < len(known.buf) {
		known.buf[known.n] = t
		known.n++
	}
	return t
}

// lastTenant is the tenant of the state decoded last (tenants repeat).
var lastTenant atomic.Pointer[string]

// tenant reads a string like str, returning the string of lastTenant when
// the bytes equal it.
func (r *reader) tenant() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return ""
	}
	bs := r.b[:n]
	r.b = r.b[n:]
	if t := lastTenant.Load(); t != nil && *t == string(bs) {
		return *t
	}
	t := string(bs)
	lastTenant.Store(&t)
	return t
}

// Decode implements goka.Codec.
func (StateCodec) Decode(b []byte) (any, error) {
	s, err := DecodeState(b)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeState parses the binary form of a State.
func DecodeState(b []byte) (*State, error) {
	if len(b) == 0 || b[0] < stateVersionV1 || b[0] > stateVersion {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): unknown format version", len(b))
	}
	format := b[0]
	r := reader{b: b[1:]}
	// The state and its first baseline (a monitor usually measures one
	// patient) are one allocation; the tenant is shared with the previous
	// state decoded when it is the same.
	one := &struct {
		s   State
		b   Baseline
		ids [1]string // the first baseline's newest reading's: usually one
	}{}
	s := &one.s
	s.Tenant = r.tenant()
	// The names read so far: subjects repeat them.
	var known names
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d patients cannot fit", len(b), n)
	}
	if n > 0 {
		s.Patients = make(map[string]*Baseline, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.name(&known)
		p := &one.b
		if i > 0 {
			p = &Baseline{}
		}
		for m := 0; m < nMetrics; m++ {
			p.N[m] = int64(r.uvarint())
			p.Mean[m] = r.f64()
			p.Var[m] = r.f64()
		}
		if format >= stateVersionV5 {
			p.Last = r.varint()
			nid := r.uvarint()
			if nid > MaxLastIDs {
				return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d ids of the newest reading, at most %d", len(b), nid, MaxLastIDs)
			}
			if nid > 0 && r.err == nil {
				if p == &one.b && nid == 1 {
					p.LastIDs = one.ids[:0:1]
				} else {
					p.LastIDs = make([]string, 0, nid)
				}
				for range nid {
					p.LastIDs = append(p.LastIDs, r.str())
				}
			}
		}
		s.Patients[k] = p
	}
	n = r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d episodes cannot fit", len(b), n)
	}
	if n > 0 {
		s.Episodes = make(map[EpisodeKey]Episode, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := EpisodeKey{Type: int32(r.varint())}
		e := Episode{Start: r.varint(), Last: r.varint()}
		k.Subject = r.name(&known)
		if format >= stateVersionV2 {
			e.SubjectType = r.str()
		}
		switch {
		case format == stateVersionV3:
			if start, last := r.varint(), r.varint(); start != 0 {
				e.Prev = []Span{{Start: start, Last: last}}
			}
		case format >= stateVersionV4:
			np := r.uvarint()
			if np > MaxPrevEpisodes {
				return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d earlier episodes, at most %d", len(b), np, MaxPrevEpisodes)
			}
			for range np {
				if r.err != nil {
					break
				}
				e.Prev = append(e.Prev, Span{Start: r.varint(), Last: r.varint()})
			}
		}
		if _, dup := s.Episodes[k]; dup && r.err == nil {
			return nil, fmt.Errorf("decoding anomaly state (%d bytes): episode %d/%q twice", len(b), k.Type, k.Subject)
		}
		s.Episodes[k] = e
	}
	if format >= stateVersionV6 && r.err == nil {
		n = r.uvarint()
		if n > uint64(len(r.b)) {
			return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d judged conditions cannot fit", len(b), n)
		}
		if n > 0 {
			s.Judged = make(map[EpisodeKey]int64, n)
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			k := EpisodeKey{Type: int32(r.varint())}
			k.Subject = r.name(&known)
			ev := r.varint()
			if _, dup := s.Judged[k]; dup && r.err == nil {
				return nil, fmt.Errorf("decoding anomaly state (%d bytes): condition %d/%q judged twice", len(b), k.Type, k.Subject)
			}
			s.Judged[k] = ev
		}
	}
	if format >= stateVersion && r.err == nil {
		n = r.uvarint()
		if n > uint64(len(r.b)) {
			return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d closed conditions cannot fit", len(b), n)
		}
		// Every condition's spans in one slab (a span takes 2 bytes or more).
		var slab []Span
		if n > 0 {
			s.Closed = make(map[EpisodeKey][]Span, n)
			slab = make([]Span, 0, min(uint64(len(r.b)/2), n*MaxPrevEpisodes))
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			k := EpisodeKey{Type: int32(r.varint())}
			k.Subject = r.name(&known)
			np := r.uvarint()
			if np == 0 || np > MaxPrevEpisodes {
				return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d closed episodes, 1 to %d", len(b), np, MaxPrevEpisodes)
			}
			from := len(slab)
			for range np {
				if r.err != nil || len(slab) == cap(slab) {
					r.err = cmp.Or(r.err, errShort)
					break
				}
				slab = append(slab, Span{Start: r.varint(), Last: r.varint()})
			}
			c := slab[from:len(slab):len(slab)]
			if _, dup := s.Closed[k]; dup && r.err == nil {
				return nil, fmt.Errorf("decoding anomaly state (%d bytes): closed condition %d/%q twice", len(b), k.Type, k.Subject)
			}
			s.Closed[k] = c
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %w", len(b), r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d trailing bytes", len(b), len(r.b))
	}
	return s, nil
}
