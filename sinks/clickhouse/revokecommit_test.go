package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestRevokeCommitsLandedAfterFlushTimeout: during a revoke's flush the
// batch of offsets 0-1 lands (and is marked) and launches the next one
// (offset 2), which is still in the air when revoke_flush_timeout ends; it
// is dropped. The commit that follows used the flush's context, already
// expired, so it always failed: the landed rows' offsets were never
// committed (kgo forgets the marks of revoked partitions) and the
// partition's next owner inserted rows 0-1 again. The committed offset
// must be 2: past the landed rows, not past the dropped one.
func TestRevokeCommitsLandedAfterFlushTimeout(t *testing.T) {
	conn := &recordingConn{hold: make(chan struct{})}
	s, c := kfakeSink(t, 1, conn, func(cfg *Config) { cfg.RevokeFlushTimeout = config.Duration(300 * time.Millisecond) })
	prod := produceVitals(t, c, 3)
	// No autocommit tick during the test: only onRevoked's commit counts.
	cl := joinGroup(t, c, s, kgo.AutoCommitInterval(time.Hour))
	defer cl.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	ctx := context.Background()
	vit := s.table(chschema.TVitals)
	s.mu.Lock()
	for _, off := range []int64{0, 1} {
		if err := s.record(ctx, rec(t, topics.Vitals, 0, off, vitalsMsg(fmt.Sprint("v", off)))); err != nil {
			t.Fatal(err)
		}
	}
	s.launch(vit) // 0-1 in the air, held by ClickHouse
	if err := s.record(ctx, rec(t, topics.Vitals, 0, 2, vitalsMsg("v2"))); err != nil {
		t.Fatal(err)
	}
	s.cfg.BatchAge = config.Duration(time.Nanosecond) // 2 is due: launched when 0-1 lands
	s.mu.Unlock()
	go func() {
		time.Sleep(50 * time.Millisecond) // while onRevoked's settle waits
		conn.hold <- struct{}{}           // 0-1 lands; 2 is held until the bound
	}()
	s.onRevoked(ctx, cl, map[string][]int32{topics.Vitals: {0}})
	if got := conn.got(); !reflect.DeepEqual(got, []int{2}) {
		t.Fatalf("inserts %v, want [2] (0-1 landed, 2 held): test did not reproduce the scenario", got)
	}
	s.mu.Lock()
	if s.buffered != 0 || vit.fl != nil {
		t.Fatalf("after the revoke: buffered %d, flight %v; want the held batch dropped", s.buffered, vit.fl)
	}
	s.mu.Unlock()
	offs, err := kadm.NewClient(prod).FetchOffsets(pctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topics.Vitals, 0)
	if !ok || o.Err != nil {
		t.Fatalf("offset of %s/0 for rows 0-1 that landed during the revoke never committed (err %v): the next owner inserts them again", topics.Vitals, o.Err)
	}
	if o.At != 2 {
		t.Fatalf("committed offset %d, want 2 (0-1 landed, 2 dropped)", o.At)
	}
}
