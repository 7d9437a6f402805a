package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// The bench's MQTT publisher speaks the few packets a publishing device
// needs itself (CONNECT/CONNACK through paho's packets package; PUBLISH
// and PUBACK by hand, as MQTT v5 section 3.3 and 3.4 lay them out) instead
// of running paho's client. It is the load generator, not part of the
// pipeline, and it shares the two cores with everything it measures: with
// paho's client, one goroutine per in-flight publish, its session state
// and its per-packet buffers made the harness the largest CPU user on the
// box (52-57 of ~242 busy CPU-seconds in a hospital run, publishing at
// ~17k msgs/s). Here each connection has one writer, which encodes
// publishes into a buffered writer and flushes once per burst, and one
// reader, which matches PUBACKs to a fixed table of packet ids (the
// connection's in-flight bound). Measured back to back at --rate 17500
// (2026-12-02 17:12-17:18): harness 41.8 CPU-seconds for 1.82M publishes
// against 52.8 for 1.74M with paho's client (23 against 30 us each). The
// connector under test keeps paho.

// maxAttempts bounds the sends of one copy of a publish; a device retries
// like this across reconnects, then gives the reading up (counted failed).
const maxAttempts = 8

// pubSlot is one packet id's publish in flight.
type pubSlot struct {
	it       *item
	left     int // copies still to be acknowledged, this one included
	attempts int // sends of the current copy
}

// pubConn is one connection of the publisher and its in-flight table.
type pubConn struct {
	s  *mqttSender
	id string

	mu    sync.Mutex
	slots []pubSlot // packet id p is slots[p-1]; guarded by mu
	busy  int       // slots holding an item; guarded by mu

	free  chan uint16   // packet ids not in use (only the writer takes)
	retry chan uint16   // packet ids whose current copy must be (re)sent
	wake  chan struct{} // an ack released a slot (writer re-checks)

	conn net.Conn
	w    *bufio.Writer
	dead chan struct{} // closed by the reader when the connection fails
	rerr error         // the reader's error, set before dead closes
	done chan struct{} // closed when the reader returned
}

func newPubConn(s *mqttSender, id string, inflight int) *pubConn {
	c := &pubConn{s: s, id: id, slots: make([]pubSlot, inflight),
		free: make(chan uint16, inflight), retry: make(chan uint16, inflight), wake: make(chan struct{}, 1)}
	for p := 1; p <= inflight; p++ {
		c.free <- uint16(p)
	}
	return c
}

// dial connects with clean start and no keep alive (a device that is
// always sending; the broker then never times the connection out while
// the harness settles).
func (c *pubConn) dial(ctx context.Context) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", c.s.addr)
	if err != nil {
		return fmt.Errorf("dialing mqtt broker %s: %w", c.s.addr, err)
	}
	if dl, ok := dctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cp := packets.NewControlPacket(packets.CONNECT)
	cc := cp.Content.(*packets.Connect)
	cc.ClientID, cc.CleanStart, cc.KeepAlive = c.id, true, 0
	cc.ProtocolName, cc.ProtocolVersion = "MQTT", 5
	if _, err := cp.WriteTo(conn); err != nil {
		conn.Close()
		return fmt.Errorf("connecting to mqtt broker %s as %s: %w", c.s.addr, c.id, err)
	}
	ack, err := packets.ReadPacket(conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("connecting to mqtt broker %s as %s: reading CONNACK: %w", c.s.addr, c.id, err)
	}
	ca, ok := ack.Content.(*packets.Connack)
	if !ok {
		conn.Close()
		return fmt.Errorf("mqtt broker %s answered CONNECT of %s with %s", c.s.addr, c.id, ack.PacketType())
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return fmt.Errorf("mqtt broker %s refused %s: reason %d", c.s.addr, c.id, ca.ReasonCode)
	}
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil && int(*ca.Properties.ReceiveMaximum) < len(c.slots) {
		conn.Close()
		return fmt.Errorf("mqtt broker %s receives at most %d unacknowledged publishes per connection; transport.inflight is %d",
			c.s.addr, *ca.Properties.ReceiveMaximum, len(c.slots))
	}
	_ = conn.SetDeadline(time.Time{})
	c.conn, c.w = conn, bufio.NewWriterSize(conn, 64<<10)
	c.dead, c.done, c.rerr = make(chan struct{}), make(chan struct{}), nil
	go c.read(bufio.NewReaderSize(conn, 32<<10))
	return nil
}

