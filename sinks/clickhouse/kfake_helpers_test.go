package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/topics"
)

// kfakeSink returns a sink writing to conn, with its config changed by
// set, and a one-broker kfake cluster (closed with the test) holding the
// vitals topic with parts partitions.
func kfakeSink(t *testing.T, parts int32, conn *recordingConn, set func(*Config)) (*Sink, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topics.Vitals))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	root := config.Default()
	cfg := DefaultConfig()
	cfg.Topics = []string{topics.Vitals}
	cfg.RetentionInterval = 0 // no retention queries on the fake connection
	set(&cfg)
	s, err := New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.conn = conn
	return s, c
}

// produceVitals writes n vitals records (ids v0, v1, ...) to partition 0
// of c's vitals topic through a client it returns (closed with the test).
func produceVitals(t *testing.T, c *kfake.Cluster, n int) *kgo.Client {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	for i := 0; i < n; i++ {
		r := rec(t, topics.Vitals, 0, 0, vitalsMsg(fmt.Sprint("v", i)))
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: topics.Vitals, Partition: 0, Value: r.Value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return prod
}

// joinGroup makes s's client a member of group "g" on c's vitals topic
// with s's rebalance callbacks (marks committed automatically, plus opts)
// and polls until s holds partition 0.
func joinGroup(t *testing.T, c *kfake.Cluster, s *Sink, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumerGroup("g"), kgo.ConsumeTopics(topics.Vitals), kgo.AutoCommitMarks(),
		kgo.OnPartitionsAssigned(s.onAssigned), kgo.OnPartitionsRevoked(s.onRevoked), kgo.OnPartitionsLost(s.onLost)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	s.cl = cl
	p0 := partKey{topics.Vitals, 0}
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	for {
		s.mu.Lock()
		ok := s.assigned[p0]
		s.mu.Unlock()
		if ok {
			return cl
		}
		if pctx.Err() != nil {
			t.Fatal("partition never assigned")
		}
		wctx, wcancel := context.WithTimeout(pctx, 50*time.Millisecond)
		cl.PollRecords(wctx, 1) // joins the group
		wcancel()
	}
}
