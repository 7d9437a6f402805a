package dose_test

import (
	"testing"

	"github.com/wardstream/wardstream/schemas/dose"
)

func TestCheckWindows(t *testing.T) {
	cases := []struct {
		grace, early, late int32
		errs               int
	}{
		{0, 0, 0, 0},   // 15, 60, 240
		{60, 0, 0, 0},  // grace = early: fine
		{120, 0, 0, 1}, // early 60 < 120
		{30, 0, 10, 1}, // late 10 < 30
		{0, 10, 0, 1},  // early 10 < 15
		{0, 10, 10, 2},
		{15, 15, 15, 0},
	}
	for _, c := range cases {
		if got := len(dose.CheckWindows(c.grace, c.early, c.late)); got != c.errs {
			t.Errorf("grace %d early %d late %d: %d errors, want %d", c.grace, c.early, c.late, got, c.errs)
		}
	}
	if g, e, l := dose.Windows(0, 0, 0); g != 15 || e != 60 || l != 240 {
		t.Errorf("defaults %d %d %d", g, e, l)
	}
}
