package events_test

import (
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/rtsp/events"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestRestrictedAreaAtFrameBottom: the detector clamps boxes to the
// frame, so a person close to the camera (cut off by the bottom of the
// picture) has feet at y = 1 exactly. A restricted area drawn down to the
// bottom edge of the frame (here the bottom-right quadrant, as in
// TestEngine) must still see that person: UNAUTHORIZED_ACCESS.
func TestRestrictedAreaAtFrameBottom(t *testing.T) {
	cfg := events.DefaultConfig()
	cfg.Areas = []events.Area{{Name: "med", Zone: "ward-1/med-area", Restricted: true,
		Polygon: [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}}}}
	// Feet at (0.7, 1.0): inside the quadrant, on the frame's bottom border.
	cut := person(0.9, 0.6, 0.5, 0.2, 0.5)
	evs := run(t, cfg, base, every(0, 2*time.Second, cut))
	for _, ev := range evs {
		if ev.EventType == pb.VideoEventType_UNAUTHORIZED_ACCESS {
			return
		}
	}
	t.Fatalf("person with feet at the bottom of the frame inside the restricted area: events %q, want UNAUTHORIZED_ACCESS", types(evs))
}
