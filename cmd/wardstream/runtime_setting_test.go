package main

import "testing"

// TestRuntimeSetting covers process.gomaxprocs and process.gogc: the
// topology's value applies unless it is Go's default or the environment
// variable is set.
func TestRuntimeSetting(t *testing.T) {
	cases := []struct {
		name     string
		topology int
		env      string
		want     int
		wantOK   bool
	}{
		{"default keeps Go's", 0, "", 0, false},
		{"topology sets gomaxprocs", 1, "", 1, true},
		{"topology sets gogc", 400, "", 400, true},
		{"environment wins", 1, "2", 0, false},
		{"environment off wins", 400, "off", 0, false},
		{"environment alone is Go's business", 0, "3", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := runtimeSetting(tc.topology, tc.env)
			if n != tc.want || ok != tc.wantOK {
				t.Fatalf("runtimeSetting(%d, %q) = %d, %v; want %d, %v", tc.topology, tc.env, n, ok, tc.want, tc.wantOK)
			}
		})
	}
}
