package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// drive runs the sending phase with its observers, waits for the pipeline
// to settle, and fills in the results.
func (h *harness) drive(ctx context.Context) error {
	o, sc := h.o, h.sc
	dur := o.Duration
	switch {
	case o.Forever:
		dur = 12 * time.Hour
	case dur == 0 && o.Messages == 0:
		dur = sc.Duration.D()
	}
	// The fleet is planned from now. With history preload the timed phase
	// starts later, so planning the live doses to fit before now + dur is
	// conservative: they fit before the real end too.
	planned := time.Now()
	// Without a duration the sending phase's end is unknown: plan live
	// doses only when a target rate makes it predictable.
	sendEnd := planned.Add(dur)
	if dur == 0 {
		if r := h.rate(); r > 0 {
			sendEnd = planned.Add(time.Duration(float64(o.Messages) / r * float64(time.Second)))
		} else {
			sendEnd = planned
		}
	}
	fleet, err := NewFleet(sc, h.runID, h.tenant, planned, sendEnd)
	if err != nil {
		return err
	}
	h.fleet = fleet
	var snd sender
	if o.Stage == StageAll || o.Stage == StageMQTT {
		snd, err = newMQTTSender(ctx, o.Root.MQTT.URL, "wsbench-"+h.runID, sc.Transport.Connections, sc.Transport.Inflight, sc.Transport.QoS, &h.c, h.acked)
		if err != nil {
			return err
		}
	} else {
		snd = newKafkaSender(h.kcl, &h.c, h.acked)
	}
	pills := fleet.PillEvents()
	if h.preloads() {
		if pills, err = h.preload(ctx, snd, fleet, pills); err != nil {
			return err
		}
		// The timed phase counts only its own readings.
		h.preSent = h.c.sent.Load()
	}
	h.start = time.Now()
	h.res.Started = h.start
	host := startHostWatch()
	defer func() {
		h.res.Host = host.stop()
		if hr := h.res.Host; hr != nil && hr.StealShare > 0.05 {
			h.note("host: the hypervisor gave %.0f%% of this machine's CPU time to other tenants during the run (steal %.0f CPU seconds): rates are lower than on a quiet machine", 100*hr.StealShare, hr.StealSeconds)
		}
	}()
	cameraNote(h)

	obsCtx, cancelObs := context.WithCancel(context.WithoutCancel(ctx))
	var obsWG sync.WaitGroup
	stopObs := func() { cancelObs(); obsWG.Wait() }
	defer stopObs()
	prog := newProgress(h)
	prog.baseline(ctx)
	missed := newMissedWatch(h, fleet)
	for _, f := range []func(context.Context){prog.loop, h.probeLoop, missed.loop} {
		obsWG.Add(1)
		go func() { defer obsWG.Done(); f(obsCtx) }()
	}

	// A required role that dies mid-run ends the sending phase: what
	// follows would measure a broken path.
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	obsWG.Add(1)
	go func() {
		defer obsWG.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-obsCtx.Done():
				return
			case <-sendCtx.Done():
				return
			case <-t.C:
			}
			for _, p := range h.roles {
				if ok, err := p.Exited(); ok && h.required(p.Name) {
					h.mu.Lock()
					h.abort = fmt.Errorf("role %s exited during the run (%v): %s", p.Name, err, lastLine(p.LogTail(3)))
					h.mu.Unlock()
					stopSending()
					return
				}
			}
		}
	}()
	sendErr := h.send(sendCtx, snd, fleet, pills, dur)
	h.mu.Lock()
	if h.abort != nil {
		sendErr = errors.Join(sendErr, h.abort)
		h.note("aborted: %v", h.abort)
	}
	h.mu.Unlock()
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	if err := snd.Close(cctx); err != nil {
		h.note("closing sender: %v", err)
	}
	ccancel()
	sent := time.Now()
	h.res.SendSeconds = sent.Sub(h.start).Seconds()
	if h.telemetryEnd.IsZero() {
		h.telemetryEnd, h.sentAtTelemetryEnd = sent, h.c.sent.Load()-h.preSent
	}
	h.res.TelemetrySeconds = h.telemetryEnd.Sub(h.start).Seconds()
	if o.Forever {
		// Demo mode ends on Ctrl-C: no settle, no verdict.
		stopObs()
		h.res.Ended = time.Now()
		h.fillCounters()
		return nil
	}
	h.mu.Lock()
	aborted := h.abort != nil
	h.mu.Unlock()
	if !aborted {
		h.settle(ctx, fleet)
	}
	stopObs()
	prog.final()
	h.res.Ended = time.Now()
	for _, p := range h.roles {
		p.Sample(time.Now())
	}
	h.fillCounters()
	if err := h.measure(context.WithoutCancel(ctx), fleet); err != nil {
		h.note("final measurement: %v", err)
	}
	h.fillUsage()
	h.fillStages()
	return sendErr
}

