package gokaprod_test

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/gokaprod"
	"github.com/wardstream/wardstream/internal/kafkahash"
)

// TestBuilderRefusesOtherHashers: goka's default FNV-1a hasher would put
// table and loopback records in other partitions than their inputs.
func TestBuilderRefusesOtherHashers(t *testing.T) {
	cfg := config.Default().Kafka
	for _, tc := range []struct {
		name    string
		hasher  func() hash.Hash32
		wantErr string
	}{
		{"nil", nil, "no hasher"},
		{"fnv", fnv.New32a, "Kafka's default partitioner"},
		{"fnv1", fnv.New32, "Kafka's default partitioner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gokaprod.Builder(cfg)([]string{"127.0.0.1:1"}, "c", tc.hasher)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestEmit produces through the builder's producer to an in-process broker
// and checks what goka relies on: every promise finishes once, with the
// record's partition (Kafka's default partitioner) and offset; offsets of a
// partition follow the emit order; headers and null values arrive; Close
// flushes.
func TestEmit(t *testing.T) {
	const topic, parts = "t", 6
	c, p := newProducer(t, topic, parts)
	type res struct {
		key      string
		part     int32
		off      int64
		err      error
		finished int
		wantPart int
	}
	const n = 3000
	results := make([]*res, n)
	var mu sync.Mutex
	kp := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("patient-%d", i%97)
		r := &res{key: key, wantPart: kp.Partition(&kgo.Record{Key: []byte(key)}, parts)}
		results[i] = r
		var prom *goka.Promise
		switch i % 3 {
		case 0:
			prom = p.Emit(topic, key, []byte(fmt.Sprint("v", i)))
		case 1:
			prom = p.EmitWithHeaders(topic, key, []byte(fmt.Sprint("v", i)), goka.Headers{"h": []byte("x")})
		default:
			prom = p.Emit(topic, key, nil) // a tombstone
		}
		prom.ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			mu.Lock()
			defer mu.Unlock()
			r.finished++
			r.err = err
			if msg != nil {
				r.part, r.off = msg.Partition, msg.Offset
			}
		})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	last := map[int32]int64{}
	for i, r := range results {
		switch {
		case r.finished != 1:
			t.Fatalf("emit %d: promise finished %d times", i, r.finished)
		case r.err != nil:
			t.Fatalf("emit %d: %v", i, r.err)
		case int(r.part) != r.wantPart:
			t.Fatalf("emit %d (key %s): partition %d, want %d", i, r.key, r.part, r.wantPart)
		}
		if prev, ok := last[r.part]; ok && r.off <= prev {
			t.Fatalf("emit %d: offset %d in partition %d after offset %d", i, r.off, r.part, prev)
		}
		last[r.part] = r.off
	}

	// Read back: values, headers and tombstones as emitted.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	byPos := map[[2]int64]*kgo.Record{}
	for len(byPos) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", len(byPos), n, err)
		}
		fs.EachRecord(func(r *kgo.Record) { byPos[[2]int64{int64(r.Partition), r.Offset}] = r })
	}
	for i, r := range results {
		got := byPos[[2]int64{int64(r.part), r.off}]
		if got == nil || string(got.Key) != r.key {
			t.Fatalf("emit %d: no record with key %s at partition %d offset %d", i, r.key, r.part, r.off)
		}
		switch i % 3 {
		case 0, 1:
			if string(got.Value) != fmt.Sprint("v", i) {
				t.Fatalf("emit %d: value %q", i, got.Value)
			}
		default:
			if got.Value != nil {
				t.Fatalf("emit %d: tombstone arrived with value %q", i, got.Value)
			}
		}
		if hasH := len(got.Headers) == 1 && got.Headers[0].Key == "h" && string(got.Headers[0].Value) == "x"; hasH != (i%3 == 1) {
			t.Fatalf("emit %d: headers %v", i, got.Headers)
		}
	}
}

// TestEmitAfterClose: a record emitted after Close finishes its promise
// with an error instead of hanging (goka fails the group).
func TestEmitAfterClose(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := gokaprod.Builder(config.Default().Kafka)(c.ListenAddrs(), "it", kafkahash.New)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	p.Emit("t", "k", []byte("v")).Then(func(err error) { done <- err })
	select {
	case err := <-done:
		if !errors.Is(err, kgo.ErrClientClosed) {
			t.Fatalf("err = %v, want kgo.ErrClientClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("promise of an emit after Close never finished")
	}
}

// newProducer starts an in-process broker with topic (parts partitions),
// closed when the test ends, and builds a producer on it as goka would.
func newProducer(tb testing.TB, topic string, parts int32) (*kfake.Cluster, goka.Producer) {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topic))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	cfg := config.Default().Kafka
	cfg.Linger = config.Duration(time.Millisecond)
	p, err := gokaprod.Builder(cfg)(c.ListenAddrs(), "it", kafkahash.New)
	if err != nil {
		tb.Fatal(err)
	}
	return c, p
}

// BenchmarkEmit produces b.N records to an in-process broker and waits for
// their promises; allocs/op is the figure to watch (the anomaly group emits
// two records per reading). kfake's own work is in the process too, so
// ns/op is not the producer's alone.
func BenchmarkEmit(b *testing.B) {
	_, p := newProducer(b, "t", 4)
	defer p.Close()
	value := make([]byte, 120)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("device-%06d", i)
	}
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		p.Emit("t", keys[i%len(keys)], value).Then(func(err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
}

// TestEmitEmptyKey: goka's key for a record consumed without a key is "",
// and callbacks write the table, loopback and dead letters under it. The
// hasher goka is configured with (kafkahash) and goka's own sarama producer
// treat "" as an empty key hashed with murmur2 (an empty key is accepted by
// compacted topics); it must not turn into a null key, which lands in a
// random (sticky) partition and is rejected by a compacted table topic.
func TestEmitEmptyKey(t *testing.T) {
	const topic, parts = "t", 6
	c, p := newProducer(t, topic, parts)
	defer p.Close()
	// Where goka (sarama's hash partitioner with kafkahash) puts key "".
	want, err := sarama.NewCustomHashPartitioner(kafkahash.New)(topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder("")}, parts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	type pos struct {
		part int32
		off  int64
	}
	var got []pos
	for i := 0; i < n; i++ { // one at a time: each record is its own batch
		done := make(chan error, 1)
		p.Emit(topic, "", []byte(fmt.Sprint("v", i))).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			if err == nil {
				got = append(got, pos{msg.Partition, msg.Offset})
			}
			done <- err
		})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for i, g := range got {
		if g.part != want {
			t.Errorf("emit %d with key \"\": partition %d, goka's hasher says %d", i, g.part, want)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := 0
	for read < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", read, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			if r.Key == nil {
				t.Errorf("record at partition %d offset %d: null key, want the empty key", r.Partition, r.Offset)
			}
		})
	}
}
