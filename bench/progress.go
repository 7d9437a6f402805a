package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// progress samples the run once per interval: the timeline of results.json
// and the live progress line (rate, Kafka intake, queryable rows, lag,
// errors, latency).
type progress struct {
	h    *harness
	out  io.Writer
	tty  bool
	last Sample
	mu   sync.Mutex
	line string
	// baseDelivered is the rows visible before the run (shared runs).
	baseDelivered int64
}

func newProgress(h *harness) *progress {
	p := &progress{h: h, out: h.o.Progress}
	if f, ok := p.out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// baseline records the starting point of the timeline before sending:
// shared topics hold earlier records, so Kafka counts are deltas from here.
func (p *progress) baseline(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s := Sample{T: 0, KafkaIn: max(0, p.kafkaIn(qctx)), ProcOut: max(0, p.procOut(qctx))}
	// Shared runs (demo) see the tenant's earlier rows: count from here.
	// After a load phase, count its distinct readings: the duplicate rows
	// of its duplicate senders merge away later, and counting them here
	// would leave the timed phase's count short by as many.
	if d, err := p.h.delivered(qctx, p.h.res.Preload != nil); err == nil {
		p.baseDelivered = d
	}
	p.last = s
	p.h.res.Timeline = append(p.h.res.Timeline, s)
}

func (p *progress) loop(ctx context.Context) {
	iv := p.h.o.Config.ProgressInterval.D()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.sample(ctx)
	}
}

// kafkaIn sums the end offsets of the path's input topics.
func (p *progress) kafkaIn(ctx context.Context) int64 {
	return p.endOffsets(ctx, topics.Vitals, topics.VitalsBatches, topics.Intake)
}

// procOut sums the end offsets of the processors' output topics.
func (p *progress) procOut(ctx context.Context) int64 {
	return p.endOffsets(ctx, topics.AnomalyScores, topics.ScoreBatches, topics.DoseOutcomes, topics.Adherence, topics.Alerts)
}

func (p *progress) endOffsets(ctx context.Context, names ...string) int64 {
	h := p.h
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = h.prefix + n
	}
	ends, err := h.adm.ListEndOffsets(ctx, full...)
	if err != nil {
		return -1
	}
	var n int64
	for _, ps := range ends {
		for _, o := range ps {
			if o.Err == nil {
				n += o.Offset
			}
		}
	}
	return n
}

func (p *progress) sample(ctx context.Context) {
	h := p.h
	now := time.Now()
	for _, r := range h.roles {
		r.Sample(now)
	}
	for _, s := range h.svcs {
		s.Sample(now)
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s := Sample{T: now.Sub(h.start).Seconds(), Sent: h.c.sent.Load() - h.preSent, Errors: h.c.errors.Load() + h.c.failed.Load()}
	if d, err := h.delivered(qctx, false); err == nil {
		s.Delivered = d - p.baseDelivered
	} else {
		s.Delivered = p.last.Delivered
	}
	// A failed offsets query keeps the previous value (the run's topics
	// are briefly unknown while they are created or deleted).
	if s.KafkaIn = p.kafkaIn(qctx); s.KafkaIn < 0 {
		s.KafkaIn = p.last.KafkaIn
	}
	if s.ProcOut = p.procOut(qctx); s.ProcOut < 0 {
		s.ProcOut = p.last.ProcOut
	}
	if dt := s.T - p.last.T; dt > 0 {
		s.SendRate = float64(s.Sent-p.last.Sent) / dt
		s.DeliverRat = float64(s.Delivered-p.last.Delivered) / dt
		if s.KafkaIn >= 0 && p.last.KafkaIn >= 0 {
			s.KafkaRate = float64(s.KafkaIn-p.last.KafkaIn) / dt
		}
	}
	h.mu.Lock()
	lat := h.intervalLat
	h.intervalLat = nil
	h.mu.Unlock()
	if len(lat) > 0 {
		q := quantiles(lat, "", 0)
		s.P50Ms, s.P99Ms = q.P50Ms, q.P99Ms
	}
	h.mu.Lock()
	h.res.Timeline = append(h.res.Timeline, s)
	h.mu.Unlock()
	p.last = s
	var roleErr []string
	for _, r := range h.roles {
		if ok, _ := r.Exited(); ok {
			roleErr = append(roleErr, r.Name+" exited")
		}
	}
	line := fmt.Sprintf("[%s %6.0fs] sent %d (%s/s)  kafka %s/s  queryable %d (%s/s)  lag %d  errors %d  p50/p99 %s/%s ms",
		h.sc.Name, s.T, s.Sent, human(s.SendRate), human(s.KafkaRate), s.Delivered, human(s.DeliverRat),
		max(0, s.Sent-s.Delivered), s.Errors, human(s.P50Ms), human(s.P99Ms))
	if len(roleErr) > 0 {
		line += "  !! " + strings.Join(roleErr, ", ")
	}
	p.print(line)
}

func (p *progress) print(line string) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line = line
	if p.tty {
		fmt.Fprintf(p.out, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.out, line)
	}
}

