package anomaly_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lovoo/goka"

	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// input is one record for the arrival-order tests: a vitals reading of
// the device's patient (hr > 0), a battery reading (battery > 0, no
// vitals), or a device status (status: online or not, with its battery
// level when battery > 0).
type input struct {
	ev      int64
	hr      float64
	battery float64
	status  bool
	online  bool
}

const sec = 1000

func hrAt(s int64, hr float64) input       { return input{ev: s * sec, hr: hr} }
func batteryAt(s int64, lvl float64) input { return input{ev: s * sec, battery: lvl} }
func statusAt(s int64, online bool, battery float64) input {
	return input{ev: s * sec, status: true, online: online, battery: battery}
}

// consume sends in as the idx-th record of device dev, whose patient is
// "p-"+dev.
func (h *harness) consume(dev string, idx int, in input) {
	id := fmt.Sprint(dev, "/", idx)
	if in.status {
		b, _ := codec.Marshal(&pb.DeviceStatus{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: in.ev}, DeviceId: dev,
			Online: in.online, BatteryLevel: in.battery})
		h.tt.Consume(h.cfg.Topics.DeviceStatus, dev, b)
		return
	}
	v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: in.ev}, DeviceId: dev, PatientId: "p-" + dev, Kind: "vitals"}
	if in.hr > 0 {
		v.HeartRate, v.Present = in.hr, append(v.Present, "heart_rate")
	}
	if in.battery > 0 {
		v.BatteryLevel, v.Present = in.battery, append(v.Present, "battery_level")
	}
	b, _ := codec.Marshal(v)
	h.tt.Consume(h.cfg.Topics.Vitals, dev, b)
}

// finalAlerts drains the alert requests and folds them into the last
// state per alert id, the device's name in ids replaced by DEV. It fails
// the test on an id that is opened twice or opened after it resolved.
func finalAlerts(t *testing.T, h *harness, dev string, into map[string]string) map[string]string {
	t.Helper()
	if into == nil {
		into = map[string]string{}
	}
	for _, a := range drainAlerts(h.alert) {
		id := strings.ReplaceAll(a.AlertId, dev, "DEV")
		if prev, seen := into[id]; seen && (prev == "RESOLVED" || a.State == pb.AlertState_OPEN) {
			t.Fatalf("%s: %s after %s", id, a.State, prev)
		}
		into[id] = a.State.String()
	}
	return into
}

func permutations(n int) [][]int {
	var out [][]int
	var rec func(p []int, used []bool)
	rec = func(p []int, used []bool) {
		if len(p) == n {
			out = append(out, slices.Clone(p))
			return
		}
		for i := range n {
			if !used[i] {
				used[i] = true
				rec(append(p, i), used)
				used[i] = false
			}
		}
	}
	rec(nil, make([]bool, n))
	return out
}