// fillStages derives per-stage throughput from the timeline.
func (h *harness) fillStages() {
	tl := h.res.Timeline
	if len(tl) < 2 {
		return
	}
	type stage struct {
		name, note string
		get        func(Sample) int64
	}
	first := h.firstHop()
	last := "ClickHouse rows queryable (vitals + intakes, duplicates included)"
	if h.kobs != nil {
		last = "records of the run consumed back from Kafka"
	}
	stages := []stage{
		{"publish", first, func(s Sample) int64 { return s.Sent }},
		{"kafka_in", "records appended to the input topics (" + h.prefix + topics.Vitals + ", " + h.prefix + topics.VitalsBatches + ", " + h.prefix + topics.Intake + "; a batch record holds many readings)", func(s Sample) int64 { return s.KafkaIn }},
		{"queryable", last, func(s Sample) int64 { return s.Delivered }},
	}
	if h.checksCorrectness() {
		stages = append(stages[:2], append([]stage{{"processors_out", "records the processors wrote to " + h.prefix + "{" + strings.Join([]string{topics.AnomalyScores, topics.ScoreBatches, topics.DoseOutcomes, topics.Adherence, topics.Alerts}, ",") + "}", func(s Sample) int64 { return s.ProcOut }}}, stages[2:]...)...)
	}
	for _, st := range stages {
		base := st.get(tl[0])
		var peak float64
		var t0, t1 float64 = -1, -1
		var total int64
		for i := 1; i < len(tl); i++ {
			d := st.get(tl[i]) - st.get(tl[i-1])
			if d <= 0 {
				continue
			}
			if t0 < 0 {
				t0 = tl[i-1].T
			}
			t1 = tl[i].T
			if dt := tl[i].T - tl[i-1].T; dt > 0 {
				peak = math.Max(peak, float64(d)/dt)
			}
		}
		total = st.get(tl[len(tl)-1]) - base
		sr := StageRate{Stage: st.name, Count: total, PerSecPeak: peak, Note: st.note}
		if t1 > t0 && t0 >= 0 {
			sr.PerSecAvg = float64(total) / (t1 - t0)
		}
		h.res.Stages = append(h.res.Stages, sr)
	}
}

func (h *harness) firstHop() string {
	if h.viaKafka() {
		return "readings acknowledged by Kafka (the harness produces directly)"
	}
	return fmt.Sprintf("readings acknowledged by the MQTT broker (QoS %d, %d per publish)", h.sc.Transport.QoS, h.sc.Transport.Batch)
}

// rate returns the target readings/s (0: unthrottled).
func (h *harness) rate() float64 {
	switch {
	case h.sc.Rate > 0:
		return float64(h.sc.Rate)
	case h.sc.Rate == 0:
		return h.sc.TelemetryWeight()
	}
	return 0
}

// send is the sending phase: telemetry at the target rate (or as fast as
// the sender accepts), pillcase messages at their planned times, malformed
// traffic at its share.
func (h *harness) send(ctx context.Context, snd sender, fleet *Fleet, pills []PillEvent, dur time.Duration) error {
	// Pillcases talk on their own schedule, concurrently with telemetry
	// (a burst of schedules and buffered intakes must not stall the
	// monitors, nor the other way round).
	pillsDone := make(chan struct{})
	go func() {
		defer close(pillsDone)
		for _, e := range pills {
			if d := time.Until(e.At); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			if err := snd.Send(ctx, h.pillItem(&e, time.Now())); err != nil {
				return
			}
		}
	}()
	h.sendTelemetry(ctx, snd, fleet, dur)
	h.mu.Lock()
	h.telemetryEnd = time.Now()
	h.sentAtTelemetryEnd = h.c.sent.Load() - h.preSent
	h.mu.Unlock()
	select {
	case <-pillsDone:
	case <-ctx.Done():
		<-pillsDone
	}
	return nil
}

