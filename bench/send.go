package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"
	"github.com/eclipse/paho.golang/paho/store/memory"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/coalesce"
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

// mqttSender publishes over a pool of MQTT v5 connections; each connection
// has a fixed number of workers with one publish in flight each, so the
// number of unacknowledged QoS1 publishes is bounded.
type mqttSender struct {
	work   chan item
	wg     sync.WaitGroup
	c      *counters
	ack    onAck
	qos    byte
	addr   string
	prefix string
	conns  []*mqttConn
	epoch  atomic.Pointer[publishEpoch]
}

// publishEpoch is a deadline context shared by the publishes that start
// within one epoch: one timer per epoch instead of one per publish (a
// context.WithTimeout per publish was 7% of the harness's CPU).
type publishEpoch struct {
	ctx     context.Context
	cancel  context.CancelFunc // released when the deadline passes
	renewAt time.Time
}

// publishTimeout bounds one publish; an epoch's publishes get between
// publishTimeout and publishTimeout + epochLength.
const (
	publishTimeout = 30 * time.Second
	epochLength    = 5 * time.Second
)

// publishCtx returns the current epoch's context.
func (s *mqttSender) publishCtx() context.Context {
	now := time.Now()
	if e := s.epoch.Load(); e != nil && now.Before(e.renewAt) {
		return e.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(publishTimeout+epochLength))
	e := &publishEpoch{ctx: ctx, cancel: cancel, renewAt: now.Add(epochLength)}
	s.epoch.Store(e)
	return e.ctx
}

type mqttConn struct {
	mu  sync.Mutex
	cl  *paho.Client
	id  string
	gen int
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
	s := &mqttSender{work: make(chan item, n*inflight), c: c, ack: ack, qos: byte(qos), addr: u.Host, prefix: clientPrefix}
	for i := range n {
		mc := &mqttConn{id: fmt.Sprintf("%s-%d", clientPrefix, i)}
		if err := s.connect(ctx, mc, -1); err != nil {
			s.closeConns()
			return nil, err
		}
		s.conns = append(s.conns, mc)
	}
	for _, mc := range s.conns {
		for range inflight {
			s.wg.Add(1)
			go s.worker(mc)
		}
	}
	return s, nil
}

// connect (re)connects mc unless another worker already did since gen.
func (s *mqttSender) connect(ctx context.Context, mc *mqttConn, gen int) error {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if gen >= 0 && mc.gen != gen {
		return nil
	}
	if mc.cl != nil {
		_ = mc.cl.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("dialing mqtt broker %s: %w", s.addr, err)
	}
	// Coalesced writes: one system call for the publishes queued while
	// the previous one was written (see internal/coalesce).
	// The session keeps no copy of outgoing publishes: the connection
	// starts clean, and a publish whose connection dropped fails and is
	// sent again by publish (below), like a device's own retry. paho's
	// in-memory store serialized every publish a second time (7% of the
	// harness).
	cl := paho.NewClient(paho.ClientConfig{Conn: coalesce.New(conn), ClientID: mc.id,
		Session: state.New(discardStore{}, memory.New())})
	ca, err := cl.Connect(dctx, &paho.Connect{ClientID: mc.id, CleanStart: true, KeepAlive: 30})
	if err != nil {
		conn.Close()
		return fmt.Errorf("connecting to mqtt broker %s as %s: %w", s.addr, mc.id, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return fmt.Errorf("mqtt broker %s refused %s: reason %d", s.addr, mc.id, ca.ReasonCode)
	}
	mc.cl = cl
	mc.gen++
	return nil
}

func (s *mqttSender) client(mc *mqttConn) (*paho.Client, int) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.cl, mc.gen
}

func (s *mqttSender) worker(mc *mqttConn) {
	defer s.wg.Done()
	for it := range s.work {
		copies := max(it.copies, 1)
		ok := true
		for range copies {
			if !s.publish(mc, &it) {
				ok = false
				break
			}
		}
		if !ok {
			s.c.failed.Add(int64(it.valid))
			continue
		}
		s.c.publishes.Add(int64(copies))
		s.c.sent.Add(int64(it.valid))
		s.c.malformed.Add(int64(it.malformed))
		s.c.dupCopies.Add(int64(copies - 1))
		if s.ack != nil {
			s.ack(&it, time.Now())
		}
	}
}

// publish sends one copy, retrying with reconnects like a device would
// (at-least-once from the device side).
func (s *mqttSender) publish(mc *mqttConn, it *item) bool {
	backoff := 100 * time.Millisecond
	for attempt := 0; attempt < 8; attempt++ {
		cl, gen := s.client(mc)
		_, err := cl.Publish(s.publishCtx(), &paho.Publish{Topic: it.pub.Topic, QoS: s.qos, Payload: it.pub.Payload})
		if err == nil {
			return true
		}
		s.c.errors.Add(1)
		time.Sleep(backoff)
		backoff = min(2*backoff, 3*time.Second)
		_ = s.connect(context.Background(), mc, gen)
	}
	return false
}

func (s *mqttSender) Send(ctx context.Context, it item) error {
	select {
	case s.work <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *mqttSender) Close(ctx context.Context) error {
	close(s.work)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("mqtt publishes still in flight at deadline: %w", ctx.Err())
	}
	s.closeConns()
	return err
}

func (s *mqttSender) closeConns() {
	for _, mc := range s.conns {
		mc.mu.Lock()
		if mc.cl != nil {
			_ = mc.cl.Disconnect(&paho.Disconnect{ReasonCode: 0})
		}
		mc.mu.Unlock()
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

// discardStore is a paho session store that keeps nothing: Put drops the
// packet and List reports none, so nothing is resent on a reconnect.
type discardStore struct{}

func (discardStore) Put(uint16, byte, io.WriterTo) error { return nil }
func (discardStore) Get(id uint16) (io.ReadCloser, error) {
	return nil, fmt.Errorf("bench session store keeps no packets (id %d)", id)
}
func (discardStore) Delete(uint16) error     { return nil }
func (discardStore) Quarantine(uint16) error { return nil }
func (discardStore) List() ([]uint16, error) { return nil, nil }
func (discardStore) Reset() error            { return nil }

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
