package bench_test

import (
	"os"
	"testing"

	"github.com/wardstream/wardstream/bench"
)

// FuzzParseScenario: scenario files are user input; parsing never panics
// and whatever parses is valid.
func FuzzParseScenario(f *testing.F) {
	for _, p := range []string{"scenarios/smoke.yaml", "scenarios/fleet.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("name: x\nmonitors: {count: 1, hz: 1}\n"))
	f.Add([]byte("name: [\n"))
	f.Add([]byte("pillcases: {count: -1, profiles: {adherent: -1}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := bench.ParseScenario(data)
		if err != nil {
			return
		}
		if verr := sc.Validate(); verr != nil {
			t.Fatalf("parsed scenario fails Validate: %v", verr)
		}
	})
}
