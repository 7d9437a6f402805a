package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kgo"
)

// item is one unit of sending: one MQTT publish or a set of Kafka records.
type item struct {
	pub  Publish
	recs []*kgo.Record
	// valid readings expected in the data tables; malformed readings
	// expected in dead_letters; copies > 1 sends the same bytes again.
	valid, malformed int
	copies           int
	probes           []probe
}

// probe is a reading whose visibility the harness times.
type probe struct {
	id        string
	device    string
	eventTime time.Time
	table     string
}

// counters are the sender-side totals, updated atomically.
type counters struct {
	sent      atomic.Int64 // valid readings acknowledged (broker PUBACK or Kafka ack)
	publishes atomic.Int64 // MQTT publishes / Kafka records acknowledged
	malformed atomic.Int64 // malformed messages acknowledged
	dupCopies atomic.Int64 // extra identical copies acknowledged
	errors    atomic.Int64 // send attempts that failed (retried)
	failed    atomic.Int64 // readings given up after retries
}

// sender delivers items; Send blocks while the sender is saturated.
type sender interface {
	Send(ctx context.Context, it item) error
	// Close waits for every accepted item to be acknowledged or failed.
	Close(ctx context.Context) error
}

// onAck is called for every acknowledged item with its ack time.
type onAck func(it *item, at time.Time)

// mqttSender publishes over a pool of MQTT v5 connections (mqttpub.go);
// each connection has a fixed table of packet ids, so the number of
// unacknowledged QoS1 publishes is bounded by connections * inflight.
type mqttSender struct {
	work  chan item
	wg    sync.WaitGroup
	c     *counters
	ack   onAck
	qos   byte
	addr  string
	conns []*pubConn
}

// newMQTTSender dials n connections to brokerURL (tcp:// or mqtt://).
func newMQTTSender(ctx context.Context, brokerURL, clientPrefix string, n, inflight, qos int, c *counters, ack onAck) (*mqttSender, error) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, fmt.Errorf("mqtt url %q: %w", brokerURL, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "mqtt" {
		return nil, fmt.Errorf("mqtt url %q: the bench publishes over tcp:// or mqtt:// only", brokerURL)
	}
	if inflight < 1 || inflight > 0xFFFF {
		return nil, fmt.Errorf("mqtt inflight %d: must be 1..65535", inflight)
	}
	s := &mqttSender{work: make(chan item, n*inflight), c: c, ack: ack, qos: byte(qos), addr: u.Host}
	for i := range n {
		pc := newPubConn(s, fmt.Sprintf("%s-%d", clientPrefix, i), inflight)
		if err := pc.dial(ctx); err != nil {
			for _, o := range s.conns {
				o.close()
			}
			return nil, err
		}
		s.conns = append(s.conns, pc)
	}
	for _, pc := range s.conns {
		s.wg.Add(1)
		go pc.run()
	}
	return s, nil
}

func (s *mqttSender) Send(ctx context.Context, it item) error {
	select {
	case s.work <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close waits until every item taken was acknowledged or given up; each
// connection then disconnects. At the deadline Close returns with the
// error; the writers go on until what they hold is acknowledged or given up.
func (s *mqttSender) Close(ctx context.Context) error {
	close(s.work)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt publishes still in flight at deadline: %w", ctx.Err())
	}
}

// kafkaSender produces records straight to the catalog topics (stages
// kafka and sink). franz-go bounds its buffer: Produce blocks when full.
type kafkaSender struct {
	cl  *kgo.Client
	c   *counters
	ack onAck
	wg  sync.WaitGroup
}

func newKafkaSender(cl *kgo.Client, c *counters, ack onAck) *kafkaSender {
	return &kafkaSender{cl: cl, c: c, ack: ack}
}

func (s *kafkaSender) Send(ctx context.Context, it item) error {
	copies := max(it.copies, 1)
	total := len(it.recs) * copies
	if total == 0 {
		return nil
	}
	var left atomic.Int64
	left.Store(int64(total))
	var failed atomic.Bool
	s.wg.Add(1)
	for range copies {
		for _, r := range it.recs {
			rec := *r
			rec.Context = nil
			s.cl.Produce(ctx, &rec, func(_ *kgo.Record, err error) {
				if err != nil {
					s.c.errors.Add(1)
					failed.Store(true)
				}
				if left.Add(-1) == 0 {
					defer s.wg.Done()
					if failed.Load() {
						s.c.failed.Add(int64(it.valid))
						return
					}
					s.c.publishes.Add(int64(total))
					s.c.sent.Add(int64(it.valid))
					s.c.malformed.Add(int64(it.malformed))
					s.c.dupCopies.Add(int64(total - len(it.recs)))
					if s.ack != nil {
						s.ack(&it, time.Now())
					}
				}
			})
		}
	}
	return ctx.Err()
}

func (s *kafkaSender) Close(ctx context.Context) error {
	if err := s.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing kafka producer: %w", err)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("kafka records still unacknowledged at deadline")
	}
}

// endSessions removes the broker sessions of client ids: each connects
// with clean start (dropping the stored session and its queue) and no
// session expiry, and disconnects.
func endSessions(ctx context.Context, brokerURL string, ids []string) error {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return fmt.Errorf("mqtt url %q: %w", brokerURL, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "mqtt" {
		return fmt.Errorf("mqtt url %q: only tcp:// and mqtt:// are supported here", brokerURL)
	}
	var errs []error
	for _, id := range ids {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return fmt.Errorf("dialing mqtt broker %s: %w", u.Host, err)
		}
		cl := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id})
		ca, err := cl.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("connecting as %s: %w", id, err))
		case ca.ReasonCode != 0:
			errs = append(errs, fmt.Errorf("broker refused %s: reason %d", id, ca.ReasonCode))
		default:
			_ = cl.Disconnect(&paho.Disconnect{ReasonCode: 0})
		}
		conn.Close()
	}
	return errors.Join(errs...)
}