// TestArrivalOrderDoesNotChangeAlerts: event time decides. The same
// readings (each condition abnormal in one reading, normal around it) in
// every arrival order, with a redelivery of the first half in the middle
// (a restart), leave the same final state per alert id as in event order;
// a replay of everything afterwards raises nothing. A late abnormal
// reading that the newer ones had found over opened nothing (commit
// d7fc53a): normal at 60 s and 180 s, then emergency at 120 s, raised no
// alert at all.
func TestArrivalOrderDoesNotChangeAlerts(t *testing.T) {
	cases := []struct {
		name string
		in   []input
		want string // the final alerts in event order
	}{
		{"emergency between normals", []input{hrAt(60, 80), hrAt(120, 185), hrAt(180, 80)},
			"map[VITALS_EMERGENCY|patient|p-DEV|120000:RESOLVED]"},
		{"warning then emergency", []input{hrAt(60, 80), hrAt(120, 155), hrAt(180, 185), hrAt(240, 80), hrAt(300, 80)},
			"map[VITALS_EMERGENCY|patient|p-DEV|180000:RESOLVED VITALS_WARNING|patient|p-DEV|120000:RESOLVED]"},
		{"emergency still on", []input{hrAt(30, 80), hrAt(60, 80), hrAt(120, 185)},
			"map[VITALS_EMERGENCY|patient|p-DEV|120000:OPEN]"},
		{"offline between onlines", []input{statusAt(60, true, 0), statusAt(120, false, 0), statusAt(180, true, 0), statusAt(240, true, 0)},
			"map[DEVICE_OFFLINE|device|DEV|120000:RESOLVED]"},
		{"still offline", []input{statusAt(30, true, 0), statusAt(60, true, 0), statusAt(120, false, 0)},
			"map[DEVICE_OFFLINE|device|DEV|120000:OPEN]"},
		{"low battery in vitals", []input{batteryAt(60, 90), batteryAt(120, 10), batteryAt(180, 95), batteryAt(240, 94)},
			"map[LOW_BATTERY|device|DEV|120000:RESOLVED]"},
		{"offline with low battery, battery in vitals", []input{statusAt(60, true, 90), statusAt(120, false, 10), statusAt(180, true, 80), batteryAt(240, 79), hrAt(250, 80)},
			"map[DEVICE_OFFLINE|device|DEV|120000:RESOLVED LOW_BATTERY|device|DEV|120000:RESOLVED]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			for i, in := range c.in {
				h.consume("ref", i, in)
			}
			want := finalAlerts(t, h, "ref", nil)
			if got := fmt.Sprint(want); got != c.want {
				t.Fatalf("event order: %s, want %s", got, c.want)
			}
			for n, perm := range permutations(len(c.in)) {
				dev := fmt.Sprint("d", n)
				for _, i := range perm {
					h.consume(dev, i, c.in[i])
				}
				got := finalAlerts(t, h, dev, nil)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("arrival order %v: %v, want %v", perm, got, want)
				}
				// Redelivered after a restart: the first half again, then the rest.
				half := perm[:len(perm)/2]
				dev = fmt.Sprint("r", n)
				for _, i := range slices.Concat(half, half, perm[len(half):]) {
					h.consume(dev, i, c.in[i])
				}
				if got := finalAlerts(t, h, dev, nil); !reflect.DeepEqual(got, want) {
					t.Fatalf("arrival order %v with %v redelivered: %v, want %v", perm, half, got, want)
				}
				replay := slices.Clone(perm)
				slices.Reverse(replay)
				for _, i := range slices.Concat(replay, perm) {
					h.consume(dev, i, c.in[i])
				}
				if got := alertStrings(h); len(got) != 0 {
					t.Fatalf("arrival order %v, replayed: %v", perm, got)
				}
			}
		})
	}
}

// TestShuffledEpisodesLeaveNoPhantom: readings with several episodes of
// several abnormal readings each, in many arrival orders with
// redeliveries. Arrival order can change their ids here (see
// TestLatePastEpisodeInDescendingOrder, TestLateReadingBeforeOpenEpisode,
// TestLateNormalReadingDoesNotResolve), but never leaves an alert open
// that event order does not: at the end exactly the condition the newest
// reading finds on has one open alert. Every alert id is the time of an
// abnormal reading, no id is opened twice or after it resolved, and a
// replay of everything raises nothing.
func TestShuffledEpisodesLeaveNoPhantom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 5))
	hrs := []float64{80, 185, 190, 80, 155, 158, 80, 80, 186, 80, 155, 187}
	for _, last := range []float64{80, 186, 156} {
		in := make([]input, 0, len(hrs)+1)
		abnormal := map[string]bool{}
		for i, hr := range append(slices.Clone(hrs), last) {
			in = append(in, hrAt(int64(60*(i+1)), hr))
			if hr > 150 {
				abnormal[fmt.Sprint(60_000*(i+1))] = true
			}
		}
		h := newHarness(t)
		for i, x := range in {
			h.consume("ref", i, x)
		}
		wantOpen := map[string]bool{}
		for id, s := range finalAlerts(t, h, "ref", nil) {
			if s == "OPEN" {
				wantOpen[id[:strings.Index(id, "|")]] = true
			}
		}
		for n := range 200 {
			dev := fmt.Sprint("d", n)
			order := rnd.Perm(len(in))
			cut := rnd.IntN(len(order))
			order = slices.Concat(order[:cut], order[rnd.IntN(cut+1):cut], order[cut:])
			for _, i := range order {
				h.consume(dev, i, in[i])
			}
			got := finalAlerts(t, h, dev, nil)
			open := map[string]bool{}
			for id, s := range got {
				f := strings.Split(id, "|")
				if !abnormal[f[3]] {
					t.Fatalf("order %v: alert %s starts at no abnormal reading", order, id)
				}
				if s == "OPEN" {
					if open[f[0]] {
						t.Fatalf("order %v: two %s alerts open: %v", order, f[0], got)
					}
					open[f[0]] = true
				}
			}
			if !reflect.DeepEqual(open, wantOpen) {
				t.Fatalf("order %v: open %v, want %v (%v)", order, open, wantOpen, got)
			}
			for _, i := range rnd.Perm(len(in)) {
				h.consume(dev, i, in[i])
			}
			if got := alertStrings(h); len(got) != 0 {
				t.Fatalf("order %v, replayed: %v", order, got)
			}
		}
	}
}

