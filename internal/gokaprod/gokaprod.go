// Package gokaprod implements goka's Producer on a franz-go client, so that
// every record a goka group writes (outputs, loopback, table updates) goes
// through the same Kafka client as the rest of wardstream.
//
// Why: goka's own producer is sarama's AsyncProducer. On the processors'
// hot paths (one or more outputs and a table update per input record) it
// was the largest single cost, about a third of the anomaly group's CPU:
// every message crosses four goroutines by channel, and each produce
// request re-encodes and compresses through sarama's generic encoder.
// franz-go appends each record to its partition's batch under one lock and
// resolves the promise from the partition's acknowledgement, in order.
//
// The contract goka relies on is kept:
//   - the promise of every Emit finishes exactly once, after the broker
//     acknowledged the record (acks=all, idempotent) or with the error that
//     made franz-go give up; goka commits an input only after all promises
//     of its callback finished;
//   - table writes finish with a *sarama.ProducerMessage that carries the
//     record's partition and offset (goka stores the offset with the local
//     table copy);
//   - records of one partition are acknowledged in the order produced;
//   - keys are partitioned with Kafka's default partitioner (murmur2), the
//     hash goka is configured with (kafkahash): [Builder] refuses any other
//     hasher, since the loopback and table topics must be co-partitioned
//     with the inputs;
//   - Close flushes what is buffered before it returns.
package gokaprod

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
)

// CloseTimeout bounds how long Close waits for buffered records.
const CloseTimeout = 60 * time.Second

// Builder returns a goka.ProducerBuilder that builds franz-go producers
// from the kafka section (brokers, TLS, SASL, compression, linger and
// buffer limits); goka's brokers and client id are used, its hasher must
// partition like franz-go's default partitioner.
func Builder(cfg config.Kafka) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		if err := checkHasher(hasher); err != nil {
			return nil, err
		}
		c := cfg
		c.Brokers = brokers
		cl, err := kafka.NewClient(c,
			kgo.ClientID(clientID),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		)
		if err != nil {
			return nil, fmt.Errorf("goka producer %s: %w", clientID, err)
		}
		return New(cl), nil
	}
}

// checkHasher verifies that goka's hasher puts keys where franz-go's
// default partitioner does.
func checkHasher(hasher func() hash.Hash32) error {
	if hasher == nil {
		return errors.New("goka producer: no hasher (configure goka.WithHasher(kafkahash.New))")
	}
	sp := sarama.NewCustomHashPartitioner(hasher)("t")
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := 0; i < 64; i++ {
		key := "patient-" + strconv.Itoa(i*7919)
		want := kp.Partition(&kgo.Record{Key: []byte(key)}, 1009)
		got, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, 1009)
		if err != nil || int(got) != want {
			return fmt.Errorf("goka producer: goka's hasher puts key %q in partition %d of 1009, Kafka's default partitioner in %d (configure goka.WithHasher(kafkahash.New))", key, got, want)
		}
	}
	return nil
}

// Producer is a goka.Producer on a franz-go client, which it owns.
type Producer struct {
	cl *kgo.Client
}

// New returns a producer writing through cl (closed by Close). cl should
// partition keyed records with Kafka's default partitioner.
func New(cl *kgo.Client) *Producer { return &Producer{cl: cl} }

// Emit implements goka.Producer.
func (p *Producer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

// EmitWithHeaders implements goka.Producer. It blocks while the client's
// buffer is full (backpressure on the goka callback).
func (p *Producer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	prom, finish := goka.NewPromiseWithFinisher()
	e := &emit{finish: finish}
	// franz-go only reads a record's key (to partition it and to copy it
	// into the batch), so the string's bytes are used as they are. The
	// empty key stays a key (hashed to its partition like goka's hasher
	// does), not a null one: unsafe.StringData("") is nil.
	k := emptyKey
	if len(key) > 0 {
		k = unsafe.Slice(unsafe.StringData(key), len(key))
	}
	e.rec = kgo.Record{Topic: topic, Key: k, Value: value}
	if len(headers) > 0 {
		e.rec.Headers = make([]kgo.RecordHeader, 0, len(headers))
		for k, v := range headers {
			e.rec.Headers = append(e.rec.Headers, kgo.RecordHeader{Key: k, Value: v})
		}
	}
	p.cl.Produce(context.Background(), &e.rec, e.done)
	return prom
}

// emptyKey is the empty, non-null key.
var emptyKey = []byte{}

// emit is one record in flight with the message its promise finishes with,
// allocated together: per record one allocation and a method value, where
// a record, a copy of its key, a closure and a message were four (the
// anomaly group emits two records per reading).
type emit struct {
	rec    kgo.Record
	msg    sarama.ProducerMessage
	finish goka.PromiseFinisher
}

// done is the record's produce promise: it finishes goka's promise with
// the record's partition and offset (goka keeps a table's offset), or with
// the error that made franz-go give up on it.
func (e *emit) done(r *kgo.Record, err error) {
	if err != nil {
		err = fmt.Errorf("producing to %s partition %d: %w", r.Topic, r.Partition, err)
	}
	e.msg = sarama.ProducerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	e.finish(&e.msg, err)
}

// Close flushes buffered records (at most [CloseTimeout]) and closes the
// client; records that could not be flushed finish with an error.
func (p *Producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("flushing goka producer: %w", err)
	}
	return nil
}
