package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Pipelined inserts.
//
// A table's batch that is due is detached (tableBuf.detach) and inserted by
// a goroutine of its own, a flight, while the poll loop goes on fetching and
// filling the table's next batch. Before, the loop stopped for every insert:
// in a hospital bench at 580k msgs/min a vitals batch waited 1.74 s on
// average from its first row to ClickHouse's acknowledgement, of which the
// insert itself was 0.69 s and the rest the loop's insert cycles (every
// due table's insert, one cycle after the other) during which nothing was
// fetched.
//
// The rules that keep delivery exact:
//   - One flight per table at a time, so a table's batches reach ClickHouse
//     in the order of their records (ReplacingMergeTree versions, dedup
//     tokens).
//   - A partition's commit point stops at the first offset of every batch
//     that holds rows of it, filling or in the air (commitPoint). A flight's
//     landing marks the commit points of its partitions.
//   - A flight retries until ClickHouse acknowledges its batch or its
//     context ends (drain timeout, revoke flush timeout). A flight that ends
//     unacknowledged is dead: it keeps its offsets (so nothing passes them)
//     until dropAll rewinds its partitions or the sink stops uncommitted.
//   - Backpressure: a table whose next batch is full waits for its flight;
//     while more than MaxBufferedRows rows are held (filling and in the
//     air) the loop waits for landings; while the breaker is open fetching
//     is paused and one flight probes per cooldown.
//   - Rebalances and shutdown settle: launch every pending batch and wait
//     for all flights, bounded by their timeouts.
//
// Everything a flight shares with the loop (the table's buffers, the
// breaker, the counters, marks) is touched under s.mu only; the insert
// itself runs without it and reads only its detached batch. s.cond (on
// s.mu) is broadcast whenever a flight lands or dies.

// flight is one batch in the air.
type flight struct {
	b      *tableBuf // the detached batch, read by the flight's goroutine only
	cancel context.CancelFunc
	dead   bool // ended without ClickHouse's acknowledgement
}

// parallelInserts bounds the inserts running at once (Open's pool holds
// more, for migrations and retention queries).
const parallelInserts = 4

// due reports whether tb's batch should be inserted: full or old enough.
func (s *Sink) due(tb *tableBuf, now time.Time) bool {
	return tb.rows > 0 && (tb.rows >= s.cfg.BatchRows || now.Sub(tb.since) >= s.batchAge(tb))
}

// batchAge is how long tb's oldest row may wait: its table's own age
// (table_batch_age), else batch_age.
func (s *Sink) batchAge(tb *tableBuf) time.Duration {
	if d, ok := s.cfg.TableBatchAge[tb.table.Name]; ok {
		return d.D()
	}
	return s.cfg.BatchAge.D()
}

// launch detaches tb's batch and inserts it in the background. The caller
// holds s.mu; tb has rows and no flight.
func (s *Sink) launch(tb *tableBuf) {
	ctx, cancel := context.WithCancel(s.fctx)
	if s.aborting {
		// abort is waiting for every flight to end (the loop launched
		// this one while abort's wait released s.mu): it dies at once and
		// keeps its batch's offsets, like any dead flight.
		cancel()
	}
	f := &flight{b: tb.detach(), cancel: cancel}
	tb.fl = f
	s.flying++
	s.m.inFlight.Set(float64(s.flying))
	go s.fly(ctx, tb, f)
}

