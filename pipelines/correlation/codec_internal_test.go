package correlation

import (
	"encoding/json"
	"strconv"
	"testing"
)

// FuzzStateCodecs feeds arbitrary bytes (what the loop and table topics
// may hold) to the loopback and state codecs: no panics, and whatever
// decodes re-encodes to an equal value.
func FuzzStateCodecs(f *testing.F) {
	f.Add([]byte(`{"sightings":[1,2,3],"pending":[{"t":5,"i":"AAE="}]}`))
	f.Add([]byte(`{"sightings":[9],"pending":[{"t":5,"id":"i2","a":7,"i":"AAE="}],"decided":[{"id":"i1","t":4,"u":true}],"wm":12}`))
	f.Add([]byte(`{"f":1767000000000,"c":"cam-1"}`))
	f.Add([]byte(`{"s":1767000000000,"c":"cam-1"}`))
	f.Add([]byte(`{"i":"CgIIAQ=="}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := (stateCodec{}).Decode(b); err == nil {
			out, err := (stateCodec{}).Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			back, err := (stateCodec{}).Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			x, _ := json.Marshal(v)
			y, _ := json.Marshal(back)
			if string(x) != string(y) {
				t.Fatalf("state round trip: %s vs %s", x, y)
			}
		}
		if v, err := (envelopeCodec{}).Decode(b); err == nil {
			if _, err := (envelopeCodec{}).Encode(v); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestZoneStateSightings(t *testing.T) {
	var s ZoneState
	for _, v := range []int64{50, 10, 30, 30, 20} {
		s.addSighting(v)
	}
	if len(s.Sightings) != 4 || s.Sightings[0] != 10 || s.Sightings[3] != 50 {
		t.Fatalf("sightings %v", s.Sightings)
	}
	cases := []struct {
		from, to int64
		want     bool
	}{{0, 9, false}, {0, 10, true}, {11, 19, false}, {25, 35, true}, {51, 99, false}}
	for _, c := range cases {
		if got := s.sightingWithin(c.from, c.to); got != c.want {
			t.Errorf("within(%d,%d) = %v", c.from, c.to, got)
		}
	}
	s.trim(25)
	if len(s.Sightings) != 2 || s.Sightings[0] != 30 {
		t.Fatalf("after trim: %v", s.Sightings)
	}
	s.trim(100) // keeps the newest
	if len(s.Sightings) != 1 || s.Sightings[0] != 50 {
		t.Fatalf("after full trim: %v", s.Sightings)
	}
	for i := int64(0); i < 2*maxSightings; i++ {
		s.addSighting(1000 + i)
	}
	if len(s.Sightings) != maxSightings {
		t.Fatalf("%d sightings kept, want the bound %d", len(s.Sightings), maxSightings)
	}
}

func TestZoneStateDecidedBounded(t *testing.T) {
	var s ZoneState
	for i := int64(0); i < 3*maxDecided; i++ {
		s.Decided = append(s.Decided, Decided{ID: "i" + strconv.FormatInt(i, 10), IntakeMs: 1000 + i, Unverified: i%2 == 1})
	}
	s.pruneDecided(1000 + maxDecided/2)
	if len(s.Decided) != maxDecided || s.Decided[0].IntakeMs != 1000+2*maxDecided {
		t.Fatalf("%d verdicts kept from %d, want the newest %d", len(s.Decided), s.Decided[0].IntakeMs, maxDecided)
	}
	if d, ok := s.decided("i" + strconv.Itoa(3*maxDecided-1)); !ok || d.Verdict() != Unverified {
		t.Fatalf("newest verdict %v %v", d, ok)
	}
	if _, ok := s.decided("i0"); ok {
		t.Fatal("pruned verdict still known")
	}
	s.pruneDecided(1 << 62)
	if s.Decided != nil {
		t.Fatalf("all pruned: %v", s.Decided)
	}
}
