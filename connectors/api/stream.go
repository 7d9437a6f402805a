package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// Dashboard is everything the dashboard page shows for one tenant. A panel
// whose query failed is empty and named in Errors, so one slow table does
// not blank the page.
type Dashboard struct {
	GeneratedAt time.Time `json:"generatedAt"`
	Tenant      string    `json:"tenant"`
	// Today is the dashboard day in Timezone, YYYY-MM-DD.
	Today string `json:"today"`
	// Timezone is the tenant's zone (api.tenant_timezones, else
	// api.timezone).
	Timezone string `json:"timezone"`
	// Wards is each ward's adherence today.
	Wards []WardAdherence `json:"wards"`
	// MissedToday are the missed doses whose patient-local date is Today,
	// newest first (at most 100).
	MissedToday []json.RawMessage `json:"missedToday"`
	// OpenAlerts are OPEN and ESCALATED alerts, newest first (at most 100).
	OpenAlerts []json.RawMessage `json:"openAlerts"`
	// Anomalies are vitals scores >= 5 of the last 24 h (at most 50).
	Anomalies []json.RawMessage `json:"anomalies"`
	// CameraEvents are video events of the last 24 h (at most 50).
	CameraEvents []json.RawMessage `json:"cameraEvents"`
	Pipeline     PipelineHealth    `json:"pipeline"`
	Errors       map[string]string `json:"errors,omitempty"`
}

// dashboard builds the snapshot with the panels' queries run concurrently.
func (s *Server) dashboard(ctx context.Context, tenant string) *Dashboard {
	now := s.now()
	loc := s.locFor(tenant)
	local := now.In(loc)
	today := startOfDay(local)
	d := &Dashboard{GeneratedAt: now.UTC(), Tenant: tenant, Today: today.Format(time.DateOnly), Timezone: loc.String(),
		Wards: []WardAdherence{}, MissedToday: []json.RawMessage{}, OpenAlerts: []json.RawMessage{},
		Anomalies: []json.RawMessage{}, CameraEvents: []json.RawMessage{}}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout.D())
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	panel := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				s.metrics.queryErrors.WithLabelValues("dashboard:" + name).Inc()
				s.log.Warn("dashboard panel failed", "panel", name, "err", err)
				mu.Lock()
				if d.Errors == nil {
					d.Errors = map[string]string{}
				}
				d.Errors[name] = "unavailable"
				mu.Unlock()
			}
		}()
	}
	panel("wards", func() error {
		rows, err := s.store.WardAdherence(ctx, tenant, "", today, today)
		if rows != nil {
			d.Wards = rows
		}
		return err
	})
	panel("missedToday", func() error {
		// Today's doses by the patient's local date, as the wards panel
		// counts them (not those scheduled since midnight here).
		rows, err := s.store.MissedDoses(ctx, tenant, DoseFilter{From: today.AddDate(0, 0, -1), To: today.AddDate(0, 0, 2),
			LocalDate: d.Today, Limit: 100}) // web/app.js shows a full list as "100+"
		d.MissedToday = pbList(rows)
		return err
	})
	panel("openAlerts", func() error {
		rows, err := s.store.Alerts(ctx, tenant, AlertFilter{States: []pb.AlertState{pb.AlertState_OPEN, pb.AlertState_ESCALATED}, Limit: 100})
		d.OpenAlerts = pbList(rows)
		return err
	})
	panel("anomalies", func() error {
		rows, err := s.store.Anomalies(ctx, tenant, AnomalyFilter{MinScore: 5, Since: now.Add(-24 * time.Hour), Limit: 50})
		d.Anomalies = pbList(rows)
		return err
	})
	panel("cameraEvents", func() error {
		rows, err := s.store.CameraEvents(ctx, tenant, now.Add(-24*time.Hour), 50)
		d.CameraEvents = pbList(rows)
		return err
	})
	wg.Wait()
	d.Pipeline = s.monitor.snapshot()
	return d
}

