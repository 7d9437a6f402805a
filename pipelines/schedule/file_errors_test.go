package schedule_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/pipelines/schedule"
)

// TestParseFileReportsEveryProblem: ParseFile promises "all problems
// are returned at once", but a strict-decoding error (one mistyped key)
// returns before any entry is validated, so the other entries' problems
// (a bad zone, a bad time, the missing version) are not reported.
func TestParseFileReportsEveryProblem(t *testing.T) {
	_, _, err := schedule.ParseFile(strings.NewReader(`schedules:
  - patient_id: p1
    medication_id: m1
    timezone: Europe/Berlin
    times: ["08:00"]
    start_date: 2026-01-01
    versoin: 2
  - patient_id: p2
    medication_id: m2
    timezone: Mars/Olympus
    times: ["25:00"]
    start_date: 2026-01-01
    version: 1
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"versoin", "schedules[0]", "version", "schedules[1]", "timezone", "times[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestParseFileMultiDocument: a file of several YAML documents
// ("---") publishes the first document's schedules and silently drops the
// rest, including invalid entries that would have been reported.
func TestParseFileMultiDocument(t *testing.T) {
	_, scheds, err := schedule.ParseFile(strings.NewReader(`schedules:
  - {patient_id: p1, medication_id: m1, timezone: Europe/Berlin, times: ["08:00"], start_date: 2026-01-01, version: 1}
---
schedules:
  - {patient_id: p2, medication_id: m2, timezone: Europe/Berlin, times: ["08:00"], start_date: 2026-01-01, version: 0}
`))
	if err == nil {
		t.Fatalf("second document ignored: %d schedule(s) accepted, no error for its version 0", len(scheds))
	}
}
