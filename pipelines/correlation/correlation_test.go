package correlation_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/pipelines/correlation"
	"github.com/wardstream/wardstream/pipelines/internal/gokalog"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
	"google.golang.org/protobuf/proto"
)

const t0 = int64(1_767_000_000_000)

type harness struct {
	t    *testing.T
	tt   *tester.Tester
	proc *goka.Processor
	now  atomic.Int64
	tp   correlation.Topics

	intakes, commands, alerts, controls *tester.QueueTracker
}

func testConfig() correlation.Config {
	cfg := correlation.DefaultConfig()
	cfg.Zones = []correlation.Zone{
		{ID: "ward-1/room-1", Locations: []string{"Room 1"}, Cameras: []string{"cam-1"}, Patients: []string{"p-1"}},
		{ID: "ward-1/med-area", Cameras: []string{"cam-2", "cam-3"}, Devices: []string{"pump-1", "pump-2"}, MedicalDeviceArea: true},
		{ID: "ward-1/room-2", Cameras: []string{"cam-4"}, Devices: []string{"vitals-9"}},
	}
	return cfg
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t}
	h.now.Store(t0)
	cfg := testConfig()
	p, err := correlation.New(cfg, correlation.WithClock(func() time.Time { return time.UnixMilli(h.now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	h.tp = correlation.DefaultTopics(cfg)
	h.tt = tester.New(t)
	h.proc, err = goka.NewProcessor(nil, p.Graph(), goka.WithTester(h.tt), goka.WithLogger(gokalog.New(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.proc.Run(ctx) }()
	// A visit (the clock) before every partition table runs fails with
	// "error creating storage iterator": wait for the processor first.
	if err := h.proc.WaitForReady(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	h.intakes = h.tt.NewQueueTracker(h.tp.Intake)
	h.commands = h.tt.NewQueueTracker(h.tp.Commands)
	h.alerts = h.tt.NewQueueTracker(h.tp.AlertRequests)
	h.controls = h.tt.NewQueueTracker(h.tp.CameraControls)
	return h
}

func (h *harness) consume(topic, key string, m proto.Message) {
	b, err := codec.Marshal(m)
	if err != nil {
		h.t.Fatal(err)
	}
	h.tt.Consume(topic, key, b)
}

func (h *harness) person(cam, zone string, at int64, conf float32) {
	h.consume(h.tp.Detections, cam, &pb.FrameDetections{CameraId: cam, Zone: zone, FrameTimeMs: at,
		Detections: []*pb.Detection{{ClassName: "person", Confidence: conf, Box: &pb.Box{W: 0.1, H: 0.2}}}})
}

// frames feeds a camera's frames without a person every second of
// [from, to]: the zone's video progressing in event time, live (the clock
// follows the frames; it never goes back).
func (h *harness) frames(cam, zone string, from, to int64) {
	for at := from; at <= to; at += 1000 {
		h.now.Store(max(h.now.Load(), at))
		h.consume(h.tp.Detections, cam, &pb.FrameDetections{CameraId: cam, Zone: zone, FrameTimeMs: at})
	}
}

func (h *harness) intake(id, location string, at int64) {
	h.consume(h.tp.Intake, "p-1", &pb.MedicationIntake{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: at},
		PatientId: "p-1", MedicationId: "m-1", IntakeTimeMs: at, Status: "taken", Location: location})
}

func (h *harness) sweep(now int64) {
	h.now.Store(now)
	if err := h.proc.VisitAll(context.Background(), correlation.VisitSweep, now); err != nil {
		h.t.Fatal(err)
	}
	h.tt.Catchup()
}

// verified drains the intake tracker: event id -> verification (only the
// records the group emitted, which carry one).
func (h *harness) verified() map[string]string {
	out := map[string]string{}
	for {
		_, v, ok := h.intakes.Next()
		if !ok {
			return out
		}
		in := &pb.MedicationIntake{}
		if err := codec.Unmarshal(v.([]byte), in); err != nil {
			continue // a poison record a test injected
		}
		if in.Verification != "" {
			if _, dup := out[in.Meta.EventId]; dup {
				h.t.Fatalf("intake %s verified twice", in.Meta.EventId)
			}
			out[in.Meta.EventId] = in.Verification
		}
	}
}

func TestIntakeVerification(t *testing.T) {
	const min = int64(time.Minute / time.Millisecond)
	cases := []struct {
		name  string
		steps func(h *harness)
		want  map[string]string
	}{
		{"person before the intake confirms it", func(h *harness) {
			h.person("cam-1", "ward-1/room-1", t0-90_000, 0.9)
			h.intake("i1", "Room 1", t0)
		}, map[string]string{"i1": correlation.CameraConfirmed}},
		{"person after the intake confirms it", func(h *harness) {
			h.intake("i1", "Room 1", t0)
			h.person("cam-1", "ward-1/room-1", t0+100_000, 0.9)
		}, map[string]string{"i1": correlation.CameraConfirmed}},
		// Since verdicts are judged in event time, a window closes when the
		// zone's cameras report frames past it (window + grace), not when
		// the clock passes it: these cases feed the camera's empty frames.
		{"person 3 minutes before is too early", func(h *harness) {
			h.person("cam-1", "ward-1/room-1", t0-3*min, 0.9)
			h.intake("i1", "Room 1", t0)
			h.frames("cam-1", "ward-1/room-1", t0, t0+3*min)
		}, map[string]string{"i1": correlation.Unverified}},
		{"no person: unverified once the video passed window and grace", func(h *harness) {
			h.intake("i1", "Room 1", t0)
			h.frames("cam-1", "ward-1/room-1", t0, t0+2*min)
			h.sweep(t0 + 2*min) // window still open (grace)
			if len(h.verified()) != 0 {
				h.t.Fatal("decided before the window closed")
			}
			h.frames("cam-1", "ward-1/room-1", t0+2*min, t0+3*min)
		}, map[string]string{"i1": correlation.Unverified}},
		{"silent zone: unverified max_wait after the intake arrived", func(h *harness) {
			h.intake("i1", "Room 1", t0)
			h.sweep(t0 + 3*min) // no frames: the clock alone does not close the window...
			if len(h.verified()) != 0 {
				h.t.Fatal("decided by the clock before max_wait")
			}
			h.sweep(t0 + 10*min + 1) // ...until max_wait
		}, map[string]string{"i1": correlation.Unverified}},
		{"a camera clock far ahead does not close windows at once", func(h *harness) {
			h.intake("i1", "Room 1", t0)
			h.consume(h.tp.Detections, "cam-1", &pb.FrameDetections{CameraId: "cam-1", Zone: "ward-1/room-1", FrameTimeMs: t0 + time.Hour.Milliseconds()})
			h.person("cam-1", "ward-1/room-1", t0+min, 0.9)
		}, map[string]string{"i1": correlation.CameraConfirmed}},
		{"person in another zone does not count", func(h *harness) {
			h.person("cam-4", "ward-1/room-2", t0, 0.9)
			h.intake("i1", "Room 1", t0)
			h.frames("cam-1", "ward-1/room-1", t0, t0+3*min)
		}, map[string]string{"i1": correlation.Unverified}},
		{"low confidence does not count", func(h *harness) {
			h.person("cam-1", "ward-1/room-1", t0, 0.3)
			h.intake("i1", "Room 1", t0)
			h.frames("cam-1", "ward-1/room-1", t0, t0+3*min)
		}, map[string]string{"i1": correlation.Unverified}},
		{"old intake replayed to a live zone is decided at once", func(h *harness) {
			h.frames("cam-1", "ward-1/room-1", t0, t0)
			h.intake("i1", "Room 1", t0-time.Hour.Milliseconds())
		}, map[string]string{"i1": correlation.Unverified}},
		{"old day replayed with its video is judged as it was live", func(h *harness) {
			old := t0 - 24*time.Hour.Milliseconds()
			h.intake("i1", "Room 1", old)
			h.person("cam-1", "ward-1/room-1", old+min, 0.9)
			h.intake("i2", "Room 1", old+10*min)
			h.frames("cam-1", "ward-1/room-1", old+10*min, old+13*min)
		}, map[string]string{"i1": correlation.CameraConfirmed, "i2": correlation.Unverified}},
		{"unmapped location is left alone", func(h *harness) {
			h.person("cam-1", "ward-1/room-1", t0, 0.9)
			h.intake("i1", "Cafeteria", t0)
			h.sweep(t0 + 10*min)
		}, map[string]string{}},
		{"zone id works as a location", func(h *harness) {
			h.person("cam-1", "ward-1/room-1", t0, 0.9)
			h.intake("i1", "ward-1/room-1", t0)
		}, map[string]string{"i1": correlation.CameraConfirmed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			c.steps(h)
			h.tt.Catchup()
			got := h.verified()
			if len(got) != len(c.want) {
				t.Fatalf("verified %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Fatalf("verified %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestUnauthorizedAccessSecuresDevices(t *testing.T) {
	h := newHarness(t)
	ev := &pb.VideoEvent{Meta: &pb.Meta{Tenant: "t1", EventId: "ve-1"}, CameraId: "cam-2", Zone: "ward-1/med-area",
		EventType: pb.VideoEventType_UNAUTHORIZED_ACCESS, StartTimeMs: t0, Ward: "ward-1"}
	h.consume(h.tp.VideoEvents, "cam-2", ev)
	// Not a device area: nothing.
	h.consume(h.tp.VideoEvents, "cam-1", &pb.VideoEvent{Meta: &pb.Meta{EventId: "ve-2"}, CameraId: "cam-1", Zone: "ward-1/room-1",
		EventType: pb.VideoEventType_UNAUTHORIZED_ACCESS, StartTimeMs: t0})
	h.tt.Catchup()
	devs := map[string]bool{}
	for {
		k, v, ok := h.commands.Next()
		if !ok {
			break
		}
		c := v.(*pb.DeviceCommand)
		if c.CommandType != pb.CommandType_SECURE_DEVICE || c.DeviceId != k || c.State != pb.CommandState_COMMAND_PENDING ||
			!strings.Contains(c.PayloadJson, "ve-1") || c.CommandId == "" {
			t.Fatalf("command %v", c)
		}
		devs[k] = true
	}
	if len(devs) != 2 || !devs["pump-1"] || !devs["pump-2"] {
		t.Fatalf("secured %v", devs)
	}
	k, v, ok := h.alerts.Next()
	if !ok {
		t.Fatal("no alert request")
	}
	a := v.(*pb.Alert)
	if k != a.AlertId || a.AlertType != pb.AlertType_UNAUTHORIZED_ACCESS_ALERT || a.State != pb.AlertState_OPEN || a.CameraId != "cam-2" {
		t.Fatalf("alert %v", a)
	}
	if _, _, ok := h.alerts.Next(); ok {
		t.Fatal("second alert for a non-device area")
	}
}

func TestEmergencyBoostsCameras(t *testing.T) {
	h := newHarness(t)
	emergency := func(id, patient, device string, state pb.AlertState, typ pb.AlertType) {
		h.consume(h.tp.Alerts, patient+device, &pb.Alert{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: t0}, AlertId: id,
			AlertType: typ, State: state, PatientId: patient, DeviceId: device, OpenedTimeMs: t0})
	}
	emergency("a1", "p-1", "", pb.AlertState_OPEN, pb.AlertType_VITALS_EMERGENCY)
	emergency("a2", "", "vitals-9", pb.AlertState_OPEN, pb.AlertType_VITALS_EMERGENCY)
	emergency("a3", "p-1", "", pb.AlertState_ACKNOWLEDGED, pb.AlertType_VITALS_EMERGENCY)
	emergency("a4", "p-1", "", pb.AlertState_OPEN, pb.AlertType_VITALS_WARNING)
	emergency("a5", "p-unknown", "", pb.AlertState_OPEN, pb.AlertType_VITALS_EMERGENCY)
	h.tt.Catchup()
	got := map[string]bool{}
	for {
		k, v, ok := h.controls.Next()
		if !ok {
			break
		}
		ev := v.(*pb.VideoEvent)
		if ev.EventType != pb.VideoEventType_SAMPLE_RATE_BOOST || ev.SampleFps != 15 || ev.StartTimeMs != t0 ||
			ev.EndTimeMs != t0+30*60*1000 || ev.CameraId != k {
			t.Fatalf("control %v", ev)
		}
		got[k] = true
	}
	if len(got) != 2 || !got["cam-1"] || !got["cam-4"] {
		t.Fatalf("boosted %v, want cam-1 (patient p-1) and cam-4 (device vitals-9)", got)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := correlation.DefaultConfig()
	cfg.Window = config.Duration(0)
	cfg.MinConfidence = 2
	cfg.Zones = []correlation.Zone{{ID: "a", Locations: []string{"x"}, MedicalDeviceArea: true}, {ID: "a"}, {ID: "b", Locations: []string{"x"}}}
	err := cfg.Validate()
	for _, want := range []string{"window", "min_confidence", "zones[0]: medical_device_area without devices", "zones[1].id", "zones[2].locations"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	_ = topics.Intake
}

func TestUndecodableInputIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	dlq := h.tt.NewQueueTracker(h.tp.DeadLetters)
	h.tt.Consume(h.tp.Intake, "p-1", []byte{0xff, 0xff, 0xff})
	h.tt.Catchup()
	_, v, ok := dlq.Next()
	if !ok {
		t.Fatal("nothing dead-lettered")
	}
	dl := v.(*pb.DeadLetter)
	if dl.Reason != "undecodable" || dl.SourceTopic != h.tp.Intake || len(dl.Raw) != 3 {
		t.Fatalf("dead letter %v", dl)
	}
	// The group keeps working.
	h.person("cam-1", "ward-1/room-1", t0, 0.9)
	h.intake("i1", "Room 1", t0)
	h.tt.Catchup()
	if got := h.verified(); got["i1"] != correlation.CameraConfirmed {
		t.Fatalf("after a poison record: %v", got)
	}
}

func TestPrefixedTopics(t *testing.T) {
	cfg := correlation.DefaultConfig()
	def := correlation.DefaultTopics(cfg)
	got := correlation.PrefixedTopics(cfg, "bench.x.")
	want := correlation.Topics{Detections: "bench.x." + def.Detections, VideoEvents: "bench.x." + def.VideoEvents, Intake: "bench.x." + def.Intake,
		Alerts: "bench.x." + def.Alerts, AlertRequests: "bench.x." + cfg.AlertRequestsTopic, Commands: "bench.x." + def.Commands,
		CameraControls: "bench.x." + def.CameraControls, DeadLetters: "bench.x." + def.DeadLetters, Prefix: "bench.x."}
	if got != want {
		t.Fatalf("PrefixedTopics = %+v, want %+v", got, want)
	}
}

// TestWatermarkWaitsForSlowerCamera: a zone's window closes when every
// live camera of the zone has passed it, not the fastest one: a sighting
// that a slower camera (a longer detection backlog) reports after a faster
// camera's frames went past the window still confirms the intake. A
// camera stalled more than max_wait behind the others holds nothing.
func TestWatermarkWaitsForSlowerCamera(t *testing.T) {
	const min = int64(time.Minute / time.Millisecond)
	const zone = "ward-1/med-area" // cam-2 and cam-3
	t.Run("slower camera's sighting confirms", func(t *testing.T) {
		h := newHarness(t)
		h.frames("cam-2", zone, t0-min, t0)
		h.frames("cam-3", zone, t0-min, t0)
		h.intake("i1", zone, t0)
		h.frames("cam-2", zone, t0, t0+5*min) // past window + grace
		h.tt.Catchup()
		if got := h.verified(); len(got) != 0 {
			t.Fatalf("decided on the fastest camera alone: %v", got)
		}
		h.frames("cam-3", zone, t0, t0+50_000)
		h.person("cam-3", zone, t0+60_000, 0.9)
		h.tt.Catchup()
		if got := h.verified(); got["i1"] != correlation.CameraConfirmed {
			t.Fatalf("verified %v, want i1 confirmed by the slower camera", got)
		}
	})
	t.Run("slower camera passing the window closes it", func(t *testing.T) {
		h := newHarness(t)
		h.frames("cam-2", zone, t0-min, t0)
		h.frames("cam-3", zone, t0-min, t0)
		h.intake("i1", zone, t0)
		h.frames("cam-2", zone, t0, t0+5*min)
		h.frames("cam-3", zone, t0, t0+4*min)
		h.tt.Catchup()
		if got := h.verified(); got["i1"] != correlation.Unverified {
			t.Fatalf("verified %v, want i1 unverified once both cameras passed its window", got)
		}
	})
	t.Run("stalled camera holds nothing", func(t *testing.T) {
		h := newHarness(t)
		h.frames("cam-3", zone, t0-min, t0) // then silent
		h.frames("cam-2", zone, t0-min, t0+8*min)
		h.intake("i1", zone, t0+8*min) // arrives at t0+8min: max_wait would end at t0+18min
		h.frames("cam-2", zone, t0+8*min, t0+9*min)
		h.tt.Catchup()
		if got := h.verified(); len(got) != 0 {
			t.Fatalf("decided while cam-3 was within max_wait: %v", got)
		}
		h.frames("cam-2", zone, t0+9*min, t0+12*min) // cam-3 now > max_wait behind
		h.tt.Catchup()
		if got := h.verified(); got["i1"] != correlation.Unverified {
			t.Fatalf("verified %v, want i1 unverified: the stalled camera must not hold the window", got)
		}
	})
}
