package adherence_test

import (
	"testing"

	"github.com/wardstream/wardstream/pipelines/adherence"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func TestStateCodecRoundTrip(t *testing.T) {
	s := &adherence.State{Tenant: "t", Meds: map[string]*adherence.MedState{"m": {
		Sched: []byte{1, 2}, From: -5, Through: 99,
		Doses:   []*adherence.DoseRec{{At: 10, Slot: 1, Date: "2026-01-01", Out: pb.Outcome_MISSED, Ver: 3, IntakeID: "i", Alert: true}},
		Intakes: []*adherence.Intake{{ID: "i", T: 11, Taken: true, Extra: true, Used: true, Dev: "d", Ward: "w", Verif: "v", ExtraVer: 2}},
		Days:    map[string][2]int{"2025-12-31": {3, 2}}, AdhVer: 7, Low: true, LowAlert: "m|2025-12-31", Ward: "w", Device: "d",
		Hist: []*adherence.SchedVer{{Ver: 1, From: -5, Sched: []byte{1}}, {Ver: 2, From: 50, Sched: []byte{1, 2}}},
		Gone: []*adherence.DoseRec{{At: 40, Slot: 2, Ver: 4}}, Pruned: 33,
	}}}
	b := s.AppendBinary(nil)
	got, err := adherence.DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.AppendBinary(nil)) != string(b) {
		t.Fatal("round trip changed the state")
	}
	m := got.Meds["m"]
	if !m.Doses[0].Alert || !m.Intakes[0].Used || m.Days["2025-12-31"] != [2]int{3, 2} || !m.Low || m.From != -5 ||
		len(m.Hist) != 2 || m.Hist[1].From != 50 || len(m.Gone) != 1 || m.Gone[0].Ver != 4 || m.Pruned != 33 {
		t.Fatalf("fields lost: %+v", m)
	}
	for i := 0; i < len(b); i++ {
		if _, err := adherence.DecodeState(b[:i]); err == nil {
			t.Fatalf("truncated state (%d of %d bytes) decoded", i, len(b))
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	s := &adherence.State{Tenant: "t", Meds: map[string]*adherence.MedState{"m": {Doses: []*adherence.DoseRec{{At: 1, Date: "d"}},
		Intakes: []*adherence.Intake{{ID: "i", T: 2}}, Days: map[string][2]int{"d": {1, 1}}}}}
	f.Add(s.AppendBinary(nil))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := adherence.DecodeState(data)
		if err != nil {
			return
		}
		if _, err := adherence.DecodeState(s.AppendBinary(nil)); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

// TestStateFormat1Decodes: states written before the schedule history
// (format 1: no history, no retracted doses) and before the prune
// watermark (format 2) still decode.
func TestStateFormat1Decodes(t *testing.T) {
	s := &adherence.State{Tenant: "t", Meds: map[string]*adherence.MedState{"m": {Sched: []byte{1, 2}, From: 7, Through: 9,
		Doses: []*adherence.DoseRec{{At: 8, Date: "d"}}}}}
	b := s.AppendBinary(nil)
	// Format 2 appends two empty counts per medication, format 3 a zero
	// prune watermark.
	if b[0] != 3 || b[len(b)-1] != 0 || b[len(b)-2] != 0 || b[len(b)-3] != 0 {
		t.Fatalf("unexpected format 3 layout: % x", b)
	}
	v2 := append([]byte{2}, b[1:len(b)-1]...)
	v1 := append([]byte{1}, b[1:len(b)-3]...)
	for _, old := range [][]byte{v1, v2} {
		got, err := adherence.DecodeState(old)
		if err != nil {
			t.Fatalf("format %d: %v", old[0], err)
		}
		if m := got.Meds["m"]; string(m.Sched) != "\x01\x02" || m.From != 7 || len(m.Doses) != 1 || m.Hist != nil || m.Pruned != 0 {
			t.Fatalf("format %d state decoded as %+v", old[0], m)
		}
		if string(got.AppendBinary(nil)) != string(b) {
			t.Fatalf("format %d state does not re-encode as the same format 3 state", old[0])
		}
	}
}
