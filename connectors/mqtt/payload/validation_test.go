package payload_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// README (dead letters): batch_malformed covers a count mismatch, and the
// general path (decodeBatch) rejects any count that differs from the number
// of messages. The batch encoder treats a negative count as "no count"
// (vitalsbatch.go: count >= 0 && count != e.n), so {"count":-1} with one
// reading becomes a VitalsBatch record instead of a dead letter, and the
// encoder's record differs from the reference path's answer.
func TestBatchNegativeCountIsMalformed(t *testing.T) {
	ms := now.Add(-time.Hour).UnixMilli()
	raw := []byte(fmt.Sprintf(`{"batchId":"b1","deviceId":"d1","count":-1,"messages":[{"timestamp":%d,"heartRate":70}]}`, ms))
	ref := payload.Decode(payload.Batch, batchSrc, raw, payload.GeneralPath(batchOpts()))
	if len(ref) != 1 || ref[0].Reason != payload.ReasonBatchMalformed {
		t.Fatalf("general path: %v, want one batch_malformed dead letter", ref)
	}
	outs := payload.Decode(payload.Batch, batchSrc, raw, batchOpts())
	if len(outs) != 1 || outs[0].Reason != payload.ReasonBatchMalformed {
		t.Errorf("count -1 for 1 message: Decode gave %d output(s), first on %s with reason %q; the general path gives batch_malformed",
			len(outs), outs[0].Topic, outs[0].Reason)
	}
}

// Contract: "timestamps within a configurable window". build checks the
// event time of intakes, telemetry and statuses against MaxAge/MaxSkew, but
// a schedule's timestamp becomes its event time unchecked.
func TestScheduleTimestampWindow(t *testing.T) {
	src := payload.Source{Topic: "medical/devices/d1/medication_schedule", DeviceID: "d1"}
	for _, ts := range []time.Time{now.Add(365 * 24 * time.Hour), now.Add(-10 * 365 * 24 * time.Hour)} {
		raw := []byte(fmt.Sprintf(`{"deviceId":"d1","patientId":"p1","medicationId":"m1","times":["08:00"],"timestamp":%d}`, ts.UnixMilli()))
		outs := payload.Decode(payload.Schedule, src, raw, opts())
		if len(outs) != 1 || outs[0].Reason != payload.ReasonTimestamp {
			ev := int64(0)
			if m, ok := outs[0].Msg.(*pb.DoseSchedule); ok {
				ev = m.GetMeta().GetEventTimeMs()
			}
			t.Errorf("schedule with timestamp %s (now %s, max age 30d, max skew 10m): output on %s, reason %q, event time %s; want timestamp_out_of_window",
				ts.Format(time.RFC3339), now.Format(time.RFC3339), outs[0].Topic, outs[0].Reason, time.UnixMilli(ev).UTC().Format(time.RFC3339))
		}
	}
}
