package anomaly_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/lovoo/goka"
	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func (h *harness) vitals(id string, ev int64, device, patient string, hr float64) {
	v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: ev},
		DeviceId: device, PatientId: patient, Kind: "vitals", HeartRate: hr, Present: []string{"heart_rate"}}
	b, _ := codec.Marshal(v)
	h.tt.Consume(h.cfg.Topics.Vitals, device, b)
}

// pump reports a PUMP_FAILURE of pump-1 at event time ev.
func (h *harness) pump(id string, ev int64) {
	v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: id, EventTimeMs: ev},
		DeviceId: "pump-1", Kind: "alerts", AlertType: "PUMP_FAILURE"}
	b, _ := codec.Marshal(v)
	h.tt.Consume(h.cfg.Topics.Vitals, "pump-1", b)
}

func alertStrings(h *harness) []string {
	var got []string
	for _, a := range drainAlerts(h.alert) {
		got = append(got, a.State.String()+":"+a.AlertId)
	}
	return got
}

// TestEmergencyOfSecondPatientOnSameDevice: the state keeps a baseline per
// patient seen on a device, but the open vitals episodes are keyed by alert
// type only. A second patient's EMERGENCY on the same monitor while the
// first patient's EMERGENCY is open raises no alert at all.
func TestEmergencyOfSecondPatientOnSameDevice(t *testing.T) {
	h := newHarness(t)
	h.vitals("r1", 60_000, "mon-1", "p1", 185)  // p1: 8.5 EMERGENCY opens
	h.vitals("r2", 120_000, "mon-1", "p2", 190) // p2: 9 EMERGENCY must open too
	got := fmt.Sprint(alertStrings(h))
	want := fmt.Sprint([]string{
		"OPEN:VITALS_EMERGENCY|patient|p1|60000",
		"OPEN:VITALS_EMERGENCY|patient|p2|120000",
	})
	if got != want {
		t.Fatalf("alert requests\n got %s\nwant %s", got, want)
	}
}

// TestNormalReadingOfOtherPatientResolvesAlert: a normal reading of patient
// p2 on the same monitor resolves patient p1's open EMERGENCY (p1 is still
// in emergency: nothing about p1 changed).
func TestNormalReadingOfOtherPatientResolvesAlert(t *testing.T) {
	h := newHarness(t)
	h.vitals("r1", 60_000, "mon-1", "p1", 185) // p1 EMERGENCY
	h.vitals("r2", 120_000, "mon-1", "p2", 80) // p2 normal
	for _, a := range drainAlerts(h.alert) {
		if a.State == pb.AlertState_RESOLVED {
			t.Fatalf("p2's normal reading resolved %s (subject %s)", a.AlertId, a.SubjectId)
		}
	}
}

// TestResolveWithoutPatientIDMissesOpenAlert: an episode opened by a
// reading with a patient id is resolved by a reading without one (same
// device); the RESOLVED request is built with the *current* reading's
// subject type but the episode's subject, so its id matches no alert: the
// alerts group ignores it and the alert stays open forever, while the
// anomaly state has forgotten the episode.
func TestResolveWithoutPatientIDMissesOpenAlert(t *testing.T) {
	h := newHarness(t)
	h.vitals("r1", 60_000, "mon-1", "p1", 185) // OPEN VITALS_EMERGENCY|patient|p1|60000
	h.vitals("r2", 120_000, "mon-1", "", 80)   // normal, no patient id
	var opened, resolved []string
	for _, a := range drainAlerts(h.alert) {
		switch a.State {
		case pb.AlertState_OPEN:
			opened = append(opened, a.AlertId)
		case pb.AlertState_RESOLVED:
			resolved = append(resolved, a.AlertId)
		}
	}
	for _, r := range resolved {
		ok := false
		for _, o := range opened {
			ok = ok || o == r
		}
		if !ok {
			t.Fatalf("RESOLVED request for an id never opened: %s (opened %v)", r, opened)
		}
	}
}

