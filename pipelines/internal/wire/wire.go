// Package wire holds the small binary encoding helpers the goka state
// codecs of pipelines/ share: varints, length-prefixed strings and bytes,
// and a Reader that records the first error instead of panicking on
// truncated or corrupt input (state comes from Kafka table topics).
package wire

import (
	"encoding/binary"
	"errors"
)

// ErrTruncated is the Reader's error for input that ends early or holds an
// impossible length.
var ErrTruncated = errors.New("truncated or corrupt")

// AppendString appends a length-prefixed string.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBytes appends a length-prefixed byte slice.
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// AppendUvarint appends an unsigned varint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendVarint appends a signed varint.
func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// Reader reads what the Append functions wrote. After the first error
// every read returns zero values and Err reports it.
//
// The input is copied once into a string and every String is a substring
// of it: decoding a state allocates once for all its strings instead of
// once per string (a patient's adherence state holds dozens). The strings
// keep that copy alive, which is what the callers want anyway (the decoded
// value lives as long as its strings).
type Reader struct {
	s   string
	err error
}

// NewReader returns a Reader over a copy of b.
func NewReader(b []byte) *Reader { return &Reader{s: string(b)} }

// Err returns the first error.
func (r *Reader) Err() error { return r.err }

// Len returns the bytes left.
func (r *Reader) Len() int { return len(r.s) }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break // overflow
			}
			r.s = r.s[i+1:]
			return v | uint64(c)<<(7*i)
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	r.err = ErrTruncated
	return 0
}

// Varint reads a signed (zig-zag) varint.
func (r *Reader) Varint() int64 {
	u := r.Uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// Count reads a collection length and checks that at least min bytes per
// element remain, so corrupt input cannot make the caller allocate huge.
func (r *Reader) Count(min int) int {
	n := r.Uvarint()
	if r.err == nil && n > uint64(len(r.s)/max(min, 1)) {
		r.err = ErrTruncated
		return 0
	}
	return int(n)
}

// Bytes reads a length-prefixed byte slice (a copy of its own).
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err != nil || n > uint64(len(r.s)) {
		r.err = ErrTruncated
		return nil
	}
	if n == 0 {
		return nil
	}
	out := []byte(r.s[:n])
	r.s = r.s[n:]
	return out
}

// String reads a length-prefixed string (a substring of the Reader's copy).
func (r *Reader) String() string {
	n := r.Uvarint()
	if r.err != nil || n > uint64(len(r.s)) {
		r.err = ErrTruncated
		return ""
	}
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil || len(r.s) == 0 {
		r.err = ErrTruncated
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}
