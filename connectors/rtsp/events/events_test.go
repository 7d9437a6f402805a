package events_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/rtsp/events"
	"github.com/wardstream/wardstream/internal/config"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

var cam = events.Camera{ID: "cam-1", Tenant: "t1", Zone: "ward-1/room-1", Location: "room 1", Ward: "ward-1"}

// base is 2026-01-05 12:00:00 UTC.
var base = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC).UnixMilli()

func person(conf float32, x, y, w, h float32) *pb.Detection {
	return &pb.Detection{ClassName: "person", Confidence: conf, Box: &pb.Box{X: x, Y: y, W: w, H: h}}
}

func frame(tms int64, dets ...*pb.Detection) *pb.FrameDetections {
	return &pb.FrameDetections{CameraId: cam.ID, FrameTimeMs: tms, Detections: dets}
}

type step struct {
	at   time.Duration
	dets []*pb.Detection
}

func run(t *testing.T, cfg events.Config, start int64, steps []step) []*pb.VideoEvent {
	t.Helper()
	e, err := events.NewEngine(cam, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.VideoEvent
	for _, s := range steps {
		out = append(out, e.Observe(frame(start+s.at.Milliseconds(), s.dets...))...)
	}
	return out
}

// every returns steps every 200 ms (5 fps) from from to to with dets.
func every(from, to time.Duration, dets ...*pb.Detection) []step {
	var s []step
	for at := from; at < to; at += 200 * time.Millisecond {
		s = append(s, step{at, dets})
	}
	return s
}

func concat(ss ...[]step) []step {
	var out []step
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

func types(evs []*pb.VideoEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.EventType.String())
	}
	return strings.Join(s, ",")
}

func TestEngine(t *testing.T) {
	restricted := events.DefaultConfig()
	restricted.Areas = []events.Area{{Name: "med", Zone: "ward-1/med-area", Restricted: true,
		Polygon: [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}}}}
	quiet := events.DefaultConfig()
	quiet.Areas = []events.Area{{Name: "room", QuietHours: "11:00-13:00"}}
	night := events.DefaultConfig()
	night.Areas = []events.Area{{Name: "room", QuietHours: "22:00-06:00"}}
	p := person(0.95, 0.1, 0.1, 0.2, 0.3)
	weak := person(0.6, 0.1, 0.1, 0.2, 0.3)
	inMed := person(0.9, 0.6, 0.5, 0.2, 0.3) // feet at (0.7, 0.8)
	cases := []struct {
		name  string
		cfg   events.Config
		steps []step
		want  string
	}{
		{"nobody", events.DefaultConfig(), every(0, 10*time.Second), ""},
		{"one person standing still is one event", events.DefaultConfig(), every(0, 60*time.Second, p),
			"PERSON_DETECTED,OCCUPANCY_CHANGED"},
		{"gap shorter than debounce bridges", events.DefaultConfig(),
			concat(every(0, 5*time.Second, p), every(5*time.Second, 7*time.Second), every(7*time.Second, 15*time.Second, p)),
			"PERSON_DETECTED,OCCUPANCY_CHANGED"},
		{"occupancy follows a longer absence, the person episode does not", events.DefaultConfig(),
			concat(every(0, 5*time.Second, p), every(5*time.Second, 10*time.Second), every(10*time.Second, 15*time.Second, p)),
			"PERSON_DETECTED,OCCUPANCY_CHANGED,OCCUPANCY_CHANGED,OCCUPANCY_CHANGED"},
		{"gap longer than debounce starts a new episode", events.DefaultConfig(),
			concat(every(0, 5*time.Second, p), every(5*time.Second, 20*time.Second), every(20*time.Second, 25*time.Second, p)),
			"PERSON_DETECTED,OCCUPANCY_CHANGED,OCCUPANCY_CHANGED,PERSON_DETECTED,OCCUPANCY_CHANGED"},
		{"confidence 0.6 counts but is no PERSON_DETECTED", events.DefaultConfig(), every(0, 10*time.Second, weak),
			"OCCUPANCY_CHANGED"},
		{"short blip does not change occupancy", events.DefaultConfig(),
			concat(every(0, 1*time.Second, weak), every(time.Second, 10*time.Second)), ""},
		{"person outside restricted area", restricted, every(0, 5*time.Second, p), "PERSON_DETECTED,OCCUPANCY_CHANGED"},
		{"person inside restricted area", restricted, every(0, 30*time.Second, inMed),
			"PERSON_DETECTED,UNAUTHORIZED_ACCESS,OCCUPANCY_CHANGED"},
		{"quiet hours", quiet, every(0, 5*time.Second, p), "PERSON_DETECTED,ANOMALY_DETECTED,OCCUPANCY_CHANGED"},
		{"outside quiet hours (wrapping midnight)", night, every(0, 5*time.Second, p), "PERSON_DETECTED,OCCUPANCY_CHANGED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, c.cfg, base, c.steps)
			if types(got) != c.want {
				t.Fatalf("events %q, want %q", types(got), c.want)
			}
			for _, ev := range got {
				if ev.GetMeta().GetEventId() == "" || ev.GetMeta().GetTenant() != "t1" || ev.CameraId != "cam-1" {
					t.Errorf("bad event %v", ev)
				}
				if ev.EventType == pb.VideoEventType_UNAUTHORIZED_ACCESS && ev.Zone != "ward-1/med-area" {
					t.Errorf("zone override: %q", ev.Zone)
				}
			}
		})
	}
}

