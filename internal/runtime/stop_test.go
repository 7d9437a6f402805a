package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
)

// TestRoleStoppingEarlyStopsTheGroup: a role that returns before ctx
// is done has stopped doing its work; with nil (or an error wrapping
// context.Canceled, which Run takes for a clean drain) the group neither
// stops the other roles nor reports it: `run` keeps going with a dead role,
// or exits 0 when it was the only one.
func TestRoleStoppingEarlyStopsTheGroup(t *testing.T) {
	for name, ret := range map[string]error{"nil": nil, "wrapped context.Canceled": fmt.Errorf("kafka client: %w", context.Canceled)} {
		t.Run(name, func(t *testing.T) {
			g := &runtime.Group{Registry: telemetry.NewRegistry(), DrainTimeout: time.Second}
			done := make(chan error, 1)
			go func() {
				done <- g.Run(context.Background(),
					runtime.Func{RoleName: "a", F: func(ctx context.Context) error { return ret }},
					runtime.Func{RoleName: "b", F: func(ctx context.Context) error { <-ctx.Done(); return nil }},
				)
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "a") {
					t.Fatalf("Run returned %v, want an error naming role a", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("role a stopped on its own; Run still running 3s later, role b never stopped")
			}
		})
	}
}

// TestDrainTimeoutKeepsCause: when a role fails and another does not
// stop within drain_timeout, Run's error (the one `run` prints and exits
// with) names only the stuck role; the failure that started the shutdown
// is lost.
func TestDrainTimeoutKeepsCause(t *testing.T) {
	g := &runtime.Group{Registry: telemetry.NewRegistry(), DrainTimeout: 100 * time.Millisecond}
	block := make(chan struct{})
	defer close(block)
	err := g.Run(context.Background(),
		runtime.Func{RoleName: "a", F: func(ctx context.Context) error { <-block; return nil }},
		runtime.Func{RoleName: "b", F: func(ctx context.Context) error { return errors.New("boom") }})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Run returned %v, want it to keep the cause (role b: boom)", err)
	}
}
