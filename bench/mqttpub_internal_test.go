package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// fakeBroker is a unit-test stand-in for an MQTT v5 broker: it accepts
// connections, answers CONNECT, records every PUBLISH and answers each
// QoS1 one with the PUBACK reason its policy returns (or drops the
// connection when the policy says so). Integration tests use Mosquitto.
type fakeBroker struct {
	ln net.Listener
	// policy: for the n-th publish received (from 1, all connections),
	// the PUBACK reason, or -1 to close the connection without answering.
	policy func(n int) int
	mu     sync.Mutex
	// receiveMax, if not 0, is announced in CONNACK.
	receiveMax uint16
	got        []string // payloads of every publish received, in order
	connects   int
	conns      []net.Conn
}

func newFakeBroker(t *testing.T, policy func(n int) int) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{ln: ln, policy: policy}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go b.accept()
	return b
}

func (b *fakeBroker) url() string { return "tcp://" + b.ln.Addr().String() }

func (b *fakeBroker) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.mu.Unlock()
		go b.serve(c)
	}
}

func (b *fakeBroker) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	cp, err := packets.ReadPacket(r)
	if err != nil || cp.Type != packets.CONNECT {
		return
	}
	ack := packets.NewControlPacket(packets.CONNACK)
	b.mu.Lock()
	b.connects++
	rm := b.receiveMax
	b.mu.Unlock()
	if rm != 0 {
		ack.Content.(*packets.Connack).Properties = &packets.Properties{ReceiveMaximum: &rm}
	}
	if _, err := ack.WriteTo(c); err != nil {
		return
	}
	for {
		cp, err := packets.ReadPacket(r)
		if err != nil || cp.Type == packets.DISCONNECT {
			return
		}
		pub, ok := cp.Content.(*packets.Publish)
		if !ok {
			continue
		}
		b.mu.Lock()
		b.got = append(b.got, string(pub.Payload))
		n := len(b.got)
		b.mu.Unlock()
		reason := b.policy(n)
		if reason < 0 {
			return
		}
		if pub.QoS == 0 {
			continue
		}
		pa := packets.NewControlPacket(packets.PUBACK)
		pa.Content.(*packets.Puback).PacketID = pub.PacketID
		pa.Content.(*packets.Puback).ReasonCode = byte(reason)
		if _, err := pa.WriteTo(c); err != nil {
			return
		}
	}
}

func (b *fakeBroker) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

func TestWritePublishDecodesAsPaho(t *testing.T) {
	for _, tc := range []struct {
		name    string
		topic   string
		payload []byte
		qos     byte
		id      uint16
	}{
		{"qos1", "medical/devices/d-1/vitals", []byte(`{"heartRate":72}`), 1, 7},
		{"qos0", "a", []byte("x"), 0, 0},
		{"empty payload", "t/1", nil, 1, 65535},
		{"two-byte length", "t", bytes.Repeat([]byte("p"), 300), 1, 1},
		{"three-byte length", "t", bytes.Repeat([]byte("q"), 70000), 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := writePublish(w, tc.topic, tc.payload, tc.qos, tc.id); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			cp, err := packets.ReadPacket(&buf)
			if err != nil {
				t.Fatalf("paho cannot read what writePublish wrote: %v", err)
			}
			p, ok := cp.Content.(*packets.Publish)
			if !ok {
				t.Fatalf("decoded %s, want PUBLISH", cp.PacketType())
			}
			if p.Topic != tc.topic || !bytes.Equal(p.Payload, tc.payload) && len(tc.payload) > 0 || p.QoS != tc.qos || p.PacketID != tc.id || p.Retain || p.Duplicate {
				t.Fatalf("decoded topic %q qos %d id %d retain %v dup %v payload %d bytes; want %q %d %d, %d bytes",
					p.Topic, p.QoS, p.PacketID, p.Retain, p.Duplicate, len(p.Payload), tc.topic, tc.qos, tc.id, len(tc.payload))
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes left after the packet", buf.Len())
			}
		})
	}
}

