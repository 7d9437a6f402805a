package api_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/api"
)

func TestLimiterBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := api.NewLimiter(2, 4, 10, func() time.Time { return now })
	for i := 0; i < 4; i++ {
		if ok, _ := l.Allow("u"); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, wait := l.Allow("u")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("5th: ok=%v wait=%v, want refused with 500ms", ok, wait)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("u"); !ok {
		t.Fatal("refused after refill")
	}
	now = now.Add(time.Hour) // refills to burst, never beyond
	n := 0
	for {
		if ok, _ := l.Allow("u"); !ok {
			break
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%d requests after a long idle, want the burst 4", n)
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := api.NewLimiter(1, 2, 100, func() time.Time { return now })
	for i := 0; i < 1000; i++ {
		l.Allow(fmt.Sprint("user-", i))
		now = now.Add(time.Millisecond)
	}
	if l.Len() > 100 {
		t.Fatalf("tracks %d users, bound 100", l.Len())
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := api.NewLimiter(1, 50, 1000, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if ok, _ := l.Allow("shared"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed < 50 || allowed > 52 {
		t.Fatalf("%d of 400 concurrent requests allowed, want the burst 50 (+refill)", allowed)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := api.NewLimiter(1e9, 1e9, 100000, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("tenant/user")
		}
	})
}
