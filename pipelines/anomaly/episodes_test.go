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
