// Package gokalog adapts a *slog.Logger to goka's Logger interface, so that
// goka's (and sarama's) free-text logs go through wardstream's structured
// logger at debug level instead of the standard library's global logger.
package gokalog

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/wardstream/wardstream/internal/telemetry"
)

// Logger implements goka.Logger on a *slog.Logger.
type Logger struct{ l *slog.Logger }

// New returns a goka logger writing to l at debug level (nil discards).
func New(l *slog.Logger) *Logger { return &Logger{l: telemetry.OrDiscard(l)} }

// Print implements goka.Logger.
func (g *Logger) Print(v ...any) { g.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), "source", "goka") }

// Println implements goka.Logger.
func (g *Logger) Println(v ...any) {
	g.l.Debug(strings.TrimSpace(fmt.Sprintln(v...)), "source", "goka")
}

// Printf implements goka.Logger.
func (g *Logger) Printf(format string, v ...any) {
	g.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "goka")
}
