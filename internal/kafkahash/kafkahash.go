// Package kafkahash provides the hash goka must partition with in
// wardstream: Kafka's default (Java client and franz-go) key partitioning,
// toPositive(murmur2(key)) % partitions.
//
// Why: every producer outside the goka groups (the MQTT connector, the API,
// `wardstream schedules apply`, the bench) is a franz-go client using
// Kafka's default partitioner, while goka by default hashes keys with
// FNV-1a for its loopback, table and output topics. With the two hashes a
// patient's intakes and the loopback copy of their schedule land in
// different partitions, and so in different partition tables: the state
// splits. goka.WithHasher(kafkahash.New) makes goka agree with everyone.
package kafkahash

import "hash"

// Hash is a hash.Hash32 whose Sum32 is Kafka's positive murmur2 of the
// bytes written, so that sarama's hash partitioner (int32(Sum32()) %
// partitions) equals Kafka's default partitioner.
type Hash struct{ b []byte }

// New returns a new Hash; it is goka's hasher constructor.
func New() hash.Hash32 { return &Hash{} }

// Write implements hash.Hash.
func (h *Hash) Write(p []byte) (int, error) { h.b = append(h.b, p...); return len(p), nil }

// Sum implements hash.Hash.
func (h *Hash) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

// Reset implements hash.Hash.
func (h *Hash) Reset() { h.b = h.b[:0] }

// Size implements hash.Hash.
func (h *Hash) Size() int { return 4 }

// BlockSize implements hash.Hash.
func (h *Hash) BlockSize() int { return 4 }

// Sum32 implements hash.Hash32: murmur2 with the sign bit cleared.
func (h *Hash) Sum32() uint32 { return Murmur2(h.b) & 0x7fffffff }

// Murmur2 is Kafka's murmur2 (seed 0x9747b28c), as the Java client and
// franz-go compute it.
func Murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[3])<<24 + uint32(b[2])<<16 + uint32(b[1])<<8 + uint32(b[0])
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
