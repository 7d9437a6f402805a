package topics_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/schemas/topics"
)

func TestCatalogIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range topics.All() {
		if seen[tp.Name] {
			t.Errorf("%s listed twice", tp.Name)
		}
		seen[tp.Name] = true
		if !strings.HasPrefix(tp.Name, "wardstream.") {
			t.Errorf("%s: topic names start with wardstream.", tp.Name)
		}
		if tp.Partitions < 1 || tp.Key == "" || tp.Value == nil || tp.Doc == "" {
			t.Errorf("%s: incomplete entry %+v", tp.Name, tp)
		}
		if got, ok := topics.Lookup(tp.Name); !ok || got.Name != tp.Name {
			t.Errorf("Lookup(%q) failed", tp.Name)
		}
	}
	for _, name := range []string{topics.Schedules, topics.Shadows} {
		tp, _ := topics.Lookup(name)
		if tp.Policy != topics.Compact {
			t.Errorf("%s must be compacted", name)
		}
	}
	for _, name := range []string{topics.Intake, topics.DoseOutcomes, topics.Adherence} {
		tp, _ := topics.Lookup(name)
		if tp.Key != topics.KeyPatient {
			t.Errorf("%s must be keyed by patient, is %s", name, tp.Key)
		}
	}
	for _, name := range []string{topics.Vitals, topics.DeviceStatus} {
		tp, _ := topics.Lookup(name)
		if tp.Key != topics.KeyDevice {
			t.Errorf("%s must be keyed by device, is %s", name, tp.Key)
		}
	}
	tp, _ := topics.Lookup(topics.Detections)
	if tp.Key != topics.KeyCamera {
		t.Errorf("detections must be keyed by camera")
	}
}
