package events_test

import (
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/rtsp/events"
)

// TestClockStepBackKeepsEpisode: a session switching from the local frame
// clock to a camera NTP clock 15 s behind ours (the connector accepts up
// to 30 s) steps frame times back by more than the debounce. The person
// standing there all along is still one PERSON_DETECTED and one
// UNAUTHORIZED_ACCESS, not a second of each with new ids.
func TestClockStepBackKeepsEpisode(t *testing.T) {
	cfg := events.DefaultConfig()
	cfg.Areas = []events.Area{{Name: "med", Restricted: true, Polygon: [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}}}}
	p := person(0.9, 0.6, 0.5, 0.2, 0.3)
	steps := concat(every(0, 5*time.Second, p), every(-10*time.Second, 10*time.Second, p))
	got := run(t, cfg, base, steps)
	if types(got) != "PERSON_DETECTED,UNAUTHORIZED_ACCESS,OCCUPANCY_CHANGED" {
		t.Fatalf("events %q after a 15 s clock step back, want one of each", types(got))
	}
}
