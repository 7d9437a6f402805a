package kafkahash_test

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/kafkahash"
)

// TestMatchesFranzGo checks that goka (sarama's hash partitioner with our
// hasher) puts every key in the partition franz-go's default partitioner
// picks.
func TestMatchesFranzGo(t *testing.T) {
	sp := sarama.NewCustomHashPartitioner(kafkahash.New)("t")
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 4, 12, 48, 100} {
		for i := 0; i < 5000; i++ {
			key := fmt.Sprintf("patient-%d", i*7919)
			if i%3 == 0 {
				key = fmt.Sprintf("MISSED_DOSE|patient|p%d|m|%d|0", i, i*1000)
			}
			want := kp.Partition(&kgo.Record{Key: []byte(key)}, n)
			got, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, int32(n))
			if err != nil {
				t.Fatal(err)
			}
			if int(got) != want {
				t.Fatalf("key %q over %d partitions: goka %d, franz-go %d", key, n, got, want)
			}
		}
	}
}
