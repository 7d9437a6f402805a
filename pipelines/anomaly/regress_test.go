package anomaly_test

import (
	"fmt"
	"math"
	"testing"

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
