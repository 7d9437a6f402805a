package clickhouse

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestDeadLetterProduceReleasesLock: the loop converts records with s.mu
// held, and a record that cannot become rows is produced to the
// dead-letter topic synchronously (up to six attempts of 10 s each). That
// produce ran with s.mu held, so while Kafka was slow to answer it (a
// dead-letter topic whose leader is moving, a produce quota, a broker
// under load) every other path that takes s.mu waited as long: a flight's
// landing (its offsets not marked, the next batch not launched), the
// rebalance callbacks (a revoke blocked past the group's rebalance
// timeout gets the member kicked out). The produce now runs with s.mu
// released, and the partition's position only moves past the record once
// its dead letter is in Kafka, so nothing commits past it meanwhile.
func TestDeadLetterProduceReleasesLock(t *testing.T) {
	cases := []struct {
		name string
		// setup runs before the dead letter stalls, with s.mu held.
		setup func(t *testing.T, s *Sink, conn *recordingConn)
		// probe takes s.mu by another path while the produce is stalled.
		probe func(s *Sink, conn *recordingConn)
	}{
		{name: "partitions assigned", probe: func(s *Sink, _ *recordingConn) {
			s.onAssigned(context.Background(), s.cl, map[string][]int32{topics.Schedules: {0}})
		}},
		{name: "partitions lost", probe: func(s *Sink, _ *recordingConn) {
			s.onLost(context.Background(), s.cl, map[string][]int32{topics.Vitals: {2}})
		}},
		{name: "partitions revoked", probe: func(s *Sink, _ *recordingConn) {
			s.onRevoked(context.Background(), s.cl, map[string][]int32{topics.Vitals: {2}})
		}},
		{name: "flight lands", setup: func(t *testing.T, s *Sink, _ *recordingConn) {
			if err := s.record(context.Background(), rec(t, topics.Vitals, 1, 5, vitalsMsg("v5"))); err != nil {
				t.Fatal(err)
			}
			s.launch(s.table(chschema.TVitals)) // held by ClickHouse until the probe
		}, probe: func(s *Sink, conn *recordingConn) {
			conn.hold <- struct{}{} // ClickHouse acknowledges
			s.mu.Lock()
			for s.flying > 0 {
				s.cond.Wait()
			}
			s.mu.Unlock()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, c := harness(t)
			conn := &recordingConn{hold: make(chan struct{})}
			s.conn = conn
			if tc.setup != nil {
				s.mu.Lock()
				tc.setup(t, s, conn)
				s.mu.Unlock()
			}
			// Kafka holds every produce until release.
			stalled, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				once.Do(func() { close(stalled) })
				c.SleepControl(func() { <-release })
				return nil, nil, false
			})
			released := false
			defer func() {
				if !released {
					close(release)
				}
			}()

			pk := partKey{topics.Vitals, 0}
			bad := &kgo.Record{Topic: topics.Vitals, Partition: 0, Offset: 7, Key: []byte("dev"), Value: []byte{0xff, 0xff, 0xff}}
			recErr := make(chan error, 1)
			go func() {
				s.mu.Lock() // as the loop's process does
				defer s.mu.Unlock()
				recErr <- s.record(context.Background(), bad)
			}()
			select {
			case <-stalled:
			case <-time.After(10 * time.Second):
				t.Fatal("the dead letter was never produced")
			}

			probed := make(chan struct{})
			go func() { tc.probe(s, conn); close(probed) }()
			select {
			case <-probed:
			case <-time.After(2 * time.Second):
				t.Fatalf("%s blocked for 2 s while the dead letter's produce was stalled (s.mu held across the produce)", tc.name)
			}
			s.mu.Lock()
			off, ok := s.commitPoint(pk)
			s.mu.Unlock()
			if ok && off > bad.Offset {
				t.Fatalf("commit point %d passes offset %d whose dead letter is not in Kafka yet", off, bad.Offset)
			}

			close(release)
			released = true
			select {
			case err := <-recErr:
				if err != nil {
					t.Fatalf("record: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the dead letter was not produced after Kafka answered")
			}
			s.mu.Lock()
			off, _ = s.commitPoint(pk)
			s.mu.Unlock()
			if off != bad.Offset+1 {
				t.Fatalf("commit point %d after the dead letter was produced, want %d", off, bad.Offset+1)
			}
		})
	}
}
