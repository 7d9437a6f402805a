package codec_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

func sample() *pb.MedicationIntake {
	return &pb.MedicationIntake{
		Meta:         &pb.Meta{Tenant: "hospital-a", EventId: "e1", EventTimeMs: 1700000000000, IngestTimeMs: 1700000000500},
		DeviceId:     "pc-1",
		PatientId:    "p-1",
		MedicationId: "m-1",
		IntakeTimeMs: 1700000000000,
		Status:       "taken",
		Dosage:       5,
	}
}

func TestGokaRoundTrip(t *testing.T) {
	c := codec.NewGoka(func() *pb.MedicationIntake { return &pb.MedicationIntake{} })
	b, err := c.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(v.(*pb.MedicationIntake), sample()) {
		t.Fatalf("round trip changed the record: %v", v)
	}
	if _, err := c.Encode("not a record"); err == nil {
		t.Fatal("encoding a string must fail")
	}
}

func TestJSONFieldNamesFollowSeeds(t *testing.T) {
	b, err := codec.JSON(sample())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"deviceId"`, `"patientId"`, `"medicationId"`, `"intakeTimeMs"`, `"eventId"`} {
		if !containsStr(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back pb.MedicationIntake
	if err := codec.FromJSON(b, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, sample()) {
		t.Fatalf("JSON round trip changed the record")
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzDecodeEveryTopic feeds arbitrary bytes to the decoder of every catalog
// topic: it must never panic, and whatever decodes must re-encode and decode
// to an equal message.
func FuzzDecodeEveryTopic(f *testing.F) {
	b, _ := codec.Marshal(sample())
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	all := topics.All()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tp := range all {
			m := tp.New()
			if err := codec.Unmarshal(data, m); err != nil {
				continue
			}
			again, err := codec.Marshal(m)
			if err != nil {
				t.Fatalf("%s: re-encode: %v", tp.Name, err)
			}
			m2 := tp.New()
			if err := codec.Unmarshal(again, m2); err != nil {
				t.Fatalf("%s: decode of re-encoded: %v", tp.Name, err)
			}
			if !proto.Equal(m, m2) {
				t.Fatalf("%s: round trip differs", tp.Name)
			}
			if _, err := codec.JSON(m); err != nil {
				// Invalid UTF-8 in string fields is the only way JSON fails.
				continue
			}
		}
	})
}

// FuzzFromJSON: arbitrary JSON must never panic the JSON decoder.
func FuzzFromJSON(f *testing.F) {
	f.Add([]byte(`{"deviceId":"d","patientId":"p","intakeTimeMs":"1"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.MedicationIntake
		if err := codec.FromJSON(data, &m); err == nil {
			if _, err := codec.JSON(&m); err != nil {
				t.Fatalf("accepted JSON does not render back: %v", err)
			}
		}
	})
}
