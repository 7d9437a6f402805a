package runtime_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
)

func TestGroupFirstErrorStopsAll(t *testing.T) {
	stopped := make(chan struct{})
	g := &runtime.Group{Registry: telemetry.NewRegistry(), DrainTimeout: time.Second}
	err := g.Run(context.Background(),
		runtime.Func{RoleName: "a", F: func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil }},
		runtime.Func{RoleName: "b", F: func(ctx context.Context) error { return errors.New("boom") }},
	)
	if err == nil || !strings.Contains(err.Error(), "role b: boom") {
		t.Fatalf("got %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("role a was not stopped")
	}
}

func TestGroupDrainTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := &runtime.Group{DrainTimeout: 50 * time.Millisecond}
	block := make(chan struct{})
	defer close(block)
	err := g.Run(ctx, runtime.Func{RoleName: "stuck", F: func(ctx context.Context) error { <-block; return nil }})
	if err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("got %v", err)
	}
}

func TestHealthEndpoints(t *testing.T) {
	h := runtime.NewHealth()
	h.NotReady("kafka")
	srv := httptest.NewServer(runtime.Handler(telemetry.NewRegistry(), h))
	defer srv.Close()
	cases := []struct {
		path string
		want int
	}{{"/healthz", 200}, {"/readyz", 503}, {"/metrics", 200}}
	for _, c := range cases {
		resp, err := srv.Client().Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.path, resp.StatusCode, c.want)
		}
	}
	h.Set("kafka", nil)
	resp, _ := srv.Client().Get(srv.URL + "/readyz")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz after ready: %d", resp.StatusCode)
	}
}