func TestDeterministicIDs(t *testing.T) {
	steps := concat(every(0, 5*time.Second, person(0.9, 0.1, 0.1, 0.2, 0.3)), every(5*time.Second, 30*time.Second),
		every(30*time.Second, 35*time.Second, person(0.9, 0.1, 0.1, 0.2, 0.3)))
	a := run(t, events.DefaultConfig(), base, steps)
	b := run(t, events.DefaultConfig(), base, steps)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("runs differ: %d vs %d", len(a), len(b))
	}
	seen := map[string]bool{}
	for i := range a {
		if a[i].Meta.EventId != b[i].Meta.EventId {
			t.Fatalf("event %d: id %s vs %s", i, a[i].Meta.EventId, b[i].Meta.EventId)
		}
		if seen[a[i].Meta.EventId] {
			t.Fatalf("duplicate id %s", a[i].Meta.EventId)
		}
		seen[a[i].Meta.EventId] = true
	}
	c := run(t, events.DefaultConfig(), base+1, steps)
	if c[0].Meta.EventId == a[0].Meta.EventId {
		t.Fatal("different start time, same id")
	}
}

func TestPointInPolygon(t *testing.T) {
	sq := [][2]float64{{0.2, 0.2}, {0.8, 0.2}, {0.8, 0.8}, {0.2, 0.8}}
	tri := [][2]float64{{0, 0}, {1, 0}, {0, 1}}
	quad := [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}}
	cases := []struct {
		x, y float64
		poly [][2]float64
		want bool
	}{
		{0.5, 0.5, sq, true}, {0.1, 0.5, sq, false}, {0.9, 0.9, sq, false},
		{0.2, 0.2, tri, true}, {0.6, 0.6, tri, false},
		// On the frame's border (a box clamped to the frame): inside an
		// area drawn to that border, also just past it (float32 rounding).
		{0.7, 1, quad, true}, {0.7, 1.0000001, quad, true}, {1, 0.7, quad, true},
		{0, 0.5, tri, true}, {0.5, 0, tri, true}, {0.4, 1, quad, false},
	}
	for _, c := range cases {
		if got := events.PointInPolygon(c.x, c.y, c.poly); got != c.want {
			t.Errorf("(%v,%v) in %v = %v", c.x, c.y, c.poly, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := events.DefaultConfig()
	bad.PersonConfidence = 1.5
	bad.Timezone = "Mars/Base"
	bad.Debounce = config.Duration(0)
	bad.Areas = []events.Area{{Name: "a", Polygon: [][2]float64{{0, 0}, {2, 0}}, QuietHours: "25:00-1"}, {Name: "a"}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"person_confidence", "timezone", "debounce", "areas[0].polygon", "areas[0].quiet_hours", "areas[1].name", "areas[1]: neither"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := events.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkObserve is the per-frame cost of the event rules for a camera
// with two areas and two people in view.
func BenchmarkObserve(b *testing.B) {
	cfg := events.DefaultConfig()
	cfg.Areas = []events.Area{
		{Name: "med", Restricted: true, Polygon: [][2]float64{{0.5, 0.5}, {1, 0.5}, {1, 1}, {0.5, 1}}},
		{Name: "room", QuietHours: "22:00-06:00"},
	}
	e, err := events.NewEngine(cam, cfg)
	if err != nil {
		b.Fatal(err)
	}
	dets := []*pb.Detection{person(0.9, 0.1, 0.1, 0.2, 0.3), person(0.85, 0.6, 0.5, 0.2, 0.3)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Observe(frame(base+int64(i)*200, dets...))
	}
}