func stateOf(t *testing.T, h *harness, dev string) *anomaly.State {
	t.Helper()
	return h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), dev).(*anomaly.State)
}

// TestLatePastEpisodeInDescendingOrder pins what bounded state can do
// when the readings of a past episode nobody saw arrive newest first:
// normal at 60 s and 180 s, then emergency at 120 s and 100 s. In event
// order that is one episode, id ...|100000. By arrival, the 120 s
// reading comes first: with nothing to tell it from an episode of its
// own (a normal reading at 110 s may still arrive), it is reported at
// once (...|120000, opened and resolved); the 100 s reading then reports
// the event-order episode (...|100000, opened and resolved) and extends
// the remembered span down to it. So the event order's alert is there
// with its final state, plus a second, resolved id; nothing stays open,
// and the rest of the episode (110 s) and replays raise nothing.
func TestLatePastEpisodeInDescendingOrder(t *testing.T) {
	h := newHarness(t)
	for i, x := range []input{hrAt(60, 80), hrAt(180, 80), hrAt(120, 185), hrAt(100, 186)} {
		h.consume("mon-1", i, x)
	}
	want := "[OPEN:VITALS_EMERGENCY|patient|p-mon-1|120000 RESOLVED:VITALS_EMERGENCY|patient|p-mon-1|120000 " +
		"OPEN:VITALS_EMERGENCY|patient|p-mon-1|100000 RESOLVED:VITALS_EMERGENCY|patient|p-mon-1|100000]"
	if got := fmt.Sprint(alertStrings(h)); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	st := stateOf(t, h, "mon-1")
	k := anomaly.EpisodeKey{Type: int32(pb.AlertType_VITALS_EMERGENCY), Subject: "p-mon-1"}
	if len(st.Episodes) != 0 || fmt.Sprint(st.Closed[k]) != "[{100000 180000}]" {
		t.Fatalf("episodes %v, closed %v", st.Episodes, st.Closed)
	}
	for i, x := range []input{hrAt(110, 187), hrAt(120, 185), hrAt(100, 186), hrAt(180, 80), hrAt(60, 80)} {
		h.consume("mon-1", 10+i, x)
	}
	if got := alertStrings(h); len(got) != 0 {
		t.Fatalf("the rest of the episode and replays raised %v", got)
	}
}

