package bench

import "testing"

func TestParseCPUTimes(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		ok   bool
		want cpuTimes
	}{
		{"linux", "cpu  990400 624 252756 881039 12664 0 18214 19400 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", true,
			cpuTimes{busy: (990400 + 624 + 252756 + 0 + 18214) / 100.0, idle: (881039 + 12664) / 100.0, steal: 194}},
		{"no steal column", "cpu  1 2 3 4 5 6 7\n", false, cpuTimes{}},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", false, cpuTimes{}},
		{"garbage", "cpu a b c d e f g h\n", false, cpuTimes{}},
		{"empty", "", false, cpuTimes{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseCPUTimes(tc.stat)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseCPUTimes = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	// On this (Linux) machine the watch reports something sane.
	if _, ok := readCPUTimes(); ok {
		r := startHostWatch().stop()
		if r == nil || r.Cores < 1 || r.StealShare < 0 || r.BusySeconds < 0 {
			t.Fatalf("host watch: %+v", r)
		}
	}
}

func FuzzParseCPUTimes(f *testing.F) {
	f.Add("cpu  990400 624 252756 881039 12664 0 18214 19400 0 0\n")
	f.Add("cpu 1 2 3\n")
	f.Fuzz(func(t *testing.T, s string) {
		if c, ok := parseCPUTimes(s); ok && (c.busy < 0 || c.idle < 0 || c.steal < 0) {
			t.Fatalf("negative times from %q: %+v", s, c)
		}
	})
}
