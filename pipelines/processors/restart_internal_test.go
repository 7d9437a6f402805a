package processors

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wardstream/wardstream/internal/config"
)

// fakeGroup fails its first fails runs, then runs until ctx is done.
type fakeGroup struct {
	runs  *atomic.Int32
	fails int32
}

func (g fakeGroup) Run(ctx context.Context) error {
	if g.runs.Add(1) <= g.fails {
		return errors.New("kafka server: Tried to send a message to a replica that is not the leader")
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestRestartLoop(t *testing.T) {
	defer func(b time.Duration) { restartBackoff = b }(restartBackoff)
	restartBackoff = 10 * time.Millisecond
	for _, tc := range []struct {
		name     string
		restarts int
		fails    int32
		wantErr  bool
	}{
		{"no failure", 5, 0, false},
		{"transient failures are restarted", 5, 2, false},
		{"exactly the budget", 2, 2, false},
		{"over the budget", 2, 3, true},
		{"no restarts allowed", 0, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := config.Default()
			cfg := DefaultConfig()
			cfg.GroupRestarts = tc.restarts
			r, err := New(&root, cfg)
			if err != nil {
				t.Fatal(err)
			}
			runs := &atomic.Int32{}
			g := fakeGroup{runs: runs, fails: tc.fails}
			builds := 0
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- r.restartLoop(ctx, "g", g, func() (groupRunner, error) { builds++; return g, nil })
			}()
			// Wait for the failures to play out.
			deadline := time.Now().Add(10 * time.Second)
			for runs.Load() <= min(tc.fails, int32(tc.restarts)) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case err := <-done:
				if !tc.wantErr {
					t.Fatalf("restartLoop returned %v while running", err)
				}
				if err == nil {
					t.Fatal("restartLoop gave up without an error")
				}
			case <-time.After(200 * time.Millisecond):
				if tc.wantErr {
					t.Fatal("restartLoop kept going past its budget")
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("after cancel: %v", err)
				}
			}
			want := min(tc.fails, int32(tc.restarts))
			var m dto.Metric
			if err := r.restarts.WithLabelValues("g").Write(&m); err != nil {
				t.Fatal(err)
			}
			if got := m.GetCounter().GetValue(); got != float64(want) || builds != int(want) {
				t.Fatalf("%v restarts, %d builds; want %d", got, builds, want)
			}
		})
	}
}

// TestRestartLoopRetriesFailedBuild: rebuilding a failed group is
// goka.NewProcessor, which connects to the brokers (it prepares the group's
// topics). When the group failed because a broker restarted, that build
// fails the same transient way; it must count against GroupRestarts and be
// retried after the backoff, not end the role at the first attempt.
func TestRestartLoopRetriesFailedBuild(t *testing.T) {
	defer func(b time.Duration) { restartBackoff = b }(restartBackoff)
	restartBackoff = 10 * time.Millisecond
	root := config.Default()
	cfg := DefaultConfig()
	cfg.GroupRestarts = 5
	r, err := New(&root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runs := &atomic.Int32{}
	g := fakeGroup{runs: runs, fails: 1} // the running group fails once
	var builds atomic.Int32
	build := func() (groupRunner, error) {
		if builds.Add(1) == 1 { // the broker is still restarting
			return nil, errors.New("building goka group g: Error creating topic manager: kafka: client has run out of available brokers to talk to: dial tcp 127.0.0.1:9092: connect: connection refused")
		}
		return g, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.restartLoop(ctx, "g", g, build) }()
	deadline := time.After(5 * time.Second)
	for runs.Load() < 2 {
		select {
		case err := <-done:
			t.Fatalf("restartLoop gave up after %d failed run(s) and %d build(s), with 5 restarts allowed: %v", runs.Load(), builds.Load(), err)
		case <-deadline:
			t.Fatal("the group was never rebuilt and run again")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}