// sendAll publishes items (payload "i-<n>", copies as given) through a
// sender to b and closes it; it returns the counters and acked payloads.
func sendAll(t *testing.T, b *fakeBroker, conns, inflight int, qos int, items []item) (*counters, map[string]int) {
	t.Helper()
	var c counters
	var mu sync.Mutex
	acked := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := newMQTTSender(ctx, b.url(), "t", conns, inflight, qos, &c, func(it *item, _ time.Time) {
		mu.Lock()
		acked[string(it.pub.Payload)]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := s.Send(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return &c, acked
}

func testItems(n int, copies func(i int) int) []item {
	out := make([]item, n)
	for i := range out {
		out[i] = item{pub: Publish{Topic: "medical/devices/d/vitals", Payload: []byte(fmt.Sprintf("i-%d", i))}, valid: 1, copies: copies(i)}
	}
	return out
}

func TestMQTTSenderDelivers(t *testing.T) {
	for _, tc := range []struct {
		name           string
		conns, inflght int
		qos            int
		policy         func(n int) int
		wantErrors     bool
	}{
		{"qos1 all accepted", 3, 4, 1, func(int) int { return 0 }, false},
		{"qos0", 2, 4, 0, func(int) int { return 0 }, false},
		{"one in flight", 1, 1, 1, func(int) int { return 0 }, false},
		{"every 7th refused then resent", 2, 8, 1, func(n int) int {
			if n%7 == 0 {
				return packets.PubackUnspecifiedError
			}
			return 0
		}, true},
		{"connection dropped every 50 publishes", 2, 8, 1, func(n int) int {
			if n%50 == 0 {
				return -1
			}
			return 0
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBroker(t, tc.policy)
			items := testItems(500, func(i int) int {
				if i%10 == 0 {
					return 3 // a duplicate sender: the same bytes three times
				}
				return 1
			})
			c, acked := sendAll(t, b, tc.conns, tc.inflght, tc.qos, items)
			if got := c.sent.Load(); got != 500 {
				t.Errorf("sent %d, want 500 (failed %d, errors %d)", got, c.failed.Load(), c.errors.Load())
			}
			if got := c.publishes.Load(); got != 600 {
				t.Errorf("publishes %d, want 600 (50 items sent 3 times)", got)
			}
			if got := c.dupCopies.Load(); got != 100 {
				t.Errorf("duplicate copies %d, want 100", got)
			}
			for i := range 500 {
				if n := acked[fmt.Sprintf("i-%d", i)]; n != 1 {
					t.Fatalf("item %d acknowledged %d times, want once", i, n)
				}
			}
			// The broker saw every copy at least once (resends may add
			// more); QoS 0 has no acknowledgement, so its last publishes
			// may still be on their way when Close returns.
			missing := func() string {
				seen := map[string]int{}
				for _, p := range b.received() {
					seen[p]++
				}
				for i, it := range items {
					if seen[string(it.pub.Payload)] < max(it.copies, 1) {
						return fmt.Sprintf("item %d reached the broker %d times, want >= %d", i, seen[string(it.pub.Payload)], it.copies)
					}
				}
				return ""
			}
			for deadline := time.Now().Add(5 * time.Second); missing() != "" && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if m := missing(); m != "" {
				t.Fatal(m)
			}
			if (c.errors.Load() > 0) != tc.wantErrors {
				t.Errorf("errors %d, want some: %v", c.errors.Load(), tc.wantErrors)
			}
		})
	}
}

func TestMQTTSenderGivesUpAfterAttempts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason int
	}{
		{"every publish refused", packets.PubackUnspecifiedError},
		{"every publish drops the connection", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBroker(t, func(int) int { return tc.reason })
			c, acked := sendAll(t, b, 1, 2, 1, testItems(3, func(int) int { return 1 }))
			if c.sent.Load() != 0 || len(acked) != 0 {
				t.Fatalf("sent %d, acked %v; want nothing acknowledged", c.sent.Load(), acked)
			}
			if c.failed.Load() != 3 {
				t.Fatalf("failed %d, want 3", c.failed.Load())
			}
			got := b.received()
			if tc.reason > 0 && len(got) != 3*maxAttempts {
				t.Fatalf("broker received %d publishes, want %d (every attempt answered)", len(got), 3*maxAttempts)
			}
			if len(got) < 3 {
				t.Fatalf("broker received %d publishes, want each item at least once", len(got))
			}
		})
	}
}

func TestMQTTSenderRefusesSmallReceiveMaximum(t *testing.T) {
	b := newFakeBroker(t, func(int) int { return 0 })
	b.mu.Lock()
	b.receiveMax = 4
	b.mu.Unlock()
	var c counters
	_, err := newMQTTSender(context.Background(), b.url(), "t", 1, 8, 1, &c, nil)
	if err == nil {
		t.Fatal("want an error: 8 in flight against a receive maximum of 4")
	}
}