// hub fans dashboard snapshots out to live-stream clients: one feed per
// tenant computes a snapshot every stream interval while it has
// subscribers, however many there are. Each subscriber has a one-slot
// mailbox; a slow client only ever misses intermediate snapshots (the
// newest replaces the unread one), so no queue grows.
type hub struct {
	s       *Server
	max     int
	maxUser int

	mu     sync.Mutex
	feeds  map[string]*feed
	n      int
	byUser map[string]int // open streams per tenant/user
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

type feed struct {
	subs map[chan []byte]struct{}
	stop context.CancelFunc
}

func newHub(s *Server, max, maxUser int) *hub {
	return &hub{s: s, max: max, maxUser: maxUser, feeds: map[string]*feed{}, byUser: map[string]int{}, done: make(chan struct{})}
}

var errTooManyStreams = errf(http.StatusServiceUnavailable, "too many live streams open; retry later")
var errTooManyUserStreams = errf(http.StatusTooManyRequests, "you have too many live streams open; close one first")
var errShuttingDown = errf(http.StatusServiceUnavailable, "shutting down")

// subscribe registers a mailbox for one of tenant's users; the returned
// func unsubscribes.
func (h *hub) subscribe(tenant, user string) (chan []byte, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errShuttingDown
	}
	who := userKey(tenant, user)
	if h.byUser[who] >= h.maxUser {
		return nil, nil, errTooManyUserStreams
	}
	if h.n >= h.max {
		return nil, nil, errTooManyStreams
	}
	f, ok := h.feeds[tenant]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		f = &feed{subs: map[chan []byte]struct{}{}, stop: cancel}
		h.feeds[tenant] = f
		h.wg.Add(1)
		go func() { defer h.wg.Done(); h.run(ctx, tenant, f) }()
	}
	ch := make(chan []byte, 1)
	f.subs[ch] = struct{}{}
	h.n++
	h.byUser[who]++
	h.s.metrics.streams.Set(float64(h.n))
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := f.subs[ch]; !ok {
			return
		}
		delete(f.subs, ch)
		h.n--
		if h.byUser[who]--; h.byUser[who] == 0 {
			delete(h.byUser, who)
		}
		h.s.metrics.streams.Set(float64(h.n))
		if len(f.subs) == 0 {
			f.stop()
			delete(h.feeds, tenant)
		}
	}, nil
}

func (h *hub) run(ctx context.Context, tenant string, f *feed) {
	t := time.NewTicker(h.s.cfg.StreamInterval.D())
	defer t.Stop()
	for {
		d := h.s.dashboard(ctx, tenant)
		if ctx.Err() != nil {
			return
		}
		msg, err := json.Marshal(d)
		if err == nil {
			h.mu.Lock()
			for ch := range f.subs {
				select {
				case <-ch: // drop the unread older snapshot
				default:
				}
				ch <- msg
			}
			h.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close ends every stream (on shutdown) and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	for _, f := range h.feeds {
		f.stop()
	}
}

func (h *hub) wait() { h.wg.Wait() }

// serveStream is the live stream: Server-Sent Events, one "snapshot" event
// (a [Dashboard] JSON) per stream interval and a comment heartbeat every
// 15 s so that proxies keep the connection open. The dashboard reads it with
// fetch() so that the token travels in the Authorization header, never in
// the URL.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, p *Principal) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "streaming unsupported"})
		return
	}
	ch, unsubscribe, err := s.hub.subscribe(p.Tenant, p.User)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer unsubscribe()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	fl.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	// The token was checked once, at connect: end the stream when it
	// expires, so that the client must come back with a fresh one.
	var expired <-chan time.Time
	if !p.Expires.IsZero() {
		// A client that stops reading would block a write forever, and
		// the timer below with it: writes fail shortly after expiry.
		_ = http.NewResponseController(w).SetWriteDeadline(p.Expires.Add(2 * time.Second))
		t := time.NewTimer(time.Until(p.Expires))
		defer t.Stop()
		expired = t.C
	}
	id := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-expired:
			fmt.Fprint(w, "event: expired\ndata: {}\n\n")
			fl.Flush()
			return
		case <-s.hub.done:
			return
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case msg := <-ch:
			id++
			if _, err := fmt.Fprintf(w, "id: %d\nevent: snapshot\ndata: %s\n\n", id, msg); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
