package api

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// userKey is the bucket key of one tenant's user (rate limits, live
// streams). The tenant's length comes first, so that no two (tenant, user)
// pairs share a key whatever the claims hold: joined with "/" alone, tenant
// "a/b" user "c" and tenant "a" user "b/c" shared one bucket. It starts
// with a digit, so it never equals a failed-authentication key ("addr:").
func userKey(tenant, user string) string {
	return strconv.Itoa(len(tenant)) + ":" + tenant + "/" + user
}

// Limiter is a per-user token bucket: each user may make Burst requests at
// once and Rate requests per second sustained. It is safe for concurrent
// use and bounded: it tracks at most MaxUsers buckets, dropping the idlest
// ones (which were full anyway after Burst/Rate seconds) when full.
type Limiter struct {
	rate     float64
	burst    float64
	maxUsers int
	now      func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter; now is the clock (time.Now when nil).
func NewLimiter(rate float64, burst, maxUsers int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, burst: float64(burst), maxUsers: maxUsers, now: now, buckets: map[string]*bucket{}}
}

// Allow takes one token from user's bucket. When the bucket is empty it
// returns false and how long until a token is available.
func (l *Limiter) Allow(user string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[user]
	if !ok {
		if len(l.buckets) >= l.maxUsers {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[user] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// evict drops buckets that have refilled completely (they carry no
// state), and if none has, the least recently used one. Called with mu held.
func (l *Limiter) evict(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	var oldestUser string
	var oldest time.Time
	for u, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, u)
			continue
		}
		if oldestUser == "" || b.last.Before(oldest) {
			oldestUser, oldest = u, b.last
		}
	}
	if len(l.buckets) >= l.maxUsers && oldestUser != "" {
		delete(l.buckets, oldestUser)
	}
}

// Len returns how many users are tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
