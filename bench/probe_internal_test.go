package bench

import (
	"testing"
	"time"
)

func TestProbeInterval(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	base := 250 * time.Millisecond
	for _, tc := range []struct {
		name   string
		oldest time.Duration // age of the oldest outstanding probe; 0: none
		want   time.Duration
	}{
		{"nothing outstanding", 0, base},
		{"fresh probes", time.Second, base},
		{"5 s backlog", 5 * time.Second, base},
		{"20 s backlog", 20 * time.Second, time.Second},
		{"long backlog is capped", 5 * time.Minute, probeMaxInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{outstanding: map[string]probe{}}
			if tc.oldest > 0 {
				h.outstanding["a"] = probe{id: "a", eventTime: now.Add(-tc.oldest)}
				h.outstanding["b"] = probe{id: "b", eventTime: now.Add(-tc.oldest / 2)}
			}
			if got := h.probeInterval(base, now); got != tc.want {
				t.Fatalf("interval %v, want %v", got, tc.want)
			}
			if tc.oldest > 0 && h.resolution != tc.want {
				t.Fatalf("resolution %v, want %v", h.resolution, tc.want)
			}
		})
	}
}
