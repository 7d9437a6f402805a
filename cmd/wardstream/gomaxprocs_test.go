package main

import (
	"testing"

	"github.com/wardstream/wardstream/internal/config"
)

func TestGoMaxProcs(t *testing.T) {
	cases := []struct {
		name   string
		procs  int
		env    string
		want   int
		wantOK bool
	}{
		{"default keeps Go's", 0, "", 0, false},
		{"topology sets it", 1, "", 1, true},
		{"environment wins", 1, "2", 0, false},
		{"environment alone is Go's business", 0, "3", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := goMaxProcs(config.Process{GoMaxProcs: tc.procs}, tc.env)
			if n != tc.want || ok != tc.wantOK {
				t.Fatalf("goMaxProcs(%d, %q) = %d, %v; want %d, %v", tc.procs, tc.env, n, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestGCPercent(t *testing.T) {
	cases := []struct {
		name   string
		gogc   int
		env    string
		want   int
		wantOK bool
	}{
		{"default keeps Go's", 0, "", 0, false},
		{"topology sets it", 400, "", 400, true},
		{"environment wins", 400, "100", 0, false},
		{"environment off wins", 400, "off", 0, false},
		{"environment alone is Go's business", 0, "200", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := gcPercent(config.Process{GOGC: tc.gogc}, tc.env)
			if n != tc.want || ok != tc.wantOK {
				t.Fatalf("gcPercent(%d, %q) = %d, %v; want %d, %v", tc.gogc, tc.env, n, ok, tc.want, tc.wantOK)
			}
		})
	}
}