// TestLateReadingBeforeOpenEpisode: an emergency is open since 150 s and
// an abnormal reading of 100 s arrives late. It used to join the open
// episode, so when a normal reading lay between (110 s), the emergency
// of 100 s was never reported. It is now reported as its own episode
// (opened and resolved, id ...|100000), which is event order's result
// with the normal reading between. Without one, event order has a single
// episode ...|100000, still open: the group cannot tell the two apart
// (the normal reading may still arrive) and gives the same result, the
// ongoing emergency staying open under ...|150000.
func TestLateReadingBeforeOpenEpisode(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []input
	}{
		{"normal between", []input{hrAt(60, 80), hrAt(110, 80), hrAt(150, 185), hrAt(100, 186)}},
		{"nothing between", []input{hrAt(60, 80), hrAt(150, 185), hrAt(100, 186)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			for i, x := range c.in {
				h.consume("mon-1", i, x)
			}
			got := finalAlerts(t, h, "mon-1", nil)
			want := map[string]string{"VITALS_EMERGENCY|patient|p-DEV|100000": "RESOLVED", "VITALS_EMERGENCY|patient|p-DEV|150000": "OPEN"}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			// The late part and replays change nothing; a newer normal
			// reading resolves the open one.
			for i, x := range slices.Concat([]input{hrAt(120, 186), hrAt(160, 190)}, c.in, []input{hrAt(200, 80)}) {
				h.consume("mon-1", 10+i, x)
			}
			if got := fmt.Sprint(alertStrings(h)); got != "[RESOLVED:VITALS_EMERGENCY|patient|p-mon-1|150000]" {
				t.Fatalf("then: %s", got)
			}
		})
	}
}

// TestLateNormalReadingsChangeNothing: a normal reading (online status,
// charged battery) older than the newest judged one ends no episode:
// not the open one (older than its latest abnormal reading, see also
// TestLateNormalReadingDoesNotResolve), not a past one it falls in.
func TestLateNormalReadingsChangeNothing(t *testing.T) {
	h := newHarness(t)
	for i, x := range []input{statusAt(60, false, 10), statusAt(120, false, 10), statusAt(90, true, 90), batteryAt(100, 95)} {
		h.consume("mon-1", i, x)
	}
	want := "[OPEN:DEVICE_OFFLINE|device|mon-1|60000 OPEN:LOW_BATTERY|device|mon-1|60000]"
	if got := fmt.Sprint(alertStrings(h)); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	h.consume("mon-1", 10, statusAt(180, true, 90))
	want = "[RESOLVED:DEVICE_OFFLINE|device|mon-1|60000 RESOLVED:LOW_BATTERY|device|mon-1|60000]"
	if got := fmt.Sprint(alertStrings(h)); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// Within the past episode (60-180 s): offline again or not, nothing.
	for i, x := range []input{statusAt(150, true, 90), statusAt(100, false, 10), statusAt(170, false, 10), statusAt(90, true, 80), batteryAt(175, 12)} {
		h.consume("mon-1", 20+i, x)
	}
	if got := alertStrings(h); len(got) != 0 {
		t.Fatalf("late readings within a past episode raised %v", got)
	}
}

// TestClosedEpisodesBounded: a condition keeps its latest MaxPrevEpisodes
// closed episodes, newest first (here 9 closed, the 10th open).
func TestClosedEpisodesBounded(t *testing.T) {
	h := newHarness(t)
	for i := range 2 * (anomaly.MaxPrevEpisodes + 2) {
		hr := 80.0
		if i%2 == 1 {
			hr = 185
		}
		h.consume("mon-1", i, hrAt(int64(60*(i+1)), hr))
	}
	c := stateOf(t, h, "mon-1").Closed[anomaly.EpisodeKey{Type: int32(pb.AlertType_VITALS_EMERGENCY), Subject: "p-mon-1"}]
	if len(c) != anomaly.MaxPrevEpisodes || c[0] != (anomaly.Span{Start: 1_080_000, Last: 1_140_000}) || c[len(c)-1].Start != 240_000 {
		t.Fatalf("closed episodes %v", c)
	}
}

// TestStateFormatV6: a state written before closed episodes were kept
// (format 6: judged conditions last) still decodes, without any.
func TestStateFormatV6(t *testing.T) {
	s := &anomaly.State{Tenant: "t1", Judged: map[anomaly.EpisodeKey]int64{{Type: int32(pb.AlertType_LOW_BATTERY), Subject: "mon-1"}: 180_000}}
	b, _ := s.AppendBinary(nil)
	if b[0] != 7 || b[len(b)-1] != 0 {
		t.Fatalf("format %d, ends %x", b[0], b[len(b)-1])
	}
	v6 := append([]byte{6}, b[1:len(b)-1]...)
	st, err := anomaly.DecodeState(v6)
	if err != nil || !reflect.DeepEqual(st, s) {
		t.Fatalf("format 6: %+v, %v", st, err)
	}
}