// TestImplausibleReadingsDeadLettered: one absurd but finite reading
// (heart rate 1e200, valid JSON) made the EWMA variance infinite, so every
// later z-score was 0 and the patient's learned normal never flagged
// anything again. Values outside Plausible go to the dead-letter topic,
// unscored and unlearned; the boundaries themselves are readings.
func TestImplausibleReadingsDeadLettered(t *testing.T) {
	for _, tc := range []struct {
		hr   float64
		dead bool
	}{{1e200, true}, {-1, true}, {350.5, true}, {math.Inf(1), true}, {350, false}, {0, false}} {
		t.Run(fmt.Sprint(tc.hr), func(t *testing.T) {
			h := newHarness(t)
			for i := 0; i < 30; i++ {
				h.vitals(fmt.Sprint("r", i), int64(i+1)*60_000, "mon-1", "p1", 62+float64(i%3)-1)
			}
			h.score.Seek(h.score.Hwm())
			h.vitals("x", 31*60_000, "mon-1", "p1", tc.hr)
			_, dl, dead := h.dlq.Next()
			if dead != tc.dead {
				t.Fatalf("heart rate %v dead-lettered: %v, want %v", tc.hr, dead, tc.dead)
			}
			if !dead {
				return
			}
			if r := dl.(*pb.DeadLetter).GetReason(); r != anomaly.ReasonImplausible {
				t.Fatalf("reason %q, want %q", r, anomaly.ReasonImplausible)
			}
			if _, _, ok := h.score.Next(); ok {
				t.Fatal("an implausible reading was scored")
			}
			// The baseline still knows the patient's normal: 80 bpm
			// against 62 +- 1 is an emergency.
			h.vitals("after", 32*60_000, "mon-1", "p1", 80)
			_, sc, ok := h.score.Next()
			if !ok || sc.(*pb.AnomalyScore).GetScore() != 10 {
				t.Fatalf("after the dead-lettered reading, 80 bpm against a normal of 62 scored %v", sc)
			}
		})
	}
}

// TestNaNReadingPoisonsBaseline: a NaN heart rate (a protobuf double can
// carry it) is scored NORMAL, is not dead-lettered, and makes the
// patient's baseline mean NaN for good.
func TestNaNReadingPoisonsBaseline(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 30; i++ {
		h.vitals(fmt.Sprint("r", i), int64(i+1)*60_000, "mon-1", "p1", 62+float64(i%3)-1)
	}
	h.vitals("nan", 31*60_000, "mon-1", "p1", math.NaN())
	if _, _, ok := h.dlq.Next(); !ok {
		v := h.tt.TableValue(goka.GroupTable(goka.Group(h.cfg.Group)), "mon-1").(*anomaly.State)
		t.Fatalf("NaN reading not dead-lettered; baseline mean now %v", v.Patients["p1"].Mean[anomaly.HR])
	}
}

// TestLateDeviceEventSplitsEpisode: PUMP_FAILURE reports at 10, 9
// (a late, buffered one) and 11 minutes are one failure episode (gaps well
// under EpisodeQuiet), but the late report starts a second episode with its
// own alert id, so one failure raises two alerts, depending on arrival
// order only.
func TestLateDeviceEventSplitsEpisode(t *testing.T) {
	h := newHarness(t)
	h.pump("a", 10*60_000)
	h.pump("b", 9*60_000)
	h.pump("c", 11*60_000)
	ids := map[string]bool{}
	for _, a := range drainAlerts(h.alert) {
		ids[a.AlertId] = true
	}
	if len(ids) != 1 {
		t.Fatalf("one pump failure episode raised %d alert ids: %v", len(ids), ids)
	}
}

