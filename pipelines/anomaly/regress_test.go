package anomaly_test

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/pipelines/anomaly"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// TestPumpFailureWithUnreadableRateStillAlerts: checkValues dead-letters
// the whole reading when any numeric field is NaN, also fields that are
// never scored (administrationRate, temperature, ...). A failing pump that
// reports its failure with a NaN administration rate loses its CRITICAL
// PUMP_FAILURE alert: the device event goes to the dead-letter topic with
// the value. Before the change the alert was raised.
func TestPumpFailureWithUnreadableRateStillAlerts(t *testing.T) {
	h := newHarness(t)
	v := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: "f1", EventTimeMs: 60_000},
		DeviceId: "pump-1", Kind: "alerts", AlertType: "PUMP_FAILURE", AdministrationRate: math.NaN()}
	b, _ := codec.Marshal(v)
	h.tt.Consume(h.cfg.Topics.Vitals, "pump-1", b)
	got := fmt.Sprint(alertStrings(h))
	if want := "[OPEN:PUMP_FAILURE|device|pump-1|60000]"; got != want {
		_, dl, _ := h.dlq.Next()
		t.Fatalf("pump failure reported with a NaN rate: alert requests %s, want %s (dead letter: %v)", got, want, dl.(*pb.DeadLetter).GetError())
	}
}

// TestLateEarlierEpisodeIsOneAlert: a pump flushes its buffer after a
// failure at 100 min is open: three reports of an earlier failure at 10,
// 11 and 12 min (one episode: gaps well under EpisodeQuiet). event()
// requests each one under its own start, so the one earlier failure
// raises three alerts; arrival order still decides how many alerts one
// failure gets.
func TestLateEarlierEpisodeIsOneAlert(t *testing.T) {
	h := newHarness(t)
	h.pump("now", 100*60_000)
	h.pump("l1", 10*60_000)
	h.pump("l2", 11*60_000)
	h.pump("l3", 12*60_000)
	ids := map[string]bool{}
	for _, a := range drainAlerts(h.alert) {
		ids[a.AlertId] = true
	}
	if len(ids) != 2 {
		t.Fatalf("two failure episodes (100 min, and 10-12 min flushed late) raised %d alert ids: %v", len(ids), ids)
	}
}

// TestStateEncodingIsOrderIndependent: a state encodes to the same bytes
// whatever order its maps were filled in, with one key or more keys than
// the encoder sorts on its stack, and decodes back to itself.
func TestStateEncodingIsOrderIndependent(t *testing.T) {
	for _, n := range []int{1, 2, 4, 5, 9} {
		var encs []string
		for _, reverse := range []bool{false, true} {
			s := &anomaly.State{Tenant: "t", Patients: map[string]*anomaly.Baseline{}, Episodes: map[anomaly.EpisodeKey]anomaly.Episode{}}
			for j := range n {
				i := j
				if reverse {
					i = n - 1 - j
				}
				s.Patients[fmt.Sprint("p-", i)] = &anomaly.Baseline{N: [3]int64{int64(i), 1, 2}, Mean: [3]float64{float64(60 + i), 120, 97}}
				s.Episodes[anomaly.EpisodeKey{Type: int32(i % 3), Subject: fmt.Sprint("p-", i)}] = anomaly.Episode{Start: int64(i), Last: int64(i + 1), SubjectType: "patient"}
			}
			b, err := anomaly.StateCodec{}.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			d, err := anomaly.DecodeState(b)
			if err != nil {
				t.Fatalf("%d keys: %v", n, err)
			}
			if !reflect.DeepEqual(d, s) {
				t.Fatalf("%d keys: decoded %+v, want %+v", n, d, s)
			}
			encs = append(encs, string(b))
		}
		if encs[0] != encs[1] {
			t.Fatalf("%d keys: encoding depends on insertion order", n)
		}
	}
}

// TestSingleReadingsShareNothing: the single-reading path reuses its
// messages from record to record; a reading's score must be what it is
// when that reading is the first one processed.
func TestSingleReadingsShareNothing(t *testing.T) {
	full := &pb.VitalsTelemetry{Meta: &pb.Meta{Tenant: "t1", EventId: "a", EventTimeMs: 1000, Source: "mqtt", IngestTimeMs: 2000},
		DeviceId: "mon-1", PatientId: "p-1", Ward: "w-1", Kind: "vitals", HeartRate: 190, SystolicBp: 150, Spo2: 80,
		Present: []string{"heart_rate", "systolic_bp", "spo2"}}
	bare := &pb.VitalsTelemetry{Meta: &pb.Meta{EventId: "b"}, DeviceId: "mon-2", HeartRate: 70}
	scoreOf := func(h *harness, v *pb.VitalsTelemetry) *pb.AnomalyScore {
		b, _ := codec.Marshal(v)
		h.tt.Consume(h.cfg.Topics.Vitals, v.DeviceId, b)
		var last *pb.AnomalyScore
		for {
			_, s, ok := h.score.Next()
			if !ok {
				return last
			}
			last = s.(*pb.AnomalyScore)
		}
	}
	alone := scoreOf(newHarness(t), bare)
	h := newHarness(t)
	scoreOf(h, full)
	after := scoreOf(h, bare)
	if alone == nil || !proto.Equal(alone, after) {
		t.Fatalf("score of a bare reading after a full one:\n%v\nalone:\n%v", after, alone)
	}
}
