package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// metaGetter is every catalog record: they all carry Meta.
type metaGetter interface{ GetMeta() *pb.Meta }

// kafkaObserver consumes the connector's output topics from the offsets
// they had before the run and counts the run's records (stage mqtt, where
// Kafka is the end of the measured path).
type kafkaObserver struct {
	cl     *kgo.Client
	tenant string
	prefix string

	mu     sync.Mutex
	ids    map[string]struct{}
	rows   int64
	dlq    int64
	seenAt map[string]time.Time // probe id -> record timestamp
	want   map[string]bool
}

// newKafkaObserver starts consuming catalog topics names (with prefix) at
// their current end offsets.
func newKafkaObserver(ctx context.Context, kc config.Kafka, adm *kadm.Client, prefix, tenant string, names ...string) (*kafkaObserver, error) {
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = prefix + n
	}
	// Freshly created topics may not have leaders yet: retry until every
	// partition of every topic has an end offset.
	var parts map[string]map[int32]kgo.Offset
	deadline := time.Now().Add(30 * time.Second)
	for {
		ends, err := adm.ListEndOffsets(ctx, full...)
		complete := err == nil
		parts = map[string]map[int32]kgo.Offset{}
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil || o.Partition < 0 {
					complete = false
					return
				}
				if parts[o.Topic] == nil {
					parts[o.Topic] = map[int32]kgo.Offset{}
				}
				parts[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
			})
			complete = complete && len(parts) == len(full)
		}
		if complete {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listing end offsets of %v: topics not ready after 30s (%v)", full, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	cl, err := kafka.NewClient(kc, kgo.ConsumePartitions(parts), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	return &kafkaObserver{cl: cl, tenant: tenant, prefix: prefix, ids: map[string]struct{}{}, seenAt: map[string]time.Time{}, want: map[string]bool{}}, nil
}

// run consumes until ctx is done.
func (k *kafkaObserver) run(ctx context.Context) {
	defer k.cl.Close()
	for {
		fs := k.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			name := r.Topic[len(k.prefix):]
			t, ok := topics.Lookup(name)
			if !ok {
				return
			}
			m := t.New()
			if err := codec.Unmarshal(r.Value, m); err != nil {
				return
			}
			// A vitals batch counts as its readings.
			parts := []proto.Message{m}
			if b, ok := m.(*pb.VitalsBatch); ok {
				parts = parts[:0]
				for _, v := range b.Readings {
					parts = append(parts, v)
				}
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			for _, part := range parts {
				mg, ok := part.(metaGetter)
				if !ok || mg.GetMeta().GetTenant() != k.tenant {
					continue
				}
				id := mg.GetMeta().GetEventId()
				if name == topics.DeadLetters {
					k.dlq++
				} else if name == topics.Vitals || name == topics.VitalsBatches || name == topics.Intake {
					k.rows++
					k.ids[id] = struct{}{}
					if k.want[id] {
						k.seenAt[id] = r.Timestamp
						delete(k.want, id)
					}
				}
			}
		})
	}
}

// counts returns (records, distinct event ids, dead letters) seen so far.
func (k *kafkaObserver) counts() (int64, int64, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rows, int64(len(k.ids)), k.dlq
}

// watch registers probe ids; seen returns and forgets the probes seen.
func (k *kafkaObserver) watch(ids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range ids {
		if _, ok := k.ids[id]; ok {
			// Already consumed before the ack callback registered it:
			// the record's timestamp is unknown now; time it as seen now.
			k.seenAt[id] = time.Now()
			continue
		}
		k.want[id] = true
	}
}

func (k *kafkaObserver) seen() map[string]time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.seenAt
	k.seenAt = map[string]time.Time{}
	return out
}
