package mqtt

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/log"
)

// livenessPinger is each session's keep-alive (a paho.Pinger). paho's
// DefaultPinger ends a connection whose PINGRESP has not come back one
// keep-alive after its PINGREQ, even while PUBLISHes keep arriving on it.
// Mosquitto reads one packet per ready socket per turn of its loop, so when
// many device connections are busy it falls behind on reading a session's
// PUBACKs, and the PINGREQ queued behind them is answered late: in hospital
// bench runs the four sessions were dropped together 60 s into the run
// while data flowed (PINGRESP timed out), and each reconnect made the broker
// deliver again everything whose PUBACK it had not read yet (up to 1.9M
// duplicate records in Kafka, which ClickHouse then collapsed).
//
// Here any packet from the broker proves the connection alive: a PINGREQ
// goes out when nothing was sent or nothing was received for half the
// keep-alive (the broker must hear from us within 1.5 keep-alives, and a
// silent link needs a question to be found dead), and the connection is
// given up only when nothing at all came back for 1.5 keep-alives after a
// PINGREQ: a half-open TCP connection is still found, a busy broker is not
// taken for a dead one.
type livenessPinger struct {
	now func() time.Time

	mu       sync.Mutex
	lastSent time.Time
	lastRecv time.Time
	debug    log.Logger
}

func newLivenessPinger() *livenessPinger {
	return &livenessPinger{now: time.Now, debug: log.NOOPLogger{}}
}

// errNoAnswer is what Run returns when the broker went silent.
type errNoAnswer struct{ silent time.Duration }

func (e errNoAnswer) Error() string {
	return fmt.Sprintf("no packet from the mqtt broker for %s, including the answer to a PINGREQ", e.silent.Round(time.Millisecond))
}

// Run pings as described on the type until ctx ends or the broker is
// found silent. It checks every keepAlive/8.
func (p *livenessPinger) Run(ctx context.Context, conn net.Conn, keepAlive uint16) error {
	if keepAlive == 0 {
		return nil
	}
	ka := time.Duration(keepAlive) * time.Second
	t := time.NewTicker(ka / 8)
	defer t.Stop()
	return p.loop(ctx, conn, ka, t.C)
}

// loop is Run with its ticks given (tests drive them).
func (p *livenessPinger) loop(ctx context.Context, conn net.Conn, ka time.Duration, tick <-chan time.Time) error {
	start := p.now()
	p.mu.Lock()
	// The connection was just made: CONNECT sent, CONNACK received.
	p.lastSent, p.lastRecv = start, start
	p.mu.Unlock()
	errCh := make(chan error, 1)
	var pingAt time.Time // the PINGREQ not yet followed by any packet
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errCh:
			return err
		case <-tick:
		}
		now := p.now()
		p.mu.Lock()
		sent, recv := p.lastSent, p.lastRecv
		p.mu.Unlock()
		if !pingAt.IsZero() && recv.Before(pingAt) {
			if now.Sub(recv) >= ka+ka/2 && now.Sub(pingAt) >= ka/2 {
				return errNoAnswer{silent: now.Sub(recv)}
			}
			continue // asked already; wait for anything to come back
		}
		pingAt = time.Time{}
		if now.Sub(sent) < ka/2 && now.Sub(recv) < ka/2 {
			continue
		}
		pingAt = now
		p.PacketSent()
		go func() {
			// A write may block behind a slow link; closing the
			// connection ends it.
			if _, err := packets.NewControlPacket(packets.PINGREQ).WriteTo(conn); err != nil {
				select {
				case errCh <- fmt.Errorf("sending PINGREQ: %w", err):
				default:
				}
			}
		}()
	}
}

func (p *livenessPinger) PacketSent() {
	p.mu.Lock()
	p.lastSent = p.now()
	p.mu.Unlock()
}

func (p *livenessPinger) PacketReceived() {
	p.mu.Lock()
	p.lastRecv = p.now()
	p.mu.Unlock()
}

// PingResp: paho calls PacketReceived for the PINGRESP too.
func (p *livenessPinger) PingResp() {}

func (p *livenessPinger) SetDebug(l log.Logger) { p.debug = l }
