// Package gokastore is an in-memory goka table storage (goka's
// storage.Storage) whose writes cost O(1).
//
// Why not goka's storage.NewMemory: its Set sorts the whole key slice
// every time a new key arrives, and its Delete scans it, so filling a
// table of n keys costs O(n² log n). With the fleet bench's 100k devices
// and the alerts group's growing set of alert ids that sort was 44% of the
// processors' CPU (profile of 2026-12-01). Here Set and Delete touch only
// the map; an iterator (goka's VisitAll, the clock of the adherence and
// alerts groups) takes a sorted snapshot, O(n log n) once per visit.
//
// Like goka's memory storage it is lost with the process: the table is
// recovered from its Kafka topic on start (set pipelines.storage_dir for
// LevelDB instead).
package gokastore

import (
	"errors"
	"sort"
	"sync"

	"github.com/lovoo/goka/storage"
)

// Store is one partition's table.
type Store struct {
	mu     sync.RWMutex
	m      map[string][]byte
	offset *int64
}

var _ storage.Storage = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{m: map[string][]byte{}} }

// Builder builds one Store per topic partition.
func Builder() storage.Builder {
	return func(string, int32) (storage.Storage, error) { return New(), nil }
}

// Open implements storage.Storage.
func (s *Store) Open() error { return nil }

// Close implements storage.Storage.
func (s *Store) Close() error { return nil }

// MarkRecovered implements storage.Storage.
func (s *Store) MarkRecovered() error { return nil }

// Has implements storage.Storage.
func (s *Store) Has(key string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[key]
	return ok, nil
}

// Get implements storage.Storage: nil for a missing key.
func (s *Store) Get(key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[key], nil
}

// Set implements storage.Storage.
func (s *Store) Set(key string, value []byte) error {
	if value == nil {
		return errors.New("gokastore: cannot write a nil value")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = value
	return nil
}

// Delete implements storage.Storage.
func (s *Store) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// GetOffset implements storage.Storage.
func (s *Store) GetOffset(def int64) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.offset == nil {
		return def, nil
	}
	return *s.offset, nil
}

// SetOffset implements storage.Storage.
func (s *Store) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset = &offset
	return nil
}

// Iterator implements storage.Storage: a sorted snapshot; later writes do
// not show.
func (s *Store) Iterator() (storage.Iterator, error) { return s.IteratorWithRange(nil, nil) }

// IteratorWithRange implements storage.Storage: the keys in [start,
// limit) (nil: unbounded), sorted.
func (s *Store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	s.mu.RLock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		if (start == nil || k >= string(start)) && (limit == nil || k < string(limit)) {
			keys = append(keys, k)
		}
	}
	vals := make(map[string][]byte, len(keys))
	for _, k := range keys {
		vals[k] = s.m[k]
	}
	s.mu.RUnlock()
	sort.Strings(keys)
	return &iter{i: -1, keys: keys, vals: vals}, nil
}

type iter struct {
	i    int
	keys []string
	vals map[string][]byte
}

func (it *iter) Next() bool {
	if it.i < len(it.keys) {
		it.i++
	}
	return it.i < len(it.keys)
}

func (it *iter) Err() error { return nil }

func (it *iter) Key() []byte {
	if it.i < 0 || it.i >= len(it.keys) {
		return nil
	}
	return []byte(it.keys[it.i])
}

func (it *iter) Value() ([]byte, error) {
	if it.i < 0 || it.i >= len(it.keys) {
		return nil, nil
	}
	return it.vals[it.keys[it.i]], nil
}

func (it *iter) Release() { it.i = len(it.keys) }

// Seek positions the iterator before the first key >= key: Next then
// yields it.
func (it *iter) Seek(key []byte) bool {
	j := sort.SearchStrings(it.keys, string(key))
	it.i = j - 1
	return j < len(it.keys)
}
