package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestCloseRevokeAfterLoopError: the loop returned an error (a dead letter
// that could not be produced) while a table held a filling batch that was
// not due. Run's drain on that path waits for the flights only, cancels
// them (fcancel) and closes the client; the group leave in Close calls
// onRevoked, whose settle could launch nothing (s.fctx done), found no
// flight and the batch still pending, and looped for ever holding s.mu:
// Close, and so Run, never returned.
func TestCloseRevokeAfterLoopError(t *testing.T) {
	s, c := kfakeSink(t, 1, &recordingConn{}, func(cfg *Config) { cfg.RevokeFlushTimeout = config.Duration(200 * time.Millisecond) })
	cl := joinGroup(t, c, s)
	// The loop's last poll filled a batch (not due), then failed.
	s.mu.Lock()
	if err := s.record(context.Background(), rec(t, topics.Vitals, 0, 0, vitalsMsg("v0"))); err != nil {
		t.Fatal(err)
	}
	if s.table(chschema.TVitals).rows != 1 {
		t.Fatal("no filling batch")
	}
	// Run's drain when the loop returned an error.
	dctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.waitFor(dctx, func() bool { return s.flying == 0 })
	s.fcancel()
	s.abort()
	s.markAll()
	s.mu.Unlock()
	closed := make(chan struct{})
	go func() {
		cl.Close() // leaves the group: onRevoked
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("client Close did not return within 10 s: onRevoked is stuck in settle holding s.mu")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buffered != 0 || s.table(chschema.TVitals).rows != 0 {
		t.Fatalf("after the revoke: buffered %d, want the batch dropped", s.buffered)
	}
}