// sendTelemetry sends monitor and pump readings (and the malformed share)
// at the target rate, or as fast as the sender accepts, until the duration
// or message count is reached or ctx is done.
func (h *harness) sendTelemetry(ctx context.Context, snd sender, fleet *Fleet, dur time.Duration) {
	sc := h.sc
	gen := fleet.NewTelemetry()
	if gen.Empty() {
		return
	}
	defer func() {
		h.mu.Lock()
		h.failedPumps = gen.FailedPumps()
		h.mu.Unlock()
	}()
	rate := h.rate()
	batch := sc.Transport.Batch
	var generated int64
	var malAcc float64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		now := time.Now()
		if (dur > 0 && !now.Before(h.start.Add(dur))) || (h.o.Messages > 0 && generated >= h.o.Messages) {
			return
		}
		allowed := int64(math.MaxInt64)
		if rate > 0 {
			allowed = int64(rate * now.Sub(h.start).Seconds())
		}
		if h.o.Messages > 0 {
			allowed = min(allowed, h.o.Messages)
		}
		// Check the clock at least every 50 ms.
		budget := now.Add(50 * time.Millisecond)
		for generated < allowed && time.Now().Before(budget) {
			n := batch
			if h.o.Messages > 0 {
				n = int(min(int64(n), h.o.Messages-generated))
			}
			rs := gen.Next(time.Now(), n)
			generated += int64(len(rs))
			if err := snd.Send(ctx, h.telemetryItem(rs, time.Now())); err != nil {
				return
			}
			malAcc += sc.MalformedShare * float64(len(rs))
			for malAcc >= 1 {
				malAcc--
				m := gen.Malformed(time.Now())
				if err := snd.Send(ctx, h.readingItem(m, 1, time.Now())); err != nil {
					return
				}
			}
		}
		if rate > 0 || generated >= allowed {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}

func (h *harness) viaKafka() bool { return h.o.Stage == StageKafka || h.o.Stage == StageSink }

func tableOf(k Kind) string {
	if k == KindIntake {
		return "intakes"
	}
	return "vitals"
}

func (h *harness) telemetryItem(rs []Reading, now time.Time) item {
	if len(rs) == 1 {
		return h.readingItem(rs[0], 1, now)
	}
	it := item{valid: len(rs), copies: 1}
	for i := range rs {
		if rs[i].Probe {
			it.probes = append(it.probes, probe{rs[i].EventID, rs[i].DeviceID, rs[i].EventTime, tableOf(rs[i].Kind)})
		}
	}
	if h.viaKafka() {
		for _, rec := range EncodeKafkaBatch(h.tenant, rs[0].EventID, rs, now) {
			rec.Topic = h.prefix + rec.Topic
			it.recs = append(it.recs, rec)
		}
		return it
	}
	it.pub = EncodeMQTTBatch(h.tenant, rs)
	return it
}

func (h *harness) readingItem(r Reading, copies int, now time.Time) item {
	it := item{copies: copies}
	switch r.Kind {
	case KindMalformed:
		it.malformed = 1
	case KindSchedule:
	default:
		it.valid = 1
	}
	if r.Probe {
		it.probes = []probe{{r.EventID, r.DeviceID, r.EventTime, tableOf(r.Kind)}}
	}
	if h.viaKafka() {
		it.recs = []*kgo.Record{h.kafkaRecord(&r, now)}
	} else {
		it.pub = EncodeMQTT(h.tenant, &r)
	}
	return it
}

func (h *harness) kafkaRecord(r *Reading, now time.Time) *kgo.Record {
	rec := EncodeKafka(h.tenant, r, now)
	rec.Topic = h.prefix + rec.Topic
	return rec
}

func (h *harness) pillItem(e *PillEvent, now time.Time) item {
	r := e.Reading
	// Intakes reported when they happen are probes too; buffered ones
	// (reported late on purpose) are not.
	r.Probe = r.Kind == KindIntake && r.EventTime.Equal(e.At)
	return h.readingItem(r, e.Copies, now)
}

// acked registers the item's probes once the first hop acknowledged it.
func (h *harness) acked(it *item, at time.Time) {
	if len(it.probes) == 0 {
		return
	}
	h.mu.Lock()
	for _, p := range it.probes {
		h.ackLatencies = append(h.ackLatencies, float64(at.Sub(p.eventTime).Microseconds())/1000)
	}
	h.mu.Unlock()
	if h.kobs != nil {
		ids := make([]string, len(it.probes))
		for i, p := range it.probes {
			ids[i] = p.id
		}
		h.mu.Lock()
		for _, p := range it.probes {
			h.outstanding[p.id] = p
		}
		h.mu.Unlock()
		h.kobs.watch(ids)
		return
	}
	h.mu.Lock()
	for _, p := range it.probes {
		h.outstanding[p.id] = p
	}
	h.mu.Unlock()
}

// probeLoop looks outstanding probes up until they are visible and records
// their latency: visibility time (poll end, an upper bound) - event time.
//
// The lookup interval is PollInterval, stretched to a twentieth of the
// oldest outstanding probe's age (at most probeMaxInterval): under a
// backlog of tens of seconds, looking every 250 ms only re-reads the same
// granules (a fleet run spent 8.8 ClickHouse CPU seconds, a quarter of the
// server's, on these lookups), while 5% of the latency is resolution
// enough. The coarsest interval used is reported as the resolution.
func (h *harness) probeLoop(ctx context.Context) {
	base := h.o.Config.PollInterval.D()
	wait := base
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = h.probeInterval(base, time.Now())
		if h.kobs != nil {
			seen := h.kobs.seen()
			h.mu.Lock()
			for id, at := range seen {
				if p, ok := h.outstanding[id]; ok {
					h.record(p.eventTime, float64(at.Sub(p.eventTime).Microseconds())/1000)
					delete(h.outstanding, id)
				}
			}
			h.mu.Unlock()
			continue
		}
		if h.obs == nil {
			continue
		}
		byTable := map[string][]probe{}
		h.mu.Lock()
		n := 0
		for _, p := range h.outstanding {
			byTable[p.table] = append(byTable[p.table], p)
			if n++; n >= 4000 {
				break
			}
		}
		h.mu.Unlock()
		for table, ids := range byTable {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			vis, err := h.obs.Visible(qctx, table, ids)
			cancel()
			at := time.Now()
			if err != nil {
				continue
			}
			h.mu.Lock()
			for id := range vis {
				if p, ok := h.outstanding[id]; ok {
					h.record(p.eventTime, float64(at.Sub(p.eventTime).Microseconds())/1000)
					delete(h.outstanding, id)
				}
			}
			h.mu.Unlock()
		}
	}
}

