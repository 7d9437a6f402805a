package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wardstream/wardstream/schemas/topics"
)

// History modes (Pillcases.History): how the state the fleet has at the
// start reaches the pipeline.
const (
	// HistoryPreload sends the schedules and the intakes of the hour
	// before the start first, waits until the pipeline has drained them
	// (outcomes, alerts, adherence queryable, consumer groups caught up),
	// and only then starts the timed phase: the clock, the telemetry, the
	// probes and every rate and latency in results.json. The load phase is
	// reported on its own (results.json "preload").
	HistoryPreload = "preload"
	// HistoryInRun sends them at the timed phase's start, concurrently with
	// the telemetry: the timed phase then also measures the pipeline
	// catching up with an hour of history compressed into a second.
	HistoryInRun = "in_run"
)

// PreloadResult is the load phase of a run with history preload.
type PreloadResult struct {
	// Schedules and Intakes are the messages sent (distinct; duplicate
	// copies of duplicate-sender pillcases come on top).
	Schedules int `json:"schedules"`
	Intakes   int `json:"intakes"`
	// HistoryDoses is the number of doses before the start whose outcome
	// the load phase waited for.
	HistoryDoses int `json:"history_doses"`
	// Seconds is from the first send until the pipeline had drained it.
	Seconds float64 `json:"seconds"`
	// Drained is false when the wait ended at its bound (the scenario's
	// settle time) instead; the timed phase started anyway.
	Drained bool `json:"drained"`
	// WaitedFor says what "drained" meant for this stage.
	WaitedFor string `json:"waited_for"`
}

// splitAtStart returns the pillcase messages due at the fleet's start
// (schedules and the intakes reported then: the load phase) and the rest,
// each in send order.
func splitAtStart(events []PillEvent, start time.Time) (atStart, later []PillEvent) {
	for _, e := range events {
		if e.At.After(start) {
			later = append(later, e)
		} else {
			atStart = append(atStart, e)
		}
	}
	return atStart, later
}

// preloads reports whether this run sends the history before its clock
// starts (demo mode never does: it has no clock to protect).
func (h *harness) preloads() bool {
	return !h.o.Forever && h.sc.Pillcases.History == HistoryPreload && h.sc.Pillcases.Count > 0
}

// preload is the load phase: it sends the fleet's messages due at its
// start and waits, polling every 500 ms and bounded by the scenario's
// settle time, until every one is accounted for downstream: every intake
// queryable (or, for stage mqtt, in Kafka); with processors, an outcome
// for every history dose (MISSED ones come with the adherence group's
// next clock tick); and every consumer group of the run caught up twice
// in a row (alerts, adherence and the sink's last batch) on every topic
// but the cameras', which stream all along. It returns the messages left
// for the timed phase. pills are fleet's PillEvents.
func (h *harness) preload(ctx context.Context, snd sender, fleet *Fleet, pills []PillEvent) ([]PillEvent, error) {
	atStart, later := splitAtStart(pills, fleet.Start)
	pr := &PreloadResult{}
	intakes := map[string]bool{}
	for _, e := range atStart {
		if e.Reading.Kind == KindSchedule {
			pr.Schedules++
		} else {
			intakes[e.Reading.EventID] = true
		}
	}
	pr.Intakes = len(intakes)
	for _, p := range fleet.Patients {
		for _, m := range p.Meds {
			for _, d := range m.Doses {
				if !d.Live {
					pr.HistoryDoses++
				}
			}
		}
	}
	h.res.Preload = pr
	wantOutcomes := h.checksCorrectness() && pr.HistoryDoses > 0
	waited := []string{"every intake " + map[bool]string{true: "in Kafka", false: "queryable"}[h.kobs != nil]}
	if wantOutcomes {
		waited = append(waited, "an outcome for every history dose")
	}
	if !h.o.Shared {
		waited = append(waited, "every consumer group of the run caught up (camera topics aside)")
	}
	pr.WaitedFor = strings.Join(waited, ", ")
	h.log.Info("preload: sending the fleet's start state", "schedules", pr.Schedules, "intakes", pr.Intakes, "history_doses", pr.HistoryDoses)

	began := time.Now()
	for i := range atStart {
		if err := snd.Send(ctx, h.pillItem(&atStart[i], time.Now())); err != nil {
			return nil, fmt.Errorf("preload: sending message %d of %d: %w", i+1, len(atStart), err)
		}
	}
	deadline := began.Add(h.sc.Settle.D())
	caughtUp := 0
	for ctx.Err() == nil {
		if h.preloaded(ctx, int64(pr.Intakes), pr.HistoryDoses, wantOutcomes, fleet.Start) {
			caughtUp++
		} else {
			caughtUp = 0
		}
		if caughtUp >= 2 {
			pr.Drained = true
			break
		}
		if time.Now().After(deadline) {
			h.note("preload: the pipeline had not drained the fleet's start state (%s) after %s; the timed phase started anyway", pr.WaitedFor, h.sc.Settle.D())
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	pr.Seconds = time.Since(began).Seconds()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	h.log.Info("preload: done", "seconds", fmt.Sprintf("%.1f", pr.Seconds), "drained", pr.Drained)
	return later, nil
}

// preloaded reports whether one poll finds the load phase drained.
func (h *harness) preloaded(ctx context.Context, intakes int64, historyDoses int, outcomes bool, start time.Time) bool {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case h.kobs != nil:
		if _, uniq, _ := h.kobs.counts(); uniq < intakes {
			return false
		}
	case h.obs != nil:
		c, err := h.obs.Count(qctx, "intakes", false)
		if err != nil || int64(c.Unique) < intakes {
			return false
		}
	}
	if outcomes {
		rows, err := h.obs.Outcomes(qctx)
		if err != nil {
			return false
		}
		n := 0
		for _, r := range rows {
			if r.Scheduled.Before(start) {
				n++
			}
		}
		if n < historyDoses {
			return false
		}
	}
	if h.o.Shared {
		return true
	}
	groups, err := h.adm.ListGroups(qctx)
	if err != nil {
		return false
	}
	var mine []string
	for _, g := range groups.Groups() {
		if strings.Contains(g, h.runID) {
			mine = append(mine, g)
		}
	}
	if len(mine) == 0 {
		return true
	}
	lags, err := h.adm.Lag(qctx, mine...)
	if err != nil || lags.Error() != nil {
		return false
	}
	live := cameraTopics(h.prefix)
	for _, l := range lags {
		for t, tl := range l.Lag.TotalByTopic() {
			// The cameras stream all along: their topics never stand
			// still, and the load phase puts nothing on them.
			if tl.Lag != 0 && !live[t] {
				return false
			}
		}
	}
	return true
}

// cameraTopics are the topics the synthetic cameras keep busy.
func cameraTopics(prefix string) map[string]bool {
	return map[string]bool{prefix + topics.Detections: true, prefix + topics.VideoEvents: true, prefix + topics.CameraControls: true}
}
