// Package dose holds what the dose-schedule contract fixes beyond the
// DoseSchedule message's fields: the defaults of its windows (a zero field
// means the default) and the rule that neither the early nor the late
// window may be shorter than the grace period.
//
// Why a package of its own: whoever writes schedules (the API validates
// them before publishing) and the processors that apply them
// (pipelines/schedule) must agree on it, and roles may share only schemas
// and internal (STYLE.md dependency rule). A schedule the API accepted and
// the processors refused was dead-lettered after the API had answered 201.
package dose

import "fmt"

// Defaults of the dose windows, in minutes (the seed's 15-minute rule for
// grace).
const (
	DefaultGraceMinutes = 15
	DefaultEarlyMinutes = 60
	DefaultLateMinutes  = 240
)

// Windows returns the grace, early and late windows in minutes, zeros
// replaced by their defaults.
func Windows(grace, early, late int32) (int32, int32, int32) {
	or := func(v, def int32) int32 {
		if v == 0 {
			return def
		}
		return v
	}
	return or(grace, DefaultGraceMinutes), or(early, DefaultEarlyMinutes), or(late, DefaultLateMinutes)
}

// CheckWindows reports the windows (zeros standing for the defaults) that
// are shorter than the grace period: an intake within grace of a dose is
// on time, so the early and late windows must reach at least that far.
func CheckWindows(grace, early, late int32) []error {
	g, e, l := Windows(grace, early, late)
	var errs []error
	if e < g {
		errs = append(errs, fmt.Errorf("early window %d minutes is shorter than grace %d minutes (0 means %d and %d)", e, g, DefaultEarlyMinutes, DefaultGraceMinutes))
	}
	if l < g {
		errs = append(errs, fmt.Errorf("late window %d minutes is shorter than grace %d minutes (0 means %d and %d)", l, g, DefaultLateMinutes, DefaultGraceMinutes))
	}
	return errs
}