// run is the connection's writer: it takes items while packet ids are
// free, sends them, resends what must be resent, reconnects when the
// connection fails, and returns once the work channel is closed and every
// publish it took was acknowledged or given up. What it wrote is flushed
// when nothing more is ready at once: one write per burst.
func (c *pubConn) run() {
	defer c.s.wg.Done()
	defer func() {
		if c.conn != nil {
			c.close()
		}
	}()
	open := true
	for {
		if c.conn == nil && !c.reconnect(open) {
			return
		}
		if !open && c.inUse() == 0 {
			return
		}
		var work <-chan item
		if open && len(c.free) > 0 {
			work = c.s.work
		}
		ev := c.next(work, false)
		if ev.kind == evNone {
			if c.w.Buffered() > 0 {
				if err := c.w.Flush(); err != nil {
					c.s.c.errors.Add(1)
					c.disconnect()
					continue
				}
			}
			ev = c.next(work, true)
		}
		var err error
		switch ev.kind {
		case evRetry:
			err = c.send(ev.p)
		case evItem:
			p := <-c.free
			c.mu.Lock()
			c.slots[p-1] = pubSlot{it: &ev.it, left: max(ev.it.copies, 1)}
			c.busy++
			c.mu.Unlock()
			err = c.send(p)
		case evClosed:
			open = false
		case evDead:
			err = c.rerr
		}
		if err != nil {
			c.s.c.errors.Add(1)
			c.disconnect()
		}
	}
}

type evKind int

const (
	evNone   evKind = iota
	evRetry         // ev.p must be sent again
	evItem          // ev.it is new work
	evClosed        // the work channel is closed
	evWake          // an ack freed a slot
	evDead          // the reader failed
)

type pubEvent struct {
	kind evKind
	p    uint16
	it   item
}

// next is the writer's next event; without block, evNone when none is
// ready. Resends go first.
func (c *pubConn) next(work <-chan item, block bool) pubEvent {
	select {
	case p := <-c.retry:
		return pubEvent{kind: evRetry, p: p}
	default:
	}
	if !block {
		select {
		case it, ok := <-work:
			return itemEvent(it, ok)
		case <-c.dead:
			return pubEvent{kind: evDead}
		default:
			return pubEvent{}
		}
	}
	select {
	case p := <-c.retry:
		return pubEvent{kind: evRetry, p: p}
	case it, ok := <-work:
		return itemEvent(it, ok)
	case <-c.wake:
		return pubEvent{kind: evWake}
	case <-c.dead:
		return pubEvent{kind: evDead}
	}
}

func itemEvent(it item, ok bool) pubEvent {
	if !ok {
		return pubEvent{kind: evClosed}
	}
	return pubEvent{kind: evItem, it: it}
}

// send writes slot p's current copy into the buffer (QoS 0: the write is
// its acknowledgement).
func (c *pubConn) send(p uint16) error {
	c.mu.Lock()
	sl := &c.slots[p-1]
	if sl.it == nil { // released meanwhile (a late duplicate PUBACK)
		c.mu.Unlock()
		return nil
	}
	sl.attempts++
	pub := sl.it.pub
	c.mu.Unlock()
	if err := writePublish(c.w, pub.Topic, pub.Payload, c.s.qos, p); err != nil {
		return err
	}
	if c.s.qos == 0 {
		c.acked(p)
	}
	return nil
}

// writePublish encodes one MQTT v5 PUBLISH (no properties, not retained).
func writePublish(w *bufio.Writer, topic string, payload []byte, qos byte, id uint16) error {
	n := 2 + len(topic) + 1 + len(payload) // topic, property length (0), payload
	if qos > 0 {
		n += 2
	}
	if len(topic) > 0xFFFF || n > 268435455 {
		return fmt.Errorf("publish to %.64q too large (%d bytes)", topic, n)
	}
	_ = w.WriteByte(packets.PUBLISH<<4 | qos<<1)
	for {
		b := byte(n & 0x7F)
		if n >>= 7; n > 0 {
			b |= 0x80
		}
		_ = w.WriteByte(b)
		if n == 0 {
			break
		}
	}
	_ = w.WriteByte(byte(len(topic) >> 8))
	_ = w.WriteByte(byte(len(topic)))
	_, _ = w.WriteString(topic)
	if qos > 0 {
		_ = w.WriteByte(byte(id >> 8))
		_ = w.WriteByte(byte(id))
	}
	_ = w.WriteByte(0)
	_, err := w.Write(payload)
	return err
}

