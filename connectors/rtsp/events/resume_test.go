package events_test

import (
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/rtsp/events"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestResumeAfterRestart: a restarted connector rebuilds each camera's
// engine by replaying the frames it produced before (Observe, outputs
// discarded) and then calls Resume. The person who stood in the
// restricted area all along must not become new events because the
// connector was down for a while; one who left and came back after the
// debounce, or a gap longer than max_gap, must.
func TestResumeAfterRestart(t *testing.T) {
	cfg := events.DefaultConfig() // debounce 10 s, occupancy stable 3 s
	cfg.Areas = []events.Area{{Name: "med", Restricted: true, Polygon: [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}}}}
	inMed := person(0.9, 0.6, 0.5, 0.2, 0.3)
	const maxGap = 2 * time.Minute
	cases := []struct {
		name   string
		before []step // replayed: produced before the restart
		resume bool
		after  []step // live after the restart
		want   string // events raised live
	}{
		{"no restart state: the old behaviour, everything again", nil, true,
			every(0, 5*time.Second, inMed), "PERSON_DETECTED,UNAUTHORIZED_ACCESS,OCCUPANCY_CHANGED"},
		{"down 3 s, still there", every(0, 30*time.Second, inMed), true,
			every(33*time.Second, 40*time.Second, inMed), ""},
		{"down 45 s (past the debounce), still there", every(0, 30*time.Second, inMed), true,
			every(75*time.Second, 80*time.Second, inMed), ""},
		{"down 45 s, replayed but not resumed: the gap counts", every(0, 30*time.Second, inMed), false,
			every(75*time.Second, 80*time.Second, inMed), "PERSON_DETECTED,UNAUTHORIZED_ACCESS"},
		{"down 3 min (past max_gap)", every(0, 30*time.Second, inMed), true,
			every(210*time.Second, 215*time.Second, inMed), "PERSON_DETECTED,UNAUTHORIZED_ACCESS"},
		{"gone 20 s before the restart, back after it", concat(every(0, 10*time.Second, inMed), every(10*time.Second, 30*time.Second)), true,
			every(33*time.Second, 40*time.Second, inMed), "PERSON_DETECTED,UNAUTHORIZED_ACCESS,OCCUPANCY_CHANGED"},
		{"down 3 s, empty room after it: gone, occupancy 0 once", every(0, 30*time.Second, inMed), true,
			every(33*time.Second, 40*time.Second), "OCCUPANCY_CHANGED"},
		{"down 3 s, back 15 s after the restart: a new episode", every(0, 30*time.Second, inMed), true,
			concat(every(33*time.Second, 48*time.Second), every(48*time.Second, 55*time.Second, inMed)), "OCCUPANCY_CHANGED,PERSON_DETECTED,UNAUTHORIZED_ACCESS,OCCUPANCY_CHANGED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := events.NewEngine(cam, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.before {
				e.Observe(frame(base+s.at.Milliseconds(), s.dets...))
			}
			if c.resume {
				e.Resume(maxGap)
			}
			var got []*pb.VideoEvent
			for _, s := range c.after {
				got = append(got, e.Observe(frame(base+s.at.Milliseconds(), s.dets...))...)
			}
			if types(got) != c.want {
				t.Errorf("live events %q, want %q", types(got), c.want)
			}
		})
	}
}

// TestResumeKeepsEventIDs: the replay yields the same episode as the live
// run did, so an event the restarted engine raises for the same episode
// (none) or for a later one has the id an uninterrupted engine gives it.
func TestResumeKeepsEventIDs(t *testing.T) {
	cfg := events.DefaultConfig()
	p := person(0.95, 0.1, 0.1, 0.2, 0.3)
	steps := concat(every(0, 20*time.Second, p), every(20*time.Second, 35*time.Second), every(35*time.Second, 40*time.Second, p))
	whole := run(t, cfg, base, steps)
	e, err := events.NewEngine(cam, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var replayed, live []*pb.VideoEvent
	for _, s := range steps {
		if s.at < 25*time.Second {
			replayed = append(replayed, e.Observe(frame(base+s.at.Milliseconds(), s.dets...))...)
			continue
		}
		if s.at == 25*time.Second {
			e.Resume(time.Minute)
		}
		live = append(live, e.Observe(frame(base+s.at.Milliseconds(), s.dets...))...)
	}
	all := append(replayed, live...)
	if types(all) != types(whole) {
		t.Fatalf("replay + live raised %q, an uninterrupted engine %q", types(all), types(whole))
	}
	for i := range all {
		if all[i].GetMeta().GetEventId() != whole[i].GetMeta().GetEventId() {
			t.Errorf("event %d (%s): id %s, uninterrupted %s", i, all[i].EventType, all[i].GetMeta().GetEventId(), whole[i].GetMeta().GetEventId())
		}
	}
}
