package anomaly

import (
	"math"
	"slices"
)

// Metrics scored, in baseline order.
const (
	HR = iota
	BP
	SpO2
	nMetrics
)

var metricNames = [nMetrics]string{"heart_rate", "systolic_bp", "spo2"}

// Vitals is one reading's scored values; Has says which the device sent.
type Vitals struct {
	V   [nMetrics]float64
	Has [nMetrics]bool
}

// RuleScore is the seed's calculateAnomalyScore, exactly: each rule scores
// min(10, excess/scale) and the reading scores the highest rule (0 when no
// rule fires; the seed's Math.max() of nothing is -Infinity, which we read
// as "no anomaly"):
//
//	heart rate > 100:   (hr - 100) / 10
//	heart rate < 60:    (60 - hr) / 10
//	systolic BP > 140:  (bp - 140) / 10
//	SpO2 < 95:          (95 - spo2) / 2
//
// It returns the score and the reasons (rules that fired).
func RuleScore(v Vitals) (float64, []string) {
	score := 0.0
	var reasons []string
	fire := func(s float64, why string) {
		s = math.Min(10, s)
		reasons = append(reasons, why)
		score = math.Max(score, s)
	}
	if v.Has[HR] {
		if v.V[HR] > 100 {
			fire((v.V[HR]-100)/10, "heart_rate_high")
		} else if v.V[HR] < 60 {
			fire((60-v.V[HR])/10, "heart_rate_low")
		}
	}
	if v.Has[BP] && v.V[BP] > 140 {
		fire((v.V[BP]-140)/10, "blood_pressure_high")
	}
	if v.Has[SpO2] && v.V[SpO2] < 95 {
		fire((95-v.V[SpO2])/2, "spo2_low")
	}
	return score, reasons
}

// Baseline is a patient's exponentially weighted mean and variance per
// metric (West's EWMA update), learned from every reading newer than the
// ones learned before (see [Baseline.Admit]).
type Baseline struct {
	N    [nMetrics]int64
	Mean [nMetrics]float64
	Var  [nMetrics]float64
	// Last is the event time (Unix ms) of the newest reading learned, and
	// LastIDs the event ids learned at that time (at most [MaxLastIDs]).
	Last    int64
	LastIDs []string
}

// MaxLastIDs is how many event ids of readings at its newest event time a
// baseline remembers.
const MaxLastIDs = 16

// Admit reports whether the reading with event time ev and event id id
// is to be learned, and if so notes it learned: only a reading newer than
// every reading learned, or as new and not learned yet, is. goka delivers
// at least once, so after a restart the readings since the last committed
// offset reach a baseline that learned them already; learned again, each
// would count twice. A reading older than the newest learned (flushed from
// a device's buffer) is scored but not learned either: the baseline
// learns in event-time order.
func (b *Baseline) Admit(ev int64, id string) bool {
	switch {
	case ev > b.Last || b.Last == 0 && len(b.LastIDs) == 0:
		b.Last = ev
		b.LastIDs = append(b.LastIDs[:0], id)
		return true
	case ev < b.Last || slices.Contains(b.LastIDs, id):
		return false
	}
	if len(b.LastIDs) >= MaxLastIDs {
		b.LastIDs = append(b.LastIDs[:0], b.LastIDs[1:]...)
	}
	b.LastIDs = append(b.LastIDs, id)
	return true
}

// BaselineConfig tunes the statistical part of the score.
type BaselineConfig struct {
	// Alpha is the EWMA weight of a new reading (default 0.05: about the
	// last 20 readings).
	Alpha float64
	// MinSamples readings per metric are learned before z-scores count
	// (default 20).
	MinSamples int64
	// ZThreshold is the |z| below which the baseline adds nothing
	// (default 3); each further unit of |z| adds ZScale points (default 2):
	// |z| = 5.5 scores 5 (the WARNING boundary), |z| = 7 scores 8.
	ZThreshold, ZScale float64
	// StdFloor is the smallest standard deviation used per metric
	// (default HR 2 bpm, BP 3 mmHg, SpO2 0.5 %), so that a very steady
	// patient's tiny variance does not turn noise into alerts.
	StdFloor [nMetrics]float64
}

// DefaultBaselineConfig returns the defaults.
func DefaultBaselineConfig() BaselineConfig {
	return BaselineConfig{Alpha: 0.05, MinSamples: 20, ZThreshold: 3, ZScale: 2, StdFloor: [nMetrics]float64{2, 3, 0.5}}
}

// Score scores v against b (before learning v), then learns v. It returns
// the combined score min(10, max(rule, baseline)), the rule score, the
// largest |z| and the reasons. The baseline can only raise a score: a
// patient's learned normal never hides a reading the seed's rules flag.
func (b *Baseline) Score(cfg BaselineConfig, v Vitals) (score, rule, z float64, reasons []string) {
	return b.score(cfg, v, true)
}

// score is [Baseline.Score], learning v only if learn.
func (b *Baseline) score(cfg BaselineConfig, v Vitals, learn bool) (score, rule, z float64, reasons []string) {
	rule, reasons = RuleScore(v)
	zs := 0.0
	for m := 0; m < nMetrics; m++ {
		if !v.Has[m] {
			continue
		}
		if b.N[m] >= cfg.MinSamples {
			sd := math.Max(math.Sqrt(b.Var[m]), cfg.StdFloor[m])
			zm := math.Abs(v.V[m]-b.Mean[m]) / sd
			if zm > z {
				z = zm
			}
			if zm > cfg.ZThreshold {
				reasons = append(reasons, metricNames[m]+"_unusual_for_patient")
			}
		}
		if learn {
			b.learn(cfg, m, v.V[m])
		}
	}
	if z > cfg.ZThreshold {
		zs = math.Min(10, (z-cfg.ZThreshold)*cfg.ZScale)
	}
	score = math.Min(10, math.Max(rule, zs))
	return round6(score), round6(rule), round6(z), slices.Clip(reasons)
}

func (b *Baseline) learn(cfg BaselineConfig, m int, x float64) {
	if b.N[m] == 0 {
		b.Mean[m], b.Var[m] = x, 0
	} else {
		d := x - b.Mean[m]
		incr := cfg.Alpha * d
		b.Mean[m] += incr
		b.Var[m] = (1 - cfg.Alpha) * (b.Var[m] + d*incr)
	}
	b.N[m]++
}

// Level names the alert level of a score: EMERGENCY above 8, WARNING above
// 5, else NORMAL (the seed's thresholds, strict).
func Level(score float64) string {
	switch {
	case score > 8:
		return "EMERGENCY"
	case score > 5:
		return "WARNING"
	}
	return "NORMAL"
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