// TestStateFormatV1: a state written before episodes were keyed by subject
// (format 1: type, start, last, subject; no subject type) still decodes,
// and its open episode resolves under the id it was opened with: the
// patient when the subject is not the device.
func TestStateFormatV1(t *testing.T) {
	v1 := []byte{1, 2, 't', '1', 0, 1}
	v1 = binary.AppendVarint(v1, int64(pb.AlertType_VITALS_EMERGENCY))
	v1 = binary.AppendVarint(v1, 60_000)
	v1 = binary.AppendVarint(v1, 60_000)
	v1 = append(v1, 2, 'p', '1')
	st, err := anomaly.DecodeState(v1)
	if err != nil {
		t.Fatal(err)
	}
	k := anomaly.EpisodeKey{Type: int32(pb.AlertType_VITALS_EMERGENCY), Subject: "p1"}
	if e, ok := st.Episodes[k]; !ok || e.Start != 60_000 || e.SubjectType != "" {
		t.Fatalf("format 1 episodes: %+v", st.Episodes)
	}
	h := newHarness(t)
	h.tt.SetTableValue(goka.GroupTable(goka.Group(h.cfg.Group)), "mon-1", st)
	h.vitals("r2", 120_000, "mon-1", "p1", 80)
	got := fmt.Sprint(alertStrings(h))
	if want := "[RESOLVED:VITALS_EMERGENCY|patient|p1|60000]"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestLateNormalReadingDoesNotResolve: a normal reading older than the
// open episode's latest abnormal one (flushed from the monitor's buffer)
// does not end the episode; a newer normal one does.
func TestLateNormalReadingDoesNotResolve(t *testing.T) {
	h := newHarness(t)
	h.vitals("r1", 60_000, "mon-1", "p1", 185)  // EMERGENCY opens
	h.vitals("r2", 120_000, "mon-1", "p1", 186) // continues
	h.vitals("late", 90_000, "mon-1", "p1", 80) // older than the episode's last: no resolve
	if got := fmt.Sprint(alertStrings(h)); got != "[OPEN:VITALS_EMERGENCY|patient|p1|60000]" {
		t.Fatalf("after a late normal reading: %s", got)
	}
	h.vitals("r3", 180_000, "mon-1", "p1", 80)
	if got := fmt.Sprint(alertStrings(h)); got != "[RESOLVED:VITALS_EMERGENCY|patient|p1|60000]" {
		t.Fatalf("after a newer normal reading: %s", got)
	}
}

// TestVitalsUnderAnotherKeyDeadLettered: the state is the device's, so a
// reading under another key (or none, which goka reads as "") is refused.
func TestVitalsUnderAnotherKeyDeadLettered(t *testing.T) {
	for _, key := range []string{"", "mon-2"} {
		h := newHarness(t)
		v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: "r1", EventTimeMs: 60_000},
			DeviceId: "mon-1", PatientId: "p1", Kind: "vitals", HeartRate: 80, Present: []string{"heart_rate"}}
		b, _ := codec.Marshal(v)
		h.tt.Consume(h.cfg.Topics.Vitals, key, b)
		_, dl, ok := h.dlq.Next()
		if !ok || dl.(*pb.DeadLetter).GetReason() != "bad_key" {
			t.Fatalf("key %q: dead letter %v, want reason bad_key", key, dl)
		}
		if _, _, ok := h.score.Next(); ok {
			t.Fatalf("key %q: the reading was scored", key)
		}
	}
}

// TestLateEpisodesInAnyOrderKeepTheirIDs: a pump flushing its buffer
// reports three failure episodes out of order (10-12 min, 50-51 min,
// 100 min); every report of an episode carries that episode's alert id,
// however the reports interleave (the state kept one earlier episode
// before: the 11 and 12 min reports then opened a third and a fourth id).
func TestLateEpisodesInAnyOrderKeepTheirIDs(t *testing.T) {
	h := newHarness(t)
	const min = 60_000
	order := []int64{100, 10, 50, 11, 51, 12}
	idOf := map[int64]string{}
	for i, m := range order {
		h.pump(fmt.Sprint("e", i), m*min)
		as := drainAlerts(h.alert)
		if len(as) != 1 {
			t.Fatalf("report at %d min: %d alert requests", m, len(as))
		}
		idOf[m] = as[0].AlertId
	}
	if idOf[11] != idOf[10] || idOf[12] != idOf[10] || idOf[51] != idOf[50] {
		t.Fatalf("late reports of one episode under different ids: %v", idOf)
	}
	if idOf[10] == idOf[50] || idOf[50] == idOf[100] || idOf[10] == idOf[100] {
		t.Fatalf("three episodes share an id: %v", idOf)
	}
}

// TestStateFormatV3: a state written with one earlier episode (format 3)
// is read with it as the only earlier episode.
func TestStateFormatV3(t *testing.T) {
	v3 := []byte{3, 2, 't', '1', 0, 1}
	v3 = binary.AppendVarint(v3, int64(pb.AlertType_PUMP_FAILURE))
	v3 = binary.AppendVarint(v3, 100*60_000)
	v3 = binary.AppendVarint(v3, 100*60_000)
	v3 = append(v3, 6, 'p', 'u', 'm', 'p', '-', '1', 6, 'd', 'e', 'v', 'i', 'c', 'e')
	v3 = binary.AppendVarint(v3, 10*60_000)
	v3 = binary.AppendVarint(v3, 11*60_000)
	st, err := anomaly.DecodeState(v3)
	if err != nil {
		t.Fatal(err)
	}
	k := anomaly.EpisodeKey{Type: int32(pb.AlertType_PUMP_FAILURE), Subject: "pump-1"}
	if e := st.Episodes[k]; e.Start != 100*60_000 || len(e.Prev) != 1 || e.Prev[0] != (anomaly.Span{Start: 10 * 60_000, Last: 11 * 60_000}) {
		t.Fatalf("format 3 episode: %+v", st.Episodes)
	}
	b, _ := st.AppendBinary(nil)
	again, err := anomaly.DecodeState(b)
	if err != nil || fmt.Sprint(again.Episodes) != fmt.Sprint(st.Episodes) {
		t.Fatalf("re-encoded: %+v, %v", again.Episodes, err)
	}
}
