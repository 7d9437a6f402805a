package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestMarkAfterDropInFlushWait: the loop's flushDue waits (cond
// wait, s.mu released) for a table's flight; a rebalance during that wait
// with ClickHouse down drops every batch and records rewind = 10 for the
// kept partition, but left pos.next at 12 until the next poll. flushDue
// then returns nil and the loop calls markAll, which marked
// commitPoint = pos.next = 12: past rows 10-11, which are in no batch and
// not in ClickHouse. kgo's marks only move forward, so autocommit committed
// 12 even after the rewind; a restart or the next rebalance lost 10-11.
// dropAll now moves pos.next back to the rewind point.
func TestMarkAfterDropInFlushWait(t *testing.T) {
	s, _ := harness(t)
	s.cfg.BatchRows = 1
	s.cfg.RevokeFlushTimeout = config.Duration(200 * time.Millisecond)
	s.brk = breaker{base: time.Millisecond, max: 5 * time.Millisecond, cooldown: 20 * time.Millisecond, threshold: 3}
	conn := &recordingConn{failing: true}
	s.conn = conn
	ctx := context.Background()
	p0 := partKey{topics.Vitals, 0}
	vit := s.table(chschema.TVitals)
	s.mu.Lock()
	if err := s.record(ctx, rec(t, topics.Vitals, 0, 10, vitalsMsg("v10"))); err != nil {
		t.Fatal(err)
	}
	s.launch(vit) // 10 in the air, failing
	if err := s.record(ctx, rec(t, topics.Vitals, 0, 11, vitalsMsg("v11"))); err != nil {
		t.Fatal(err)
	}
	revoked := make(chan struct{})
	go func() {
		time.Sleep(50 * time.Millisecond) // while flushDue waits
		s.onRevoked(ctx, s.cl, map[string][]int32{topics.Vitals: {1}})
		close(revoked)
	}()
	// The loop: process -> flushDue (waits for the vitals flight) -> markAll.
	if err := s.flushDue(ctx); err != nil {
		t.Fatal(err)
	}
	s.mu.Unlock()
	<-revoked
	s.mu.Lock()
	defer s.mu.Unlock()
	rw, ok := s.rewind[p0]
	if !ok {
		t.Fatalf("no rewind recorded (test did not reproduce the drop): rewind %v", s.rewind)
	}
	// What the loop's markAll marks now:
	if off, ok := s.commitPoint(p0); ok && off > rw {
		t.Fatalf("after the drop the loop's markAll marks %d, past rewind point %d (rows 10-11 dropped, not in ClickHouse)", off, rw)
	}
}

// TestResumeAfterRevokeDrop: ClickHouse is down long enough for the
// breaker to open (fetching paused); a rebalance drops the batches
// (dropAll). Only a flight's success resumed fetching, and none was left;
// the poll had no deadline (no batch pending), so the rewind was never
// applied and the sink stayed idle after ClickHouse was back, for good.
// dropAll now resumes fetching and ends the poll in progress.
func TestResumeAfterRevokeDrop(t *testing.T) {
	conn := &recordingConn{failing: true}
	s, c := kfakeSink(t, 2, conn, func(cfg *Config) {
		cfg.BatchAge = config.Duration(10 * time.Millisecond)
		cfg.RevokeFlushTimeout = config.Duration(200 * time.Millisecond)
	})
	s.brk = breaker{base: time.Millisecond, max: 5 * time.Millisecond, cooldown: 20 * time.Millisecond, threshold: 2}
	produceVitals(t, c, 3)
	var err error
	s.cl, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topics.Vitals: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.cl.Close()
	s.assigned[partKey{topics.Vitals, 0}] = true
	s.assigned[partKey{topics.Vitals, 1}] = true
	ctx, cancel := context.WithCancel(context.Background())
	loopDone := make(chan error, 1)
	go func() { loopDone <- s.loop(ctx) }()
	defer func() { cancel(); <-loopDone }()
	waitUntil := func(d time.Duration, cond func() bool) bool {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			s.mu.Lock()
			ok := cond()
			s.mu.Unlock()
			if ok {
				return true
			}
		}
		return false
	}
	if !waitUntil(5*time.Second, func() bool { return s.paused && s.flying > 0 }) {
		t.Fatal("breaker never opened")
	}
	s.onRevoked(context.Background(), s.cl, map[string][]int32{topics.Vitals: {1}})
	conn.mu.Lock()
	conn.failing = false // ClickHouse is back
	conn.mu.Unlock()
	if !waitUntil(3*time.Second, func() bool { return len(conn.got()) > 0 }) {
		s.mu.Lock()
		paused, flying, rw := s.paused, s.flying, fmt.Sprint(s.rewind)
		s.mu.Unlock()
		t.Fatalf("3 s after ClickHouse came back nothing was inserted: fetching paused %v, flights %d, rewind %s not applied", paused, flying, rw)
	}
}
