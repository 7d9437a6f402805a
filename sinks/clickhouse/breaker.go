package clickhouse

import (
	"math/rand/v2"
	"time"
)

// breaker is a consecutive-failure circuit breaker with exponential
// backoff. While closed, a failed insert is retried after a backoff that
// doubles from base to max; after threshold consecutive failures it opens,
// and then only one probe insert is tried per cooldown until one succeeds.
// It is not safe for concurrent use (the sink's flights use it under s.mu).
type breaker struct {
	base, max, cooldown time.Duration
	threshold           int
	failures            int
}

// open reports whether the breaker is open.
func (b *breaker) open() bool { return b.failures >= b.threshold }

// success closes the breaker.
func (b *breaker) success() { b.failures = 0 }

// failure records a failure and returns how long to wait before the next
// attempt.
func (b *breaker) failure() time.Duration {
	b.failures++
	if b.open() {
		return b.cooldown
	}
	d := b.base << (b.failures - 1)
	if d > b.max || d <= 0 {
		d = b.max
	}
	// Full jitter on the upper half so that replicas do not retry in step.
	return d/2 + rand.N(d/2+1)
}