// fly inserts f's batch until ClickHouse acknowledges it or ctx ends.
func (s *Sink) fly(ctx context.Context, tb *tableBuf, f *flight) {
	defer f.cancel()
	for {
		probe, err := s.gate(ctx)
		if err == nil {
			err = s.attemptLimited(ctx, f.b)
		}
		s.mu.Lock()
		if probe {
			s.probing = false
		}
		if err == nil {
			if s.brk.open() || s.paused {
				s.log.Info("clickhouse inserts succeed again, resuming")
			}
			s.brk.success()
			s.setPaused(false)
			s.landed(tb, f)
			s.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			f.dead = true
			s.flying--
			s.m.inFlight.Set(float64(s.flying))
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		wait := s.brk.failure()
		if s.brk.open() {
			s.nextProbe = time.Now().Add(wait)
			s.setPaused(true)
		}
		s.log.Warn("clickhouse insert failed, retrying", "table", tb.table.Name, "rows", f.b.rows,
			"failures", s.brk.failures, "breaker_open", s.brk.open(), "wait", wait, "hint", hint(err), "err", err)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// gate returns when a flight may make an attempt: at once while the
// breaker is closed; while it is open, one probe at a time and at most one
// per cooldown across all flights (probe is true for that one).
func (s *Sink) gate(ctx context.Context) (probe bool, err error) {
	for {
		s.mu.Lock()
		if !s.brk.open() {
			s.mu.Unlock()
			return false, nil
		}
		now := time.Now()
		if !s.probing && !now.Before(s.nextProbe) {
			s.probing = true
			s.mu.Unlock()
			return true, nil
		}
		wait := s.nextProbe.Sub(now)
		if s.probing || wait <= 0 {
			wait = s.brk.cooldown
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// attemptLimited is attempt within parallelInserts.
func (s *Sink) attemptLimited(ctx context.Context, b *tableBuf) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	return s.attempt(ctx, b)
}

// landed books f's acknowledged batch (rows, buffer, offsets to mark) and
// launches tb's next batch if it is due; if not, it wakes the poll so that
// its deadline includes that batch. The caller holds s.mu.
func (s *Sink) landed(tb *tableBuf, f *flight) {
	b := f.b
	now := time.Now()
	s.m.batchWait.WithLabelValues(tb.table.Name).Observe(now.Sub(b.since).Seconds())
	if b.oldestMs > 0 {
		s.m.recordAge.WithLabelValues(tb.table.Name).Observe(float64(now.UnixMilli()-b.oldestMs) / 1000)
	}
	s.m.rows.WithLabelValues(tb.table.Name).Add(float64(b.rows))
	s.buffered -= b.rows
	s.m.buffered.Set(float64(s.buffered))
	parts := make([]partKey, 0, len(b.offs))
	for pk := range b.offs {
		parts = append(parts, pk)
	}
	b.reset()
	tb.fl, tb.spare = nil, b
	s.flying--
	s.m.inFlight.Set(float64(s.flying))
	s.mark(parts)
	if s.due(tb, now) && s.fctx.Err() == nil && !s.aborting {
		s.launch(tb)
	} else if tb.rows > 0 && s.pollCancel != nil {
		s.pollCancel()
	}
	s.cond.Broadcast()
}

// waitFor waits on s.cond until cond() holds or ctx ends. The caller
// holds s.mu (released while waiting, as by any cond wait: rebalance
// callbacks and landings run meanwhile).
func (s *Sink) waitFor(ctx context.Context, cond func() bool) error {
	if cond() {
		return nil
	}
	stop := context.AfterFunc(ctx, s.wakeAll)
	defer stop()
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.cond.Wait()
	}
	return nil
}

// wakeAll wakes every waitFor (a context ended).
func (s *Sink) wakeAll() {
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
}

// errNotInserted: a batch's flight ended without an acknowledgement.
var errNotInserted = errors.New("batch not acknowledged by clickhouse")

// settle inserts every pending batch and waits until all are in
// ClickHouse, or ctx ends (then flights keep flying: see abort). The
// caller holds s.mu.
func (s *Sink) settle(ctx context.Context) error {
	for {
		for _, tb := range s.tables {
			if tb.rows > 0 && tb.fl == nil && ctx.Err() == nil && s.fctx.Err() == nil {
				s.launch(tb)
			}
		}
		if err := s.waitFor(ctx, func() bool { return s.flying == 0 }); err != nil {
			return err
		}
		pending := false
		for _, tb := range s.tables {
			if tb.fl != nil {
				return fmt.Errorf("inserting %d rows into %s: %w", tb.fl.b.rows, tb.table.Name, errNotInserted)
			}
			pending = pending || tb.rows > 0
		}
		if !pending {
			return nil
		}
		// A batch is pending that the next pass cannot launch (ctx or
		// fctx ended while waitFor found no flight): without this, settle
		// spun for ever holding s.mu.
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.fctx.Err() != nil {
			return fmt.Errorf("flights cancelled with batches pending: %w", errNotInserted)
		}
	}
}

// abort cancels every flight and waits until they have all ended (landed
// or dead). The caller holds s.mu. While it waits (s.mu released) no
// flight is launched alive: a landing launches no next batch and the
// loop's launches die at once, and every flight seen is cancelled again
// on each wake-up, so abort is bounded by the inserts' reaction to their
// cancellation, not by ClickHouse.
func (s *Sink) abort() {
	s.aborting = true
	defer func() { s.aborting = false }()
	_ = s.waitFor(context.Background(), func() bool {
		for _, tb := range s.tables {
			if tb.fl != nil {
				tb.fl.cancel()
			}
		}
		return s.flying == 0
	})
}
