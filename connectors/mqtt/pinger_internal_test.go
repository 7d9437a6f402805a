package mqtt

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pingerRig drives a livenessPinger with a fake clock and ticks; the
// broker's end of the pipe counts PINGREQs.
type pingerRig struct {
	p     *livenessPinger
	mu    sync.Mutex
	clock time.Time
	tick  chan time.Time
	pings atomic.Int64
	done  chan error
}

func newPingerRig(t *testing.T, ka time.Duration) *pingerRig {
	t.Helper()
	r := &pingerRig{clock: time.Unix(1_700_000_000, 0), tick: make(chan time.Time), done: make(chan error, 1)}
	r.p = newLivenessPinger()
	r.p.now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.clock }
	client, broker := net.Pipe()
	t.Cleanup(func() { client.Close(); broker.Close() })
	go func() {
		b := make([]byte, 2)
		for {
			if _, err := broker.Read(b[:1]); err != nil {
				return
			}
			if _, err := broker.Read(b[1:]); err != nil {
				return
			}
			if b[0] == 0xC0 && b[1] == 0 { // PINGREQ
				r.pings.Add(1)
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { r.done <- r.p.loop(ctx, client, ka, r.tick) }()
	return r
}

// step advances the clock by d and ticks once; it reports the pinger's
// error if it returned.
func (r *pingerRig) step(t *testing.T, d time.Duration) error {
	t.Helper()
	r.mu.Lock()
	r.clock = r.clock.Add(d)
	now := r.clock
	r.mu.Unlock()
	select {
	case r.tick <- now:
	case err := <-r.done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("pinger neither took a tick nor returned")
	}
	// Let a PINGREQ write (its own goroutine) land before the next step.
	time.Sleep(2 * time.Millisecond)
	return nil
}

func TestLivenessPinger(t *testing.T) {
	const ka = 30 * time.Second
	const tick = ka / 8
	for _, tc := range []struct {
		name string
		// each tick: does the broker send something (a PUBLISH, or the
		// PINGRESP), does the client send something (a PUBACK)?
		recv, sent func(i int) bool
		ticks      int
		wantDead   bool
		wantPings  [2]int64 // at least, at most
	}{
		{"busy link, PINGRESP never comes: alive", func(int) bool { return true }, func(int) bool { return false }, 80, false, [2]int64{1, 80}},
		{"busy both ways: alive", func(int) bool { return true }, func(int) bool { return true }, 80, false, [2]int64{0, 0}},
		{"silent broker: dead after 1.5 keep-alives", func(int) bool { return false }, func(int) bool { return true }, 80, true, [2]int64{1, 1}},
		{"idle but answering pings: alive", func(i int) bool { return i%4 == 3 }, func(int) bool { return false }, 80, false, [2]int64{1, 80}},
		{"broker goes quiet after a while: dead", func(i int) bool { return i < 20 }, func(int) bool { return true }, 80, true, [2]int64{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newPingerRig(t, ka)
			var err error
			died := -1
			for i := 0; i < tc.ticks; i++ {
				if tc.recv(i) {
					r.p.PacketReceived()
				}
				if tc.sent(i) {
					r.p.PacketSent()
				}
				if err = r.step(t, tick); err != nil {
					died = i
					break
				}
			}
			if tc.wantDead != (err != nil) {
				t.Fatalf("dead %v (err %v at tick %d), want dead %v", err != nil, err, died, tc.wantDead)
			}
			if err != nil {
				var na errNoAnswer
				if !errors.As(err, &na) || na.silent < ka+ka/2 || na.silent > ka+ka/2+2*tick {
					t.Fatalf("error %v, want errNoAnswer after ~%s of silence", err, ka+ka/2)
				}
			}
			if n := r.pings.Load(); n < tc.wantPings[0] || n > tc.wantPings[1] {
				t.Fatalf("%d PINGREQs, want %d..%d", n, tc.wantPings[0], tc.wantPings[1])
			}
		})
	}
}

// TestSessionsUseLivenessPinger: every session gets its own pinger (paho's
// default one dropped busy sessions).
func TestSessionsUseLivenessPinger(t *testing.T) {
	c, err := New(DefaultConfig(), Shared{Tenant: "t0"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("mqtt://127.0.0.1:1883")
	a, b := c.clientConfig(0, u, nil), c.clientConfig(1, u, nil)
	pa, ok := a.ClientConfig.PingHandler.(*livenessPinger)
	if !ok {
		t.Fatalf("session 0 pings with %T, want *livenessPinger", a.ClientConfig.PingHandler)
	}
	if pb, _ := b.ClientConfig.PingHandler.(*livenessPinger); pb == nil || pb == pa {
		t.Fatal("sessions must not share a pinger")
	}
}
