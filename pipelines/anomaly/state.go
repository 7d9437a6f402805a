package anomaly

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
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
	// PrevStart and PrevLast are the previous episode of a discrete device
	// event (0 when none): a late report of it (flushed from the device's
	// buffer) continues it under its own id instead of starting another.
	PrevStart, PrevLast int64
}

// stateVersion is the format AppendBinary writes. Versions 1 (episodes
// keyed by type alone, without their subject type) and 2 (without the
// previous episode) are still read.
const (
	stateVersion   = 3
	stateVersionV1 = 1
	stateVersionV2 = 2
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
	return s.AppendBinary(make([]byte, 0, 64+len(s.Patients)*(16+nMetrics*24)))
}

// AppendBinary appends s's binary form to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b = appendString(b, s.Tenant)
	names := make([]string, 0, len(s.Patients))
	for k := range s.Patients {
		names = append(names, k)
	}
	sort.Strings(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		p := s.Patients[k]
		b = appendString(b, k)
		for m := 0; m < nMetrics; m++ {
			b = binary.AppendUvarint(b, uint64(p.N[m]))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Mean[m]))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Var[m]))
		}
	}
	keys := make([]EpisodeKey, 0, len(s.Episodes))
	for k := range s.Episodes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Type != keys[j].Type {
			return keys[i].Type < keys[j].Type
		}
		return keys[i].Subject < keys[j].Subject
	})
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		e := s.Episodes[k]
		b = binary.AppendVarint(b, int64(k.Type))
		b = binary.AppendVarint(b, e.Start)
		b = binary.AppendVarint(b, e.Last)
		b = appendString(b, k.Subject)
		b = appendString(b, e.SubjectType)
		b = binary.AppendVarint(b, e.PrevStart)
		b = binary.AppendVarint(b, e.PrevLast)
	}
	return b, nil
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
	if len(b) == 0 || b[0] != stateVersion && b[0] != stateVersionV1 && b[0] != stateVersionV2 {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): unknown format version", len(b))
	}
	format := b[0]
	r := &reader{b: b[1:]}
	s := &State{Tenant: r.str()}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d patients cannot fit", len(b), n)
	}
	if n > 0 {
		s.Patients = make(map[string]*Baseline, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.str()
		p := &Baseline{}
		for m := 0; m < nMetrics; m++ {
			p.N[m] = int64(r.uvarint())
			p.Mean[m] = r.f64()
			p.Var[m] = r.f64()
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
		k.Subject = r.str()
		if format >= stateVersionV2 {
			e.SubjectType = r.str()
		}
		if format >= stateVersion {
			e.PrevStart, e.PrevLast = r.varint(), r.varint()
		}
		if _, dup := s.Episodes[k]; dup && r.err == nil {
			return nil, fmt.Errorf("decoding anomaly state (%d bytes): episode %d/%q twice", len(b), k.Type, k.Subject)
		}
		s.Episodes[k] = e
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %w", len(b), r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d trailing bytes", len(b), len(r.b))
	}
	return s, nil
}
