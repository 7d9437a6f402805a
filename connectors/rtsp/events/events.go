// Package events turns a camera's per-frame detections into debounced
// video events: PERSON_DETECTED, UNAUTHORIZED_ACCESS (a person inside a
// restricted area), OCCUPANCY_CHANGED and ANOMALY_DETECTED (a person in an
// area during its quiet hours).
//
// An [Engine] follows one camera. Each event opens an episode that lasts
// while the condition keeps holding, with gaps shorter than the debounce
// period bridged, so a person standing still for an hour is one event,
// not 90,000. Event ids are derived from the camera, the event type, the
// area and the episode's start frame time (RTP time mapped to the wall
// clock), so replaying the same frames yields the same ids.
//
// The engine does not track identities across frames; "a person" is any
// detection of the person class above its confidence. An Engine is not
// safe for concurrent use; the connector feeds each camera's frames in
// order from one goroutine.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wardstream/wardstream/internal/config"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Source is Meta.Source of every event this package emits.
const Source = "rtsp/events"

// Area is a region of a camera's view.
type Area struct {
	// Name identifies the area within the camera (e.g. "med-cabinet").
	Name string `yaml:"name"`
	// Polygon lists the area's corners as [x, y] fractions of the frame
	// (0..1, top-left origin); empty means the whole frame.
	Polygon [][2]float64 `yaml:"polygon"`
	// Zone overrides the camera's zone on events in this area (e.g. the
	// medical device area's own zone, which the correlation processor
	// maps to the devices there).
	Zone string `yaml:"zone"`
	// Restricted makes a person inside the area an UNAUTHORIZED_ACCESS.
	Restricted bool `yaml:"restricted"`
	// QuietHours is a local time range "HH:MM-HH:MM" (may wrap midnight)
	// when nobody should be in the area: a person then is ANOMALY_DETECTED.
	QuietHours string `yaml:"quiet_hours"`
}