// read is the connection's reader: PUBACKs release or resend their slots;
// a DISCONNECT or a read error ends the connection.
func (c *pubConn) read(r *bufio.Reader) {
	defer close(c.done)
	fail := func(err error) {
		c.rerr = err
		close(c.dead)
	}
	var body []byte
	for {
		t, err := r.ReadByte()
		if err != nil {
			fail(fmt.Errorf("reading from mqtt broker %s as %s: %w", c.s.addr, c.id, err))
			return
		}
		n, mul := 0, 1
		for i := 0; ; i++ {
			b, err := r.ReadByte()
			if err != nil || i == 4 {
				fail(fmt.Errorf("reading from mqtt broker %s as %s: bad remaining length (%v)", c.s.addr, c.id, err))
				return
			}
			n += int(b&0x7F) * mul
			mul <<= 7
			if b&0x80 == 0 {
				break
			}
		}
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			fail(fmt.Errorf("reading from mqtt broker %s as %s: %w", c.s.addr, c.id, err))
			return
		}
		switch t >> 4 {
		case packets.PUBACK:
			if n < 2 {
				fail(fmt.Errorf("mqtt broker %s sent %s a PUBACK of %d bytes", c.s.addr, c.id, n))
				return
			}
			p := uint16(body[0])<<8 | uint16(body[1])
			reason := byte(0)
			if n > 2 {
				reason = body[2]
			}
			if p == 0 || int(p) > len(c.slots) {
				c.s.c.errors.Add(1)
				continue
			}
			if reason >= 0x80 {
				// Refused: send this copy again, as a device retries,
				// until it is out of attempts.
				c.s.c.errors.Add(1)
				c.mu.Lock()
				sl := &c.slots[p-1]
				ok, out := sl.it != nil, sl.attempts >= maxAttempts
				c.mu.Unlock()
				switch {
				case ok && out:
					c.fail(p)
				case ok:
					c.retry <- p
				}
				continue
			}
			c.acked(p)
		case packets.DISCONNECT:
			reason := byte(0)
			if n > 0 {
				reason = body[0]
			}
			fail(fmt.Errorf("mqtt broker %s disconnected %s: reason %d", c.s.addr, c.id, reason))
			return
		}
	}
}

// acked completes slot p's current copy: the next copy is sent, or the
// item is counted and its packet id freed.
func (c *pubConn) acked(p uint16) {
	c.mu.Lock()
	sl := &c.slots[p-1]
	if sl.it == nil {
		c.mu.Unlock()
		return
	}
	if sl.left--; sl.left > 0 {
		sl.attempts = 0
		c.mu.Unlock()
		c.retry <- p
		return
	}
	it := sl.it
	*sl = pubSlot{}
	c.busy--
	c.mu.Unlock()
	copies := max(it.copies, 1)
	s := c.s
	s.c.publishes.Add(int64(copies))
	s.c.sent.Add(int64(it.valid))
	s.c.malformed.Add(int64(it.malformed))
	s.c.dupCopies.Add(int64(copies - 1))
	if s.ack != nil {
		s.ack(it, time.Now())
	}
	c.free <- p
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *pubConn) inUse() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy
}

// close ends the connection as a device does (DISCONNECT, normal).
func (c *pubConn) close() {
	_ = c.w.WriteByte(packets.DISCONNECT << 4)
	_ = c.w.WriteByte(0)
	_ = c.w.Flush()
	c.disconnect()
}

// disconnect closes the connection, waits for its reader and queues every
// publish in flight to be sent again on the next connection.
func (c *pubConn) disconnect() {
	c.conn.Close()
	<-c.done
	c.conn, c.w = nil, nil
	for len(c.retry) > 0 {
		<-c.retry
	}
	c.mu.Lock()
	var again []uint16
	for i := range c.slots {
		if c.slots[i].it != nil {
			again = append(again, uint16(i+1))
		}
	}
	c.mu.Unlock()
	for _, p := range again {
		c.retry <- p
	}
}

// reconnect dials again after a device's backoff; each failed dial counts
// as an attempt of every publish waiting, and a publish out of attempts is
// given up. It returns false when the work is closed and nothing is left.
func (c *pubConn) reconnect(open bool) bool {
	backoff := 100 * time.Millisecond
	for {
		c.giveUp()
		if !open && c.inUse() == 0 {
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 3*time.Second)
		err := c.dial(context.Background())
		if err == nil {
			return true
		}
		c.s.c.errors.Add(1)
		c.mu.Lock()
		for i := range c.slots {
			if c.slots[i].it != nil {
				c.slots[i].attempts++
			}
		}
		c.mu.Unlock()
	}
}

// giveUp fails the publishes waiting to be resent that used all their
// attempts.
func (c *pubConn) giveUp() {
	n := len(c.retry)
	for range n {
		p := <-c.retry
		c.mu.Lock()
		sl := &c.slots[p-1]
		out := sl.it != nil && sl.attempts >= maxAttempts
		c.mu.Unlock()
		if out {
			c.fail(p)
			continue
		}
		c.retry <- p
	}
}

// fail gives slot p's item up: its readings count as failed.
func (c *pubConn) fail(p uint16) {
	c.mu.Lock()
	sl := &c.slots[p-1]
	it := sl.it
	if it == nil {
		c.mu.Unlock()
		return
	}
	*sl = pubSlot{}
	c.busy--
	c.mu.Unlock()
	c.s.c.failed.Add(int64(it.valid))
	c.free <- p
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
