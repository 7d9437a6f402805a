package rtsp_test

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

// testLogger logs to stderr under go test -v, else discards.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return newTextLogger(os.Stderr)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