// Config tunes event derivation.
type Config struct {
	// PersonClass is the detector class that counts as a person ("person").
	PersonClass string `yaml:"person_class"`
	// PersonConfidence is the confidence above which PERSON_DETECTED is
	// raised (0.8, as in the seed).
	PersonConfidence float32 `yaml:"person_confidence"`
	// CountConfidence is the confidence at which a person counts for
	// occupancy and the area rules (0.5).
	CountConfidence float32 `yaml:"count_confidence"`
	// Debounce is how long a condition may lapse before its episode ends
	// and a new one (a new event) can start (10s).
	Debounce config.Duration `yaml:"debounce"`
	// OccupancyStable is how long a new person count must hold before
	// OCCUPANCY_CHANGED is raised (3s).
	OccupancyStable config.Duration `yaml:"occupancy_stable"`
	// Timezone is the IANA zone of quiet hours ("UTC").
	Timezone string `yaml:"timezone"`
	// Areas are the camera's regions.
	Areas []Area `yaml:"areas"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{PersonClass: "person", PersonConfidence: 0.8, CountConfidence: 0.5,
		Debounce: config.Duration(10 * time.Second), OccupancyStable: config.Duration(3 * time.Second), Timezone: "UTC"}
}

// Validate reports every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	if c.PersonClass == "" {
		errs = append(errs, errors.New("person_class: required"))
	}
	if c.PersonConfidence <= 0 || c.PersonConfidence >= 1 {
		errs = append(errs, fmt.Errorf("person_confidence: %v not in (0,1)", c.PersonConfidence))
	}
	if c.CountConfidence <= 0 || c.CountConfidence >= 1 {
		errs = append(errs, fmt.Errorf("count_confidence: %v not in (0,1)", c.CountConfidence))
	}
	if c.Debounce.D() <= 0 || c.OccupancyStable.D() < 0 {
		errs = append(errs, errors.New("debounce, occupancy_stable: must be > 0"))
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		errs = append(errs, fmt.Errorf("timezone: %w", err))
	}
	names := map[string]bool{}
	for i, a := range c.Areas {
		p := fmt.Sprintf("areas[%d]", i)
		if a.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", p))
		} else if names[a.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q used twice", p, a.Name))
		}
		names[a.Name] = true
		if len(a.Polygon) > 0 && len(a.Polygon) < 3 {
			errs = append(errs, fmt.Errorf("%s.polygon: %d points, want >= 3 (or none for the whole frame)", p, len(a.Polygon)))
		}
		for j, pt := range a.Polygon {
			if pt[0] < 0 || pt[0] > 1 || pt[1] < 0 || pt[1] > 1 {
				errs = append(errs, fmt.Errorf("%s.polygon[%d]: %v outside [0,1]", p, j, pt))
			}
		}
		if a.QuietHours != "" {
			if _, _, err := parseHours(a.QuietHours); err != nil {
				errs = append(errs, fmt.Errorf("%s.quiet_hours: %w", p, err))
			}
		}
		if !a.Restricted && a.QuietHours == "" {
			errs = append(errs, fmt.Errorf("%s: neither restricted nor quiet_hours: the area raises nothing", p))
		}
	}
	return errors.Join(errs...)
}

// Camera identifies the camera an Engine follows.
type Camera struct {
	ID, Tenant, Zone, Location, Ward string
}

type episode struct {
	active   bool
	id       string
	start    int64
	lastSeen int64
}

type area struct {
	Area
	quietFrom, quietTo int // minutes of day
	unauthorized       episode
	anomaly            episode
}

// Engine derives one camera's events.
type Engine struct {
	cam    Camera
	cfg    Config
	loc    *time.Location
	person episode
	areas  []*area
	now    func() time.Time

	occReported  int
	occCandidate int
	occSince     int64

	// lastT is the latest frame time observed; resumeMs is the longest
	// unobserved gap the next frame may close without it counting (set by
	// Resume, cleared by the next Observe).
	lastT    int64
	resumeMs int64
}

// NewEngine validates cfg and returns an engine for cam.
func NewEngine(cam Camera, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loc, _ := time.LoadLocation(cfg.Timezone)
	e := &Engine{cam: cam, cfg: cfg, loc: loc, now: time.Now, occCandidate: -1}
	for _, a := range cfg.Areas {
		x := &area{Area: a, quietFrom: -1}
		if a.QuietHours != "" {
			x.quietFrom, x.quietTo, _ = parseHours(a.QuietHours)
		}
		e.areas = append(e.areas, x)
	}
	return e, nil
}

// Resume says that the frames observed so far were replayed (a restarted
// connector rebuilding its state from the frames it produced before) and
// that the camera was not watched from the last of them until the next
// frame. If that next frame comes within maxGap of the last replayed one,
// the unwatched time does not count: episodes live at the last replayed
// frame go on (same event, no new one) if their condition still holds
// within the debounce, and a pending occupancy count keeps its progress.
// After a longer gap, or without frames replayed, nothing carries over
// beyond what the debounce already allows.
func (e *Engine) Resume(maxGap time.Duration) {
	if e.lastT > 0 && maxGap > 0 {
		e.resumeMs = maxGap.Milliseconds()
	}
}

// resume shifts the engine's clocks by the unwatched gap before t.
func (e *Engine) resume(t int64) {
	gap := t - e.lastT
	limit := e.resumeMs
	e.resumeMs = 0
	if gap <= 0 || gap > limit {
		return
	}
	deb := e.cfg.Debounce.D().Milliseconds()
	shift := func(ep *episode) {
		// Only episodes live when watching stopped carry over.
		if ep.active && e.lastT-ep.lastSeen <= deb {
			ep.lastSeen += gap
		}
	}
	shift(&e.person)
	for _, a := range e.areas {
		shift(&a.unauthorized)
		shift(&a.anomaly)
	}
	if e.occCandidate != e.occReported {
		e.occSince += gap
	}
}

// Observe consumes one frame's detections (frames in time order) and
// returns the events that start with it, usually none.
func (e *Engine) Observe(fd *pb.FrameDetections) []*pb.VideoEvent {
	t := fd.GetFrameTimeMs()
	if e.resumeMs > 0 {
		e.resume(t)
	}
	e.lastT = max(e.lastT, t)
	deb := e.cfg.Debounce.D().Milliseconds()
	var out []*pb.VideoEvent

	var best *pb.Detection
	var counted []*pb.Detection
	for _, d := range fd.GetDetections() {
		if d.GetClassName() != e.cfg.PersonClass {
			continue
		}
		if d.GetConfidence() >= e.cfg.CountConfidence {
			counted = append(counted, d)
		}
		if d.GetConfidence() > e.cfg.PersonConfidence && (best == nil || d.GetConfidence() > best.GetConfidence()) {
			best = d
		}
	}

	if best != nil {
		if e.step(&e.person, t, deb, pb.VideoEventType_PERSON_DETECTED, "") {
			out = append(out, e.event(&e.person, pb.VideoEventType_PERSON_DETECTED, e.cam.Zone, best, len(counted), nil))
		}
	}

	for _, a := range e.areas {
		var inside []*pb.Detection
		for _, d := range counted {
			if a.contains(d.GetBox()) {
				inside = append(inside, d)
			}
		}
		if len(inside) == 0 {
			continue
		}
		top := inside[0]
		for _, d := range inside {
			if d.GetConfidence() > top.GetConfidence() {
				top = d
			}
		}
		zone := e.cam.Zone
		if a.Zone != "" {
			zone = a.Zone
		}
		if a.Restricted && e.step(&a.unauthorized, t, deb, pb.VideoEventType_UNAUTHORIZED_ACCESS, a.Name) {
			out = append(out, e.event(&a.unauthorized, pb.VideoEventType_UNAUTHORIZED_ACCESS, zone, top, len(inside),
				map[string]any{"area": a.Name, "restricted": true}))
		}
		if a.quietFrom >= 0 {
			lt := time.UnixMilli(t).In(e.loc)
			if inHours(lt.Hour()*60+lt.Minute(), a.quietFrom, a.quietTo) &&
				e.step(&a.anomaly, t, deb, pb.VideoEventType_ANOMALY_DETECTED, a.Name) {
				out = append(out, e.event(&a.anomaly, pb.VideoEventType_ANOMALY_DETECTED, zone, top, len(inside),
					map[string]any{"area": a.Name, "quiet_hours": a.QuietHours, "reason": "person during quiet hours"}))
			}
		}
	}

	// Occupancy: a new count must hold for OccupancyStable.
	n := len(counted)
	if n != e.occCandidate {
		e.occCandidate, e.occSince = n, t
	}
	if n != e.occReported && t-e.occSince >= e.cfg.OccupancyStable.D().Milliseconds() {
		prev := e.occReported
		e.occReported = n
		ep := episode{start: e.occSince, id: eventID(e.cam, pb.VideoEventType_OCCUPANCY_CHANGED, strconv.Itoa(n), e.occSince)}
		ev := e.event(&ep, pb.VideoEventType_OCCUPANCY_CHANGED, e.cam.Zone, nil, n, map[string]any{"previous": prev})
		ev.EndTimeMs = t
		out = append(out, ev)
	}
	return out
}

// step advances an episode with a sighting at t and reports whether a new
// episode (and so a new event) starts.
func (e *Engine) step(ep *episode, t, deb int64, typ pb.VideoEventType, area string) bool {
	// Backward steps (a session switching from the local clock to the
	// camera's NTP clock, which may be up to 30s behind ours) continue the
	// episode too, however far back: the condition was seen at lastSeen,
	// later than t, so it has not lapsed.
	if ep.active && t-ep.lastSeen <= deb {
		ep.lastSeen = max(ep.lastSeen, t)
		return false
	}
	*ep = episode{active: true, start: t, lastSeen: t, id: eventID(e.cam, typ, area, t)}
	return true
}

func (e *Engine) event(ep *episode, typ pb.VideoEventType, zone string, d *pb.Detection, count int, details map[string]any) *pb.VideoEvent {
	ev := &pb.VideoEvent{
		Meta:        &pb.Meta{Tenant: e.cam.Tenant, EventId: ep.id, EventTimeMs: ep.start, IngestTimeMs: e.now().UnixMilli(), Source: Source},
		CameraId:    e.cam.ID,
		Zone:        zone,
		Location:    e.cam.Location,
		Ward:        e.cam.Ward,
		EventType:   typ,
		PersonCount: int32(count),
		StartTimeMs: ep.start,
	}
	if d != nil {
		ev.Confidence = d.GetConfidence()
		if b := d.GetBox(); b != nil {
			ev.Box = &pb.Box{X: b.X, Y: b.Y, W: b.W, H: b.H}
		}
	}
	if details != nil {
		js, _ := json.Marshal(details)
		ev.Details = string(js)
	}
	return ev
}

// eventID is deterministic: the same camera, type, area and start time
// always give the same id.
func eventID(c Camera, typ pb.VideoEventType, area string, start int64) string {
	h := sha256.Sum256([]byte(strings.Join([]string{c.Tenant, c.ID, typ.String(), area, strconv.FormatInt(start, 10)}, "\x00")))
	return "ve-" + hex.EncodeToString(h[:16])
}

// contains reports whether the box's bottom centre (where a standing
// person's feet are) lies in the area.
func (a *area) contains(b *pb.Box) bool {
	if b == nil {
		return false
	}
	if len(a.Polygon) == 0 {
		return true
	}
	return PointInPolygon(float64(b.X+b.W/2), float64(b.Y+b.H), a.Polygon)
}

// borderEps is how far PointInPolygon moves a point on (or past) the
// frame's border into the frame: about a thousandth of a pixel at 4K.
const borderEps = 1e-6

// PointInPolygon reports whether (x, y), in frame coordinates, lies inside
// poly (even-odd rule).
//
// The point is first clamped into the frame and moved borderEps inside it
// when it lies on the frame's border: the detector clamps boxes to the
// frame, so a person cut off by the bottom of the picture has feet at
// y = 1 exactly (or a float32 rounding past it), and an area drawn down to
// the frame's edge has its edge on the border too. Without the nudge the
// even-odd rule would put such a point outside whichever way the edge is
// drawn. Points on an edge inside the frame may still fall either way.
func PointInPolygon(x, y float64, poly [][2]float64) bool {
	x = min(max(x, borderEps), 1-borderEps)
	y = min(max(y, borderEps), 1-borderEps)
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		xi, yi, xj, yj := poly[i][0], poly[i][1], poly[j][0], poly[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

func parseHours(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want HH:MM-HH:MM", s)
	}
	from, err1 := parseClock(a)
	to, err2 := parseClock(b)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("%q: %w", s, err)
	}
	if from == to {
		return 0, 0, fmt.Errorf("%q: empty range", s)
	}
	return from, to, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("bad time %q (want HH:MM)", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// inHours reports whether minute m of the day is in [from, to), wrapping
// past midnight when to < from.
func inHours(m, from, to int) bool {
	if from < to {
		return m >= from && m < to
	}
	return m >= from || m < to
}
