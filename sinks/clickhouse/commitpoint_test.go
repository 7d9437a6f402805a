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

// TestDeadLetterFailureDoesNotPassCommitPoint: a record that could
// neither be converted nor dead-lettered (the produce to the dead-letter
// topic failed, here because the sink is shutting down) must not be
// committed past: it is in neither ClickHouse nor the dead-letter topic.
// record() advanced the partition's position before conversion, so the
// commit point (what Run's drain marks and commits) passed it; the
// position is now restored when conversion fails.
func TestDeadLetterFailureDoesNotPassCommitPoint(t *testing.T) {
	s, _ := harness(t)
	pk := partKey{topics.Vitals, 0}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shutdown while the dead letter is being produced
	bad := &kgo.Record{Topic: topics.Vitals, Partition: 0, Offset: 7, Key: []byte("dev"), Value: []byte{0xff, 0xff, 0xff}}
	err := s.recordLocked(ctx, bad)
	if err == nil {
		t.Fatal("dead letter produced with a cancelled context; test setup does not reproduce the failure")
	}
	t.Logf("record: %v", err)
	// Run's drain: markAll marks commitPoint for every assigned partition,
	// then CommitMarkedOffsets.
	if off, ok := s.commitPoint(pk); ok && off > bad.Offset {
		t.Fatalf("commit point %d passes offset %d, which is neither in ClickHouse nor dead-lettered (lost on restart)", off, bad.Offset)
	}
}

// TestAbortCancelsFlightLaunchedByLanding: onRevoked bounds its flush
// by revoke_flush_timeout, then abort()s every flight and drops the batches.
// A flight whose insert was acknowledged just as the bound ended lands
// during abort's wait, and landed() launched the table's next (due) batch
// with a fresh context that abort never cancelled: abort then waited for
// that insert for as long as ClickHouse took (forever while it is down), so
// the rebalance callback was no longer bounded. While abort waits, nothing
// is launched alive now.
func TestAbortCancelsFlightLaunchedByLanding(t *testing.T) {
	s, _ := harness(t)
	s.brk = breaker{base: time.Millisecond, max: 5 * time.Millisecond, cooldown: 20 * time.Millisecond, threshold: 3}
	conn := &recordingConn{hold: make(chan struct{})}
	s.conn = conn
	ctx := context.Background()
	vit := s.table(chschema.TVitals)
	s.mu.Lock()
	for _, off := range []int64{10, 11} {
		if err := s.record(ctx, rec(t, topics.Vitals, 0, off, vitalsMsg(fmt.Sprint("v", off)))); err != nil {
			t.Fatal(err)
		}
	}
	s.launch(vit) // insert of 10-11 in the air, held by ClickHouse
	if err := s.record(ctx, rec(t, topics.Vitals, 0, 12, vitalsMsg("v12"))); err != nil {
		t.Fatal(err)
	}
	s.cfg.BatchAge = config.Duration(time.Nanosecond) // the filling batch is due
	// onRevoked: the flush bound ends with the insert still in the air.
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.settle(rctx); err == nil {
		t.Fatal("settle succeeded")
	}
	// ClickHouse acknowledges the held insert just now; from here on it is down.
	conn.mu.Lock()
	conn.failing = true
	conn.mu.Unlock()
	conn.hold <- struct{}{}
	conn.mu.Lock()
	conn.hold = nil
	conn.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.abort() // called with s.mu held, as onRevoked does
		close(done)
	}()
	select {
	case <-done:
		s.mu.Unlock()
	case <-time.After(3 * time.Second):
		// Unblock the test: end every flight.
		s.fcancel()
		<-done
		s.mu.Unlock()
		t.Fatalf("abort did not return within 3s: a flight launched by a landing during abort is never cancelled (flight retrying: %v)", vit.fl != nil)
	}
}