// probeMaxInterval bounds the stretched probe interval.
const probeMaxInterval = 2 * time.Second

// probeInterval is the wait before the next probe lookup (see probeLoop);
// it also raises h.resolution to the largest interval used.
func (h *harness) probeInterval(base time.Duration, now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	var oldest time.Time
	for _, p := range h.outstanding {
		if oldest.IsZero() || p.eventTime.Before(oldest) {
			oldest = p.eventTime
		}
	}
	wait := base
	if !oldest.IsZero() {
		wait = min(max(base, now.Sub(oldest)/20), probeMaxInterval)
	}
	if len(h.outstanding) > 0 && wait > h.resolution {
		h.resolution = wait
	}
	return wait
}

// record adds one latency sample of a probe with this event time; h.mu is
// held.
func (h *harness) record(event time.Time, ms float64) {
	h.latencies = append(h.latencies, ms)
	if !event.Before(h.start.Add(h.o.Config.Warmup.D())) {
		h.afterWarmup = append(h.afterWarmup, ms)
	}
	h.intervalLat = append(h.intervalLat, ms)
}

func (h *harness) outstandingProbes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.outstanding)
}

// delivered returns the readings visible at the end of the stage: rows
// (duplicates included, cheap) or, with distinct, distinct event ids.
func (h *harness) delivered(ctx context.Context, distinct bool) (int64, error) {
	if h.kobs != nil {
		rows, uniq, _ := h.kobs.counts()
		if distinct {
			return uniq, nil
		}
		return rows, nil
	}
	var total int64
	for _, t := range []string{"vitals", "intakes"} {
		var n uint64
		var err error
		if distinct {
			var c Counts
			c, err = h.obs.Count(ctx, t, false)
			n = c.Unique
		} else {
			n, err = h.obs.FastCount(ctx, t)
		}
		if err != nil {
			return 0, err
		}
		total += int64(n)
	}
	return total, nil
}

