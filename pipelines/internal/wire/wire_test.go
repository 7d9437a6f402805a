package wire

import (
	"encoding/binary"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    uint64
		v    int64
		s    string
		p    []byte
	}{
		{"zero", 0, 0, "", nil},
		{"small", 1, -1, "a", []byte{0}},
		{"max", 1<<64 - 1, -1 << 63, "patient-42", []byte("schedule")},
		{"mid", 300, 1 << 40, "2026-03-29", []byte{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendUvarint(nil, tc.u)
			b = AppendVarint(b, tc.v)
			b = AppendString(b, tc.s)
			b = AppendBytes(b, tc.p)
			b = append(b, 7)
			r := NewReader(b)
			if got := r.Uvarint(); got != tc.u {
				t.Errorf("Uvarint = %d, want %d", got, tc.u)
			}
			if got := r.Varint(); got != tc.v {
				t.Errorf("Varint = %d, want %d", got, tc.v)
			}
			if got := r.String(); got != tc.s {
				t.Errorf("String = %q, want %q", got, tc.s)
			}
			if got := r.Bytes(); string(got) != string(tc.p) || (len(tc.p) == 0) != (got == nil) {
				t.Errorf("Bytes = %v, want %v", got, tc.p)
			}
			if got := r.Byte(); got != 7 || r.Err() != nil || r.Len() != 0 {
				t.Errorf("Byte = %d, err %v, %d left", got, r.Err(), r.Len())
			}
			if r.Byte(); r.Err() == nil {
				t.Error("reading past the end gave no error")
			}
		})
	}
}

// FuzzVarints: the Reader's varints agree with encoding/binary on any
// input, including overlong and truncated encodings.
func FuzzVarints(f *testing.F) {
	f.Add([]byte{0x80})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})
	f.Add(binary.AppendVarint(nil, -12345))
	f.Fuzz(func(t *testing.T, b []byte) {
		wu, wn := binary.Uvarint(b)
		r := NewReader(b)
		gu := r.Uvarint()
		if (wn <= 0) != (r.Err() != nil) || (wn > 0 && (gu != wu || r.Len() != len(b)-wn)) {
			t.Fatalf("Uvarint(%x) = %d, err %v, %d left; binary: %d, %d", b, gu, r.Err(), r.Len(), wu, wn)
		}
		wv, wn := binary.Varint(b)
		r = NewReader(b)
		gv := r.Varint()
		if (wn <= 0) != (r.Err() != nil) || (wn > 0 && gv != wv) {
			t.Fatalf("Varint(%x) = %d, err %v; binary: %d, %d", b, gv, r.Err(), wv, wn)
		}
		// Strings and bytes never panic and never read past the end.
		r = NewReader(b)
		for r.Err() == nil && r.Len() > 0 {
			_ = r.String()
			_ = r.Bytes()
		}
	})
}
