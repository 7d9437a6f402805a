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
	// Episodes are open alert episodes by alert type number.
	Episodes map[int32]Episode
}

// Episode is an open alert episode: Start (Unix ms) is the alert window
// (and so fixes the alert id); Last is the latest event that continued it.
type Episode struct {
	Start, Last int64
	Subject     string
}

const stateVersion = 1

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
	types := make([]int32, 0, len(s.Episodes))
	for k := range s.Episodes {
		types = append(types, k)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	b = binary.AppendUvarint(b, uint64(len(types)))
	for _, t := range types {
		e := s.Episodes[t]
		b = binary.AppendVarint(b, int64(t))
		b = binary.AppendVarint(b, e.Start)
		b = binary.AppendVarint(b, e.Last)
		b = appendString(b, e.Subject)
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
	if len(b) == 0 || b[0] != stateVersion {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): unknown format version", len(b))
	}
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
		s.Episodes = make(map[int32]Episode, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		t := int32(r.varint())
		e := Episode{Start: r.varint(), Last: r.varint(), Subject: r.str()}
		s.Episodes[t] = e
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %w", len(b), r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decoding anomaly state (%d bytes): %d trailing bytes", len(b), len(r.b))
	}
	return s, nil
}
