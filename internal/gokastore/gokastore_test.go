package gokastore_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/lovoo/goka/storage"

	"github.com/wardstream/wardstream/internal/gokastore"
)

func keysOf(t *testing.T, it storage.Iterator) []string {
	t.Helper()
	var out []string
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(it.Key())+"="+string(v))
	}
	return out
}

// TestAgainstGokaMemory: the same random writes and deletes give the same
// contents and the same sorted iteration as goka's own memory storage.
func TestAgainstGokaMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ours, ref := gokastore.New(), storage.NewMemory()
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("k%03d", rng.IntN(500))
		if rng.IntN(4) == 0 {
			if err := ours.Delete(k); err != nil {
				t.Fatal(err)
			}
			_ = ref.Delete(k)
			continue
		}
		v := []byte(fmt.Sprint(i))
		if err := ours.Set(k, v); err != nil {
			t.Fatal(err)
		}
		_ = ref.Set(k, v)
	}
	for i := 0; i < 500; i++ {
		k := fmt.Sprintf("k%03d", i)
		a, _ := ours.Get(k)
		b, _ := ref.Get(k)
		ha, _ := ours.Has(k)
		hb, _ := ref.Has(k)
		if string(a) != string(b) || ha != hb {
			t.Fatalf("%s: %q/%v vs goka %q/%v", k, a, ha, b, hb)
		}
	}
	ia, _ := ours.Iterator()
	ib, _ := ref.Iterator()
	a, b := keysOf(t, ia), keysOf(t, ib)
	if fmt.Sprint(a) != fmt.Sprint(b) || !sort.StringsAreSorted(a) {
		t.Fatalf("iteration differs from goka's memory storage:\n%v\n%v", a, b)
	}
}

func TestIteratorSnapshotSeekRangeOffset(t *testing.T) {
	s := gokastore.New()
	for _, k := range []string{"b", "d", "a", "c"} {
		_ = s.Set(k, []byte(k))
	}
	it, _ := s.Iterator()
	_ = s.Set("e", []byte("e")) // not in the snapshot
	_ = s.Delete("a")           // still in the snapshot
	if got := fmt.Sprint(keysOf(t, it)); got != "[a=a b=b c=c d=d]" {
		t.Fatalf("snapshot: %s", got)
	}
	it, _ = s.Iterator()
	if !it.Seek([]byte("c")) || !it.Next() || string(it.Key()) != "c" {
		t.Fatalf("seek c: at %q", it.Key())
	}
	it.Release()
	if it.Next() || it.Key() != nil {
		t.Fatal("released iterator still yields")
	}
	r, _ := s.IteratorWithRange([]byte("b"), []byte("d"))
	if got := fmt.Sprint(keysOf(t, r)); got != "[b=b c=c]" {
		t.Fatalf("range [b, d): %s", got)
	}
	if o, _ := s.GetOffset(-2); o != -2 {
		t.Fatalf("offset before set: %d", o)
	}
	_ = s.SetOffset(42)
	if o, _ := s.GetOffset(-2); o != 42 {
		t.Fatalf("offset: %d", o)
	}
	if err := s.Set("x", nil); err == nil {
		t.Fatal("nil value accepted")
	}
}

// TestConcurrentReadersOneWriter: goka's contract (run with -race).
func TestConcurrentReadersOneWriter(t *testing.T) {
	s := gokastore.New()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			_ = s.Set(fmt.Sprint(i%100), []byte("v"))
		}
	}()
	for r := 0; r < 2; r++ {
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, _ = s.Get(fmt.Sprint(i % 100))
				it, _ := s.Iterator()
				for it.Next() {
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkFill: filling a table with n new keys; goka's memory storage
// sorts all keys on every new one.
func BenchmarkFill(b *testing.B) {
	for _, n := range []int{1_000, 20_000} {
		for _, impl := range []struct {
			name string
			new  func() storage.Storage
		}{{"gokastore", func() storage.Storage { return gokastore.New() }}, {"goka-memory", storage.NewMemory}} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, n), func(b *testing.B) {
				keys := make([]string, n)
				for i := range keys {
					keys[i] = fmt.Sprintf("device-%08d", rand.IntN(1<<30))
				}
				for i := 0; i < b.N; i++ {
					s := impl.new()
					for _, k := range keys {
						_ = s.Set(k, []byte("v"))
					}
				}
			})
		}
	}
}
