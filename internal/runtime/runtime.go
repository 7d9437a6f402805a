// Package runtime runs wardstream roles: the Role interface, the run group
// (the first failure stops every role), the HTTP endpoint that serves
// /metrics, /healthz and /readyz, and the standard per-role metrics.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/wardstream/wardstream/internal/telemetry"
)

// Role is one independently runnable part of wardstream.
type Role interface {
	// Name is the role's name as given to --roles (mqtt, rtsp, ...).
	Name() string
	// Run blocks until ctx is done or a fatal error occurs; nil means a
	// clean drain. Run stops intake when ctx is done, then drains within
	// its own deadline (see [DrainContext]).
	Run(ctx context.Context) error
}

// Func adapts a function to a Role.
type Func struct {
	RoleName string
	F        func(ctx context.Context) error
}

// Name implements Role.
func (f Func) Name() string { return f.RoleName }

// Run implements Role.
func (f Func) Run(ctx context.Context) error { return f.F(ctx) }

// DrainContext returns the context a role drains with after ctx is done:
// not cancelled with ctx, bounded by timeout. Never flush with the already
// cancelled ctx.
func DrainContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// Health tracks readiness of named checks; it is safe for concurrent use.
type Health struct {
	mu     sync.Mutex
	checks map[string]error
}

// NewHealth returns an empty Health; readiness is true while no check is
// registered as failing.
func NewHealth() *Health { return &Health{checks: map[string]error{}} }

// Set records the state of check name (nil is ready).
func (h *Health) Set(name string, err error) {
	h.mu.Lock()
	h.checks[name] = err
	h.mu.Unlock()
}

// NotReady registers name as not ready yet (a role calls it in New and Set(name, nil) once connected).
func (h *Health) NotReady(name string) { h.Set(name, errors.New("starting")) }

// Ready returns nil when every check is ready, else the failing ones.
func (h *Health) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var names []string
	for n := range h.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := h.checks[n]; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// Handler returns the mux serving /metrics (from g), /healthz and /readyz.
func Handler(g prometheus.Gatherer, h *Health) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := h.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Group runs roles together.
type Group struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Health   *Health
	// Listen is the address of the telemetry endpoint; "" disables it.
	Listen string
	// Pprof serves /debug/pprof/ on the telemetry endpoint.
	Pprof bool
	// DrainTimeout bounds the whole shutdown after ctx is done.
	DrainTimeout time.Duration
}

// Run runs every role until ctx is done or one fails; the first failure
// cancels the others. A role that returns while the group runs, even with
// nil, has failed. It returns the first error, or nil after a clean stop.
// If the roles do not return within DrainTimeout after cancellation, Run
// returns an error naming the roles still running.
func (g *Group) Run(ctx context.Context, roles ...Role) error {
	log := telemetry.OrDiscard(g.Logger)
	if g.Health == nil {
		g.Health = NewHealth()
	}
	roleUp := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wardstream_role_up", Help: "1 while the role runs."}, []string{"role"})
	roleErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_role_failures_total", Help: "Roles that returned an error."}, []string{"role"})
	if g.Registry != nil {
		g.Registry.MustRegister(roleUp, roleErrors)
	}
	if g.Listen != "" && g.Registry != nil {
		ln, err := net.Listen("tcp", g.Listen)
		if err != nil {
			return fmt.Errorf("listening for metrics on %s: %w", g.Listen, err)
		}
		mux := Handler(g.Registry, g.Health)
		if g.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("telemetry listening", "addr", ln.Addr().String())
	}
	eg, ectx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	running := map[string]bool{}
	var first error // the failure that started the shutdown
	for _, r := range roles {
		r := r
		mu.Lock()
		running[r.Name()] = true
		mu.Unlock()
		eg.Go(func() error {
			roleUp.WithLabelValues(r.Name()).Set(1)
			log.Info("role starting", "role", r.Name())
			err := r.Run(ectx)
			roleUp.WithLabelValues(r.Name()).Set(0)
			if ectx.Err() == nil {
				// A role runs until the group stops it: one that returns
				// by itself has stopped its work, also with nil or with a
				// cancellation of its own.
				switch {
				case err == nil:
					err = errors.New("stopped on its own")
				case errors.Is(err, context.Canceled):
					err = fmt.Errorf("stopped on its own: %w", err)
				}
			}
			mu.Lock()
			delete(running, r.Name())
			mu.Unlock()
			if err != nil && (!errors.Is(err, context.Canceled) || ectx.Err() == nil) {
				roleErrors.WithLabelValues(r.Name()).Inc()
				log.Error("role failed", "role", r.Name(), "err", err)
				err = fmt.Errorf("role %s: %w", r.Name(), err)
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return err
			}
			log.Info("role stopped", "role", r.Name())
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- eg.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ectx.Done():
	}
	dt := g.DrainTimeout
	if dt <= 0 {
		dt = 15 * time.Second
	}
	select {
	case err := <-done:
		return err
	case <-time.After(dt):
		mu.Lock()
		defer mu.Unlock()
		var names []string
		for n := range running {
			names = append(names, n)
		}
		sort.Strings(names)
		if first != nil {
			return fmt.Errorf("%w; then roles %v did not stop within drain timeout %s", first, names, dt)
		}
		return fmt.Errorf("roles %v did not stop within drain timeout %s", names, dt)
	}
}
