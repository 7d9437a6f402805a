package coalesce_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/coalesce"
)

// pair returns a coalescing client conn and the server side of a loopback
// TCP connection.
func pair(t testing.TB) (*coalesce.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close() })
	return coalesce.New(c), s
}

// TestConcurrentWritesArriveWhole: messages written by many goroutines
// arrive complete (each Write's bytes contiguous), each writer's in order,
// none lost, and Close flushes the tail.
func TestConcurrentWritesArriveWhole(t *testing.T) {
	for _, tc := range []struct {
		name             string
		writers, perW    int
		size             int
		closeImmediately bool
		parts            bool // header and body as two Writes under Lock, as paho does
	}{
		{"small", 8, 5000, 20, false, false},
		{"small, in two parts under Lock", 8, 5000, 20, false, true},
		{"large, over MaxPending", 4, 20, coalesce.MaxPending / 3, false, false},
		{"large, in two parts under Lock", 4, 20, coalesce.MaxPending / 3, false, true},
		{"close right after writing", 4, 2000, 50, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t)
			got := make(chan error, 1)
			go func() {
				// On a bad message stop reading and drop the connection, so
				// that blocked writers fail instead of hanging the test.
				var err error
				defer func() {
					if err != nil {
						s.Close()
					}
					got <- err
				}()
				r := bufio.NewReader(s)
				next := make([]int, tc.writers)
				for n := 0; n < tc.writers*tc.perW; n++ {
					var h [12]byte
					if _, rerr := io.ReadFull(r, h[:]); rerr != nil {
						err = fmt.Errorf("message %d header: %w", n, rerr)
						return
					}
					w, seq, size := int(binary.BigEndian.Uint32(h[0:])), int(binary.BigEndian.Uint32(h[4:])), int(binary.BigEndian.Uint32(h[8:]))
					if w >= tc.writers || seq != next[w] || size != tc.size {
						err = fmt.Errorf("message %d: writer %d seq %d size %d, want a message of %d bytes", n, w, seq, size, tc.size)
						return
					}
					body := make([]byte, size)
					if _, rerr := io.ReadFull(r, body); rerr != nil {
						err = fmt.Errorf("message %d body: %w", n, rerr)
						return
					}
					for _, b := range body {
						if b != byte(w) {
							err = fmt.Errorf("message %d of writer %d: body corrupted", seq, w)
							return
						}
					}
					next[w]++
				}
			}()
			var wg sync.WaitGroup
			for w := 0; w < tc.writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					msg := make([]byte, 12+tc.size)
					for i := 12; i < len(msg); i++ {
						msg[i] = byte(w)
					}
					for seq := 0; seq < tc.perW; seq++ {
						binary.BigEndian.PutUint32(msg[0:], uint32(w))
						binary.BigEndian.PutUint32(msg[4:], uint32(seq))
						binary.BigEndian.PutUint32(msg[8:], uint32(tc.size))
						if tc.parts {
							c.Lock()
							_, err1 := c.Write(msg[:12])
							_, err2 := c.Write(msg[12:])
							c.Unlock()
							if err := errors.Join(err1, err2); err != nil {
								t.Errorf("write: %v", err)
								return
							}
							continue
						}
						if n, err := c.Write(msg); err != nil || n != len(msg) {
							t.Errorf("write: %d, %v", n, err)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			if !tc.closeImmediately {
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("reader did not get every message")
			}
		})
	}
}

// TestBufferedReads: bytes written by the peer in many small writes arrive
// complete and in order through Read, whether read a byte at a time (as
// paho reads a packet's length) or in large chunks.
func TestBufferedReads(t *testing.T) {
	for _, chunk := range []int{1, 7, 4096, 3 * coalesce.ReadBuffer} {
		t.Run(fmt.Sprint("chunk=", chunk), func(t *testing.T) {
			c, s := pair(t)
			defer c.Close()
			const total = 5 * coalesce.ReadBuffer
			go func() {
				for i := 0; i < total; i += 13 {
					b := make([]byte, min(13, total-i))
					for j := range b {
						b[j] = byte((i + j) % 251)
					}
					if _, err := s.Write(b); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, chunk)
			for got := 0; got < total; {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("after %d bytes: %v", got, err)
				}
				for j := 0; j < n; j++ {
					if buf[j] != byte((got+j)%251) {
						t.Fatalf("byte %d = %d, want %d", got+j, buf[j], (got+j)%251)
					}
				}
				got += n
			}
		})
	}
}

func TestWriteAfterClose(t *testing.T) {
	c, _ := pair(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, coalesce.ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestWriteErrorSurfaces: once the peer is gone, a later Write (or Flush)
// returns the write error instead of queueing forever.
func TestWriteErrorSurfaces(t *testing.T) {
	c, s := pair(t)
	s.(*net.TCPConn).SetLinger(0)
	s.Close()
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Write(buf); err != nil {
			_ = c.Close()
			return
		}
		if err := c.Flush(); err != nil {
			_ = c.Close()
			return
		}
	}
	t.Fatal("writes to a closed peer never failed")
}

// BenchmarkSmallWrites: 50-byte packets (a PUBACK is 4, a PUBLISH of one
// reading about 250) from 4 goroutines, with and without coalescing.
func BenchmarkSmallWrites(b *testing.B) {
	for _, co := range []bool{false, true} {
		b.Run(fmt.Sprintf("coalesce=%v", co), func(b *testing.B) {
			c, s := pair(b)
			go func() { _, _ = io.Copy(io.Discard, s) }()
			var w net.Conn = c
			if !co {
				w = c.Conn
			}
			msg := make([]byte, 50)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < b.N/4; i++ {
						if _, err := w.Write(msg); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = c.Close()
		})
	}
}