// settle waits until every sent reading is visible, every probe timed and
// (with processors) every planned dose final, bounded by the scenario's
// settle time.
func (h *harness) settle(ctx context.Context, fleet *Fleet) {
	deadline := time.Now().Add(h.sc.Settle.D())
	needDoses := h.checksCorrectness() && len(fleet.Patients) > 0
	doseFinal := fleet.LastDoseFinal().Add(15 * time.Second)
	lastAlerts, quietSince := uint64(0), time.Now()
	var lastDistinct, lastOutcomes time.Time
	confirmed := false // distinct ids reached sent once: rows only grow
	wantDoses := 0     // the plan is fixed once sending ended: count it once
	if needDoses {
		wantDoses = len(fleet.Expect(nil).Doses)
	}
	outcomesDone := false
	for time.Now().Before(deadline) && ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := h.delivered(qctx, false)
		if err == nil && d >= h.c.sent.Load() && !confirmed {
			// Rows include duplicates: confirm with distinct ids. That
			// scans every event id of the run, so at most every 5 s: on a
			// large run it would otherwise take ClickHouse's CPU from the
			// pipeline that is still catching up.
			if time.Since(lastDistinct) < 5*time.Second {
				d = -1
			} else {
				lastDistinct = time.Now()
				d, err = h.delivered(qctx, true)
				confirmed = err == nil && d >= h.c.sent.Load()
			}
		}
		cancel()
		if err == nil && d >= h.c.sent.Load() && h.outstandingProbes() == 0 && (!needDoses || time.Now().After(doseFinal)) {
			if !needDoses {
				return
			}
			// Outcomes complete, then the alert lifecycle (alert requests ->
			// alerts group -> sink) must have gone quiet for 5 s.
			// Reading every outcome of the run is not cheap either: at
			// most every 2 s, and not again once complete.
			if !outcomesDone && time.Since(lastOutcomes) >= 2*time.Second {
				lastOutcomes = time.Now()
				outcomesDone = h.outcomesComplete(ctx, wantDoses)
			}
			if outcomesDone {
				n, err := h.obs.AlertRows(ctx)
				switch {
				case err != nil:
				case n != lastAlerts:
					lastAlerts, quietSince = n, time.Now()
				case time.Since(quietSince) >= 5*time.Second:
					return
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	if ctx.Err() == nil {
		h.note("settle: the %s settle bound passed before everything sent was visible (and, with processors, every outcome and a quiet alert table)", h.sc.Settle.D())
	}
}

func (h *harness) checksCorrectness() bool {
	if h.o.Stage != StageAll && h.o.Stage != StageKafka {
		return false
	}
	if h.failed["processors"] {
		return false
	}
	for _, r := range h.roleList() {
		if r == "processors" {
			return true
		}
	}
	return strings.TrimSpace(h.o.Roles) == "none"
}

func (h *harness) outcomesComplete(ctx context.Context, wantDoses int) bool {
	rows, err := h.obs.Outcomes(ctx)
	if err != nil {
		return false
	}
	return len(rows) >= wantDoses
}

// fillCounters copies the sender's totals into the results.
func (h *harness) fillCounters() {
	r := h.res
	r.Sent = h.c.sent.Load()
	r.Publishes = h.c.publishes.Load()
	r.Malformed.Sent = h.c.malformed.Load()
	r.DuplicateCopiesSent = h.c.dupCopies.Load()
	r.SendErrors = h.c.errors.Load()
	r.SendFailed = h.c.failed.Load()
	if r.SendSeconds > 0 {
		r.MsgsPerMin = float64(r.Sent-h.preSent) / r.SendSeconds * 60
	}
	if r.TelemetrySeconds > 0 && h.sentAtTelemetryEnd > 0 {
		// Trailing pillcase messages (offline flushes) would dilute the
		// rate: measure over the telemetry phase.
		r.MsgsPerMin = float64(h.sentAtTelemetryEnd) / r.TelemetrySeconds * 60
	}
}

// measure reads the final answers: counts, duplicates, dead letters,
// latency quantiles and correctness.
func (h *harness) measure(ctx context.Context, fleet *Fleet) error {
	r := h.res
	h.mu.Lock()
	r.Latency.EventToQueryable = quantiles(append([]float64(nil), h.latencies...), "probes", max(h.resolution, h.o.Config.PollInterval.D()))
	r.Latency.EventToFirstHop = quantiles(append([]float64(nil), h.ackLatencies...), "probes (publish acknowledged)", 0)
	if w := h.o.Config.Warmup.D(); w > 0 {
		aw := quantiles(append([]float64(nil), h.afterWarmup...), fmt.Sprintf("probes with event time >= start + %s", w), max(h.resolution, h.o.Config.PollInterval.D()))
		if aw.Samples == 0 {
			aw.Method = "none"
		}
		r.Latency.AfterWarmup = &aw
	}
	left := len(h.outstanding)
	h.mu.Unlock()
	if left > 0 {
		h.note("latency: %d probe(s) never became visible (counted in lost if their readings were)", left)
	}
	if r.Latency.EventToQueryable.Samples == 0 {
		r.Latency.EventToQueryable.Method = "none"
	}
	if at, n := h.deliveryMark(); !at.IsZero() && at.After(h.start) {
		r.DeliveredPerMin = float64(n) / at.Sub(h.start).Seconds() * 60
	}
	if h.kobs != nil {
		rows, uniq, dlq := h.kobs.counts()
		r.Delivered = uniq
		r.DuplicateRowsUnmerged = rows - uniq
		r.Malformed.DeadLettered = dlq
		r.Lost = max(0, r.Sent-r.Delivered)
		h.note("stage mqtt: latency is device event time -> record in Kafka (the record's timestamp)")
		h.note("stage mqtt: delivered counts distinct event ids in Kafka topics %s, %s (each reading of a batch) and %s; duplicate_rows_unmerged counts duplicate Kafka records (at-least-once), which the sink's dedup removes", h.prefix+topics.Vitals, h.prefix+topics.VitalsBatches, h.prefix+topics.Intake)
		return nil
	}
	var errs []error
	var uniq, dupVisible, dupRaw int64
	for _, t := range []string{"vitals", "intakes"} {
		c, err := h.obs.Count(ctx, t, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uniq += int64(c.Unique)
		dupRaw += int64(c.Rows) - int64(c.Unique)
		dupVisible += int64(c.FinalRow) - int64(c.Unique)
	}
	r.Delivered, r.DuplicateRowsUnmerged, r.DuplicatesVisible = uniq, dupRaw, dupVisible
	r.Lost = max(0, r.Sent-r.Delivered)
	if r.Delivered > r.Sent {
		h.note("delivered (%d) exceeds sent (%d): rows whose event id differs from the device's messageId count twice", r.Delivered, r.Sent)
	}
	if dl, err := h.obs.DeadLetters(ctx); err == nil {
		// The malformed messages are dead-lettered by the first stage that
		// reads them: the connector, or (straight to Kafka) the sink.
		first := "connectors/mqtt/"
		if h.viaKafka() {
			first = "sink/"
		}
		r.Malformed.Reasons = dl
		var other []string
		for k, n := range dl {
			if strings.HasPrefix(k, first) {
				r.Malformed.DeadLettered += int64(n)
			} else {
				other = append(other, fmt.Sprintf("%s %d", k, n))
			}
		}
		if len(other) > 0 {
			sort.Strings(other)
			h.note("dead letters beyond the malformed input (stage/reason count): %s", strings.Join(other, ", "))
		}
	} else {
		errs = append(errs, err)
	}
	h.cameraCounts(ctx)
	if h.checksCorrectness() {
		c, err := h.correctness(ctx, fleet)
		if err != nil {
			errs = append(errs, err)
		}
		r.Correctness = c
	} else if h.o.Stage == StageAll || h.o.Stage == StageKafka {
		h.note("correctness: not checked: the processors role did not run")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// deliveryMark returns when the readings sent during the telemetry phase
// were all queryable (from the timeline) and their number: the end-to-end
// window. If they never were, it is the last time the count grew.
func (h *harness) deliveryMark() (time.Time, int64) {
	tl := h.res.Timeline
	at := func(s Sample) time.Time { return h.start.Add(time.Duration(s.T * float64(time.Second))) }
	for _, s := range tl {
		if h.sentAtTelemetryEnd > 0 && s.Delivered >= h.sentAtTelemetryEnd {
			return at(s), h.sentAtTelemetryEnd
		}
	}
	for i := len(tl) - 1; i > 0; i-- {
		if tl[i].Delivered > tl[i-1].Delivered {
			return at(tl[i]), tl[i].Delivered
		}
	}
	return time.Time{}, 0
}

// correctness compares the pipeline's outcomes, adherence and alerts with
// the simulator's.
func (h *harness) correctness(ctx context.Context, fleet *Fleet) (*Correctness, error) {
	h.mu.Lock()
	failed := h.failedPumps
	h.mu.Unlock()
	want := fleet.Expect(failed)
	c := &Correctness{}
	rows, err := h.obs.Outcomes(ctx)
	if err != nil {
		return c, err
	}
	got := map[string]string{}
	for _, r := range rows {
		k := DoseKey(r.PatientID, r.MedicationID, r.Scheduled)
		if _, ok := want.Doses[k]; !ok {
			c.DoseOutcomes.Unexpected++
			c.DoseOutcomes.example("unexpected outcome %s for %s %s at %s", r.Outcome, r.PatientID, r.MedicationID, r.Scheduled.UTC().Format(time.RFC3339))
			continue
		}
		got[k] = r.Outcome
	}
	keys := make([]string, 0, len(want.Doses))
	for k := range want.Doses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		exp := want.Doses[k]
		c.DoseOutcomes.Expected++
		g, ok := got[k]
		switch {
		case !ok:
			c.DoseOutcomes.Missing++
			c.DoseOutcomes.example("missing outcome for dose %s (expected %s)", k, exp)
		case g == exp.String():
			c.DoseOutcomes.Matched++
		default:
			c.DoseOutcomes.Wrong++
			c.DoseOutcomes.example("dose %s: got %s, expected %s", k, g, exp)
		}
	}
	day := fleet.Start.In(fleet.Loc).Format("2006-01-02")
	adh, err := h.obs.Adherence(ctx, day)
	if err != nil {
		return c, err
	}
	gotAdh := map[string]AdherenceRow{}
	for _, a := range adh {
		gotAdh[a.PatientID+"|"+a.MedicationID] = a
	}
	for k, exp := range want.Adherence {
		c.Adherence.Expected++
		a, ok := gotAdh[k]
		switch {
		case !ok:
			c.Adherence.Missing++
			c.Adherence.example("missing adherence for %s", k)
		case int(a.DailyDue) == exp[0] && int(a.DailyTaken) == exp[1] && int(a.Due7d) == exp[0] && int(a.Taken7d) == exp[1]:
			c.Adherence.Matched++
		default:
			c.Adherence.Wrong++
			c.Adherence.example("adherence %s: daily %d/%d, 7d %d/%d; expected %d/%d", k, a.DailyTaken, a.DailyDue, a.Taken7d, a.Due7d, exp[1], exp[0])
		}
		delete(gotAdh, k)
	}
	c.Adherence.Unexpected = len(gotAdh)
	alerts, err := h.obs.Alerts(ctx, "")
	if err != nil {
		return c, err
	}
	// MISSED_DOSE alerts are matched to the doses by id: a missing alert
	// is not made up for by another dose's alert of the same medication.
	openMissed := map[string]AlertRow{}
	pumpAlert := map[string]bool{}
	for _, a := range alerts {
		switch a.Type {
		case pb.AlertType_MISSED_DOSE.String():
			if a.State != pb.AlertState_RESOLVED.String() {
				openMissed[missedAlertKey(a.AlertID)] = a
			}
		case pb.AlertType_PUMP_FAILURE.String():
			pumpAlert[a.DeviceID] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want.MissedAlertIDs)) {
		c.Alerts.Expected++
		if _, ok := openMissed[id]; ok {
			c.Alerts.Matched++
			delete(openMissed, id)
		} else {
			c.Alerts.Missing++
			c.Alerts.example("no unresolved MISSED_DOSE alert %s for a missed dose", id)
		}
	}
	// An unresolved alert of a dose that was not missed: wrong where the
	// medication has missed doses, unexpected where it has none.
	for _, id := range slices.Sorted(maps.Keys(openMissed)) {
		a := openMissed[id]
		if want.MissedAlerts[a.PatientID+"|"+a.MedicationID] > 0 {
			c.Alerts.Wrong++
		} else {
			c.Alerts.Unexpected++
		}
		c.Alerts.example("unresolved MISSED_DOSE alert %s for a dose not missed", id)
	}
	for id := range want.PumpFailures {
		c.Alerts.Expected++
		if pumpAlert[id] {
			c.Alerts.Matched++
		} else {
			c.Alerts.Missing++
			c.Alerts.example("no PUMP_FAILURE alert for %s", id)
		}
		delete(pumpAlert, id)
	}
	// A PUMP_FAILURE alert for a pump that never reported a failure.
	for _, id := range slices.Sorted(maps.Keys(pumpAlert)) {
		c.Alerts.Unexpected++
		c.Alerts.example("PUMP_FAILURE alert for %s, which did not fail", id)
	}
	c.Note = "Dose outcomes: final (highest version) outcome per dose vs the simulator's plan; adherence: latest daily and 7-day due/taken of the run's day; alerts: one unresolved MISSED_DOSE alert per dose finally missed, matched by alert id, plus one PUMP_FAILURE alert per failing pump (one for a pump that did not fail is unexpected). PDC and LOW_ADHERENCE/vitals alerts are not checked."
	return c, nil
}

// fillUsage copies CPU/RSS per role and service into the results.
func (h *harness) fillUsage() {
	byName := map[string]*Proc{}
	for _, p := range h.roles {
		byName[p.Name] = p
	}
	for i := range h.res.Roles {
		if p, ok := byName[h.res.Roles[i].Name]; ok {
			h.res.Roles[i].Usage = p.Usage()
			if ok, err := p.Exited(); ok {
				h.res.Roles[i].Status = "exited during run"
				h.res.Roles[i].ExitedEarly = fmt.Sprint(err)
			}
		}
	}
	for _, s := range h.svcs {
		h.res.Services = append(h.res.Services, RoleResult{Name: s.Name, Status: "watched", Usage: s.Usage()})
	}
	per := func(u *Usage) {
		if u.CPUSeconds > 0 {
			// The CPU window is the timed phase's (sampled from its start).
			u.ReadingsPerCPUSecond = math.Round(float64(h.c.sent.Load()-h.preSent) / u.CPUSeconds)
		}
	}
	for i := range h.res.Roles {
		per(&h.res.Roles[i].Usage)
	}
	for i := range h.res.Services {
		per(&h.res.Services[i].Usage)
	}
}

func cameraNote(h *harness) {
	switch {
	case h.sc.Cameras.Count == 0:
		h.res.Cameras = "none in this scenario"
	case h.cams != nil && !h.failed["rtsp"]:
		h.res.Cameras = fmt.Sprintf("%d synthetic camera(s): ffmpeg H.264 640x480 at %d fps (a red box walking, the colorbox model's 'person') published to an RTSP relay in the harness, read by the rtsp role",
			len(h.cams.ids), h.sc.Cameras.FPS)
	case h.cams != nil:
		h.res.Cameras = fmt.Sprintf("%d synthetic camera(s) served, but the rtsp role did not run: no frame was analysed", len(h.cams.ids))
		h.cams.stop()
		h.cams = nil
	default:
		h.res.Cameras = fmt.Sprintf("%d camera(s) in the scenario, not simulated in stage %s (cameras run only with the rtsp role, stage all)", h.sc.Cameras.Count, h.o.Stage)
	}
}

// cameraCounts appends what the cameras produced to the results.
func (h *harness) cameraCounts(ctx context.Context) {
	if h.cams == nil || h.obs == nil {
		return
	}
	var parts []string
	for _, t := range []string{"frames", "detections", "video_events"} {
		n, err := h.obs.CameraRows(ctx, t)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", t, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s rows", n, t))
	}
	h.res.Cameras += "; queryable: " + strings.Join(parts, ", ")
}
