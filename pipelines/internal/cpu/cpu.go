// Package cpu measures the CPU time of the current process (user + system,
// all threads), so that benchmarks can report work per CPU-second, which
// stays meaningful on a machine shared with other load where wall time does
// not.
package cpu

import (
	"syscall"
	"time"
)

// Time returns the process's CPU time so far (0 if unavailable).
func Time() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
