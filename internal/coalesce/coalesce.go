// Package coalesce provides a net.Conn whose writes are coalesced: Write
// appends to a buffer and one goroutine writes whatever has accumulated
// with a single system call, so that many small packets written while the
// previous write was on its way leave together. Its reads are buffered.
//
// Why: an MQTT client writes one packet per Write. At tens of thousands of
// QoS 1 messages a second, the MQTT connector's PUBACKs and the bench's
// PUBLISHes each cost a write system call, the largest single item in their
// profiles. Nagle's algorithm does not help (Go disables it, and it would
// delay packets behind an unacknowledged segment); coalescing adds no
// delay: a write that finds the connection idle is written at once, and
// writes that arrive during it go out in the next call.
//
// Reads: paho reads a packet as a 1-byte header, its length one byte at a
// time, then the body, each a Read on the connection: three to five read
// system calls per PUBLISH. A bufio.Reader in front makes it about one per
// socket buffer's worth of packets (paho's reader is the only reader).
//
// The cost is that Write returning no longer means the bytes reached the
// kernel. MQTT does not rely on that: a QoS 1 publisher waits for the
// PUBACK, and a PUBACK lost with a dying connection makes the broker
// deliver the message again (at least once). A write error is returned by
// the next Write and by Close; Close writes what is pending first.
//
// Conn implements sync.Locker: paho writes a packet as several Writes (its
// net.Buffers) and holds the connection's lock around them when it offers
// one, so that packets from concurrent publishers are never interleaved.
package coalesce

import (
	"bufio"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"
)

// MaxPending is the most bytes buffered before Write blocks until the
// pending bytes are written (backpressure instead of unbounded memory).
const MaxPending = 4 << 20

// ReadBuffer is the size of the read buffer.
const ReadBuffer = 32 << 10

// closeFlushTimeout bounds how long Close waits for pending bytes.
const closeFlushTimeout = 5 * time.Second

// Conn is a net.Conn with coalesced writes; reads and deadlines go to the
// wrapped connection.
type Conn struct {
	net.Conn
	r *bufio.Reader // Read; only paho's one reading goroutine uses it

	pkt sync.Mutex // Lock/Unlock: one packet's Writes stay together

	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending shrinks or state changes
	pending []byte
	spare   []byte
	writing bool
	err     error // the first write error; every later Write returns it
	closed  bool
	wake    chan struct{} // a Write queued bytes
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the flusher returned
}

// New wraps c; the returned Conn owns c.
func New(c net.Conn) *Conn {
	w := &Conn{Conn: c, r: bufio.NewReaderSize(c, ReadBuffer), wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.flusher()
	return w
}

// Read implements net.Conn through the read buffer (reads of at least
// ReadBuffer bytes into an empty buffer go straight to the connection).
// It must not be called concurrently.
func (w *Conn) Read(p []byte) (int, error) { return w.r.Read(p) }

// Lock implements sync.Locker; writers of multi-part packets hold it.
func (w *Conn) Lock() { w.pkt.Lock() }

// Unlock implements sync.Locker.
func (w *Conn) Unlock() { w.pkt.Unlock() }

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("coalesce: write on closed connection")

// Write implements net.Conn: it queues p and returns len(p), or the error
// of an earlier write. It blocks while MaxPending bytes are queued.
func (w *Conn) Write(p []byte) (int, error) {
	w.mu.Lock()
	for w.err == nil && !w.closed && len(w.pending) > 0 && len(w.pending)+len(p) > MaxPending {
		w.cond.Wait()
	}
	switch {
	case w.err != nil:
		err := w.err
		w.mu.Unlock()
		return 0, err
	case w.closed:
		w.mu.Unlock()
		return 0, ErrClosed
	}
	w.pending = append(w.pending, p...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// flusher writes the pending bytes whenever woken, until quit.
func (w *Conn) flusher() {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
			// Let the writers that are runnable now queue their packets
			// first: a few microseconds, and one system call for them all.
			runtime.Gosched()
			w.drain()
		case <-w.quit:
			return
		}
	}
}

// drain writes pending bytes until none are left or a write failed.
func (w *Conn) drain() {
	for {
		w.mu.Lock()
		if len(w.pending) == 0 || w.err != nil {
			w.cond.Broadcast()
			w.mu.Unlock()
			return
		}
		b := w.pending
		w.pending = w.spare[:0]
		w.writing = true
		w.mu.Unlock()
		_, err := w.Conn.Write(b)
		w.mu.Lock()
		w.writing = false
		w.spare = b[:0]
		if err != nil && w.err == nil {
			w.err = err
		}
		w.cond.Broadcast()
		w.mu.Unlock()
	}
}

// Flush waits until every byte queued before it was written, and returns
// the write error if one occurred.
func (w *Conn) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && (len(w.pending) > 0 || w.writing) {
		w.cond.Wait()
	}
	return w.err
}

// Close writes what is pending (waiting at most a few seconds), stops the
// flusher and closes the wrapped connection.
func (w *Conn) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	_ = w.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	select {
	case w.wake <- struct{}{}:
	default:
	}
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush() }()
	var ferr error
	select {
	case ferr = <-flushed:
	case <-time.After(closeFlushTimeout + time.Second):
		ferr = errors.New("coalesce: pending writes not flushed before close")
	}
	err := w.Conn.Close()
	close(w.quit)
	<-w.done
	if ferr != nil {
		return ferr
	}
	return err
}