// final ends the live line.
func (p *progress) final() {
	if p.out != nil && p.tty {
		fmt.Fprintln(p.out)
	}
}

// missedWatch times MISSED_DOSE alerts of live skipped doses:
// scheduled + grace -> alert queryable. An alert belongs to a dose by its
// id, which names the dose's patient, medication and scheduled time: the
// same patient's alerts of other doses of the medication (the history
// doses', declared missed at the start) do not time a live dose.
type missedWatch struct {
	h       *harness
	pending []LiveMissed
	seen    map[string]bool
}

func newMissedWatch(h *harness, f *Fleet) *missedWatch {
	w := &missedWatch{h: h, seen: map[string]bool{}}
	if h.checksCorrectness() {
		w.pending = f.Expect(nil).LiveMissed
		sort.Slice(w.pending, func(i, j int) bool { return w.pending[i].Due.Before(w.pending[j].Due) })
	}
	return w
}

func (w *missedWatch) loop(ctx context.Context) {
	if len(w.pending) == 0 || w.h.obs == nil {
		// Nothing to time: no live dose was skipped (or correctness is
		// not checked, or nothing reads ClickHouse).
		w.h.mu.Lock()
		w.h.res.Latency.MissedAlert = LatencyStats{Method: "none"}
		w.h.mu.Unlock()
		return
	}
	var ms []float64
	defer func() {
		w.h.mu.Lock()
		w.h.res.Latency.MissedAlert = quantiles(ms, "poll alerts table", time.Second)
		if len(ms) == 0 {
			w.h.res.Latency.MissedAlert.Method = "none"
		}
		w.h.mu.Unlock()
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for len(w.pending) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Now().Before(w.pending[0].Due) {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		alerts, err := w.h.obs.Alerts(qctx, pb.AlertType_MISSED_DOSE.String())
		cancel()
		at := time.Now()
		if err != nil {
			continue
		}
		due := make(map[string]time.Time, len(w.pending))
		for _, p := range w.pending {
			due[MissedAlertKey(p.PatientID, p.MedicationID, p.Scheduled)] = p.Due
		}
		timed := map[string]bool{}
		for _, a := range alerts {
			if w.seen[a.AlertID] {
				continue
			}
			w.seen[a.AlertID] = true
			key := missedAlertKey(a.AlertID)
			d, ok := due[key]
			if !ok || timed[key] {
				continue
			}
			// Queryable no earlier than this poll: an alert seen before
			// its dose fell due (clocks apart) counts as 0.
			ms = append(ms, float64(max(0, at.Sub(d).Milliseconds())))
			timed[key] = true
		}
		if len(timed) > 0 {
			w.pending = slices.DeleteFunc(w.pending, func(p LiveMissed) bool {
				return timed[MissedAlertKey(p.PatientID, p.MedicationID, p.Scheduled)]
			})
		}
	}
}
