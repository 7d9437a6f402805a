package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// route is one entry of the router. The route table is the single source
// the mux, the metrics labels and the OpenAPI test are built from.
type route struct {
	method string
	// path uses net/http ServeMux syntax ("/api/v1/alerts/{alertId}").
	path string
	// name is the OpenAPI operationId and the metrics label.
	name string
	// roles may call the route; nil makes it public (no token).
	roles []string
	// write routes take a JSON body and are audited.
	write bool
	// h handles an authenticated (or public) request.
	h func(rc *reqCtx) (int, any, error)
	// raw handlers write their own response (dashboard files, the stream).
	raw func(w http.ResponseWriter, r *http.Request, p *Principal)
}

// reqCtx is what a handler gets: the request, its principal and the body.
type reqCtx struct {
	s    *Server
	r    *http.Request
	p    *Principal
	body []byte
}

// httpError is an error with its HTTP status; its message is shown to the
// client, so it must not carry internals (those are logged instead).
type httpError struct {
	status int
	msg    string
	retry  time.Duration
}

func (e *httpError) Error() string { return e.msg }

func errf(status int, format string, a ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, a...)}
}

// errorBody is every error response: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
	// RetryAfterSeconds is set on 429.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	limited     prometheus.Counter
	authFail    *prometheus.CounterVec
	published   *prometheus.CounterVec
	auditFail   prometheus.Counter
	streams     prometheus.Gauge
	queryErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_api_requests_total",
			Help: "HTTP requests by route and status class."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wardstream_api_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"route"}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_api_rate_limited_total",
			Help: "Requests refused with 429 by the per-user rate limit."}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_api_auth_failures_total",
			Help: "Requests refused by authentication or authorization, by reason."}, []string{"reason"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_api_published_records_total",
			Help: "Records the API published to Kafka, by topic."}, []string{"topic"}),
		auditFail: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_api_audit_failures_total",
			Help: "Writes whose audit record could not be published."}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wardstream_api_stream_clients",
			Help: "Open live-stream (SSE) connections."}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_api_store_errors_total",
			Help: "Failed store (ClickHouse) queries, by route."}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.limited, m.authFail, m.published, m.auditFail, m.streams, m.queryErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering api metrics: %w", err)
		}
	}
	return m, nil
}

// buildMux registers the route table plus, per path, a fallback that
// answers other methods with a JSON 405, and a JSON 404 for unknown paths.
func (s *Server) buildMux() *http.ServeMux {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
		if _, ok := allowed[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	for _, p := range paths {
		methods := allowed[p]
		if p == "/" {
			continue // "/" without a method would swallow every unknown path
		}
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", joinComma(methods))
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("method %s not allowed; use %s", r.Method, joinComma(methods))})
		})
	}
	// Every other path, in or outside /api/: errors are always JSON.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such API route (see /openapi.yaml)"})
	})
	return mux
}

func joinComma(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// wrap adds authentication, authorization, the rate limit, body handling,
// auditing, metrics and JSON rendering around a route's handler.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status := s.serve(rt, w, r)
		s.metrics.requests.WithLabelValues(rt.name, strconv.Itoa(status/100)+"xx").Inc()
		s.metrics.duration.WithLabelValues(rt.name).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) serve(rt route, w http.ResponseWriter, r *http.Request) int {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	var p *Principal
	if rt.roles != nil {
		var err error
		p, err = s.authenticate(r)
		if err != nil {
			// Failed attempts count against the client address, so that
			// token guessing is throttled like any user.
			if ok, wait := s.limiter.Allow("addr:" + clientHost(r)); !ok {
				s.metrics.limited.Inc()
				return s.fail(w, &httpError{status: http.StatusTooManyRequests, msg: "too many failed authentications; slow down", retry: wait})
			}
			return s.fail(w, err)
		}
		// The user's rate limit comes first, so that requests refused for
		// their role are limited too; refused writes are audited, whatever
		// refused them.
		if ok, wait := s.limiter.Allow(userKey(p.Tenant, p.User)); !ok {
			s.metrics.limited.Inc()
			if rt.write {
				s.auditWrite(r.Context(), rt, r, p, nil, http.StatusTooManyRequests)
			}
			return s.fail(w, &httpError{status: http.StatusTooManyRequests, msg: "rate limit exceeded; slow down", retry: wait})
		}
		if !p.Has(rt.roles...) {
			s.metrics.authFail.WithLabelValues("role").Inc()
			err := errf(http.StatusForbidden, "role %s may not %s (needs one of %s)", p.RoleString(), rt.name, joinComma(rt.roles))
			if rt.write {
				s.auditWrite(r.Context(), rt, r, p, nil, http.StatusForbidden)
			}
			return s.fail(w, err)
		}
	}
	if rt.raw != nil {
		rt.raw(w, r, p)
		return http.StatusOK
	}
	rc := &reqCtx{s: s, r: r, p: p}
	if rt.write {
		body, err := s.readBody(w, r)
		if err != nil {
			s.auditWrite(r.Context(), rt, r, p, nil, statusOf(err))
			return s.fail(w, err)
		}
		rc.body = body
	}
	status, out, err := rt.h(rc)
	if err != nil {
		status = statusOf(err)
		var he *httpError
		// A missing alert, shadow or patient is the client's error: not
		// logged (its message would name the id, and alert ids carry
		// patient ids).
		if !errors.As(err, &he) && !errors.Is(err, ErrNotFound) {
			// Internal errors are logged here, once, and shown generically.
			s.log.Error("api request failed", "route", rt.name, "err", err)
			if errors.Is(err, errStore) {
				s.metrics.queryErrors.WithLabelValues(rt.name).Inc()
			}
		}
	}
	if rt.write {
		if aerr := s.auditWrite(r.Context(), rt, r, p, rc.body, status); aerr != nil && err == nil {
			// The write itself was published; say so rather than pretend
			// it failed, but do not report success for an unaudited write.
			err = errf(http.StatusServiceUnavailable, "the write was published but its audit record could not be written; retrying the same request is safe")
		}
	}
	if err != nil {
		return s.fail(w, err)
	}
	writeJSON(w, status, out)
	return status
}

// clientHost is the request's peer address without the port. We do not
// trust X-Forwarded-For: behind a proxy all failures share one bucket,
// which errs on the safe side.
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errStore marks store failures (wrapped by handlers) for the metrics.
var errStore = errors.New("store query failed")

func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, errPublish):
		return http.StatusServiceUnavailable
	case errors.Is(err, errStore):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errPublish marks Kafka publish failures.
var errPublish = errors.New("publishing to kafka failed")

func (s *Server) fail(w http.ResponseWriter, err error) int {
	status := statusOf(err)
	body := errorBody{Error: err.Error()}
	var he *httpError
	switch {
	case errors.As(err, &he):
		if he.retry > 0 {
			secs := int(math.Ceil(he.retry.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			body.RetryAfterSeconds = secs
		}
	case errors.Is(err, ErrNotFound):
		body.Error = "not found"
	case errors.Is(err, errPublish):
		body.Error = "could not publish to Kafka; nothing was acknowledged, retry later"
	case errors.Is(err, errStore):
		body.Error = "the analytics store (ClickHouse) is unavailable; retry later"
	case status == http.StatusGatewayTimeout:
		body.Error = "the request timed out"
	default:
		body.Error = "internal error"
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wardstream"`)
	}
	writeJSON(w, status, body)
	return status
}

// authenticate verifies the bearer token; failures are 401 (no or bad
// token) or 403 (valid token lacking tenant or roles).
func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	tok, err := bearer(r)
	if err == nil {
		var p *Principal
		if p, err = s.verifier.Verify(r.Context(), tok); err == nil {
			return p, nil
		}
	}
	switch {
	case errors.Is(err, ErrNoToken):
		s.metrics.authFail.WithLabelValues("no_token").Inc()
		return nil, errf(http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)")
	case errors.Is(err, ErrNoTenant):
		s.metrics.authFail.WithLabelValues("no_tenant").Inc()
		return nil, errf(http.StatusForbidden, "%v", err)
	case errors.Is(err, ErrNoRole):
		s.metrics.authFail.WithLabelValues("no_role").Inc()
		return nil, errf(http.StatusForbidden, "%v", err)
	default:
		s.metrics.authFail.WithLabelValues("bad_token").Inc()
		s.log.Debug("token rejected", "err", err)
		return nil, errf(http.StatusUnauthorized, "invalid token: %s", tokenReason(err))
	}
}

// tokenReason is a short, safe description of why a token was rejected.
func tokenReason(err error) string {
	for _, c := range []struct {
		target error
		msg    string
	}{
		{errTokenExpired, "expired"},
		{errTokenNotValidYet, "not valid yet"},
		{errTokenSignature, "bad signature"},
		{errTokenIssuer, "wrong issuer"},
		{errTokenAudience, "wrong audience"},
		{errTokenMalformed, "malformed"},
	} {
		if errors.Is(err, c.target) {
			return c.msg
		}
	}
	return "not verifiable"
}

// readBody checks the content type and reads at most MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength == 0 && r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, errf(http.StatusUnsupportedMediaType, "Content-Type must be application/json, got %q", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", s.cfg.MaxBodyBytes)
		}
		return nil, errf(http.StatusBadRequest, "reading request body: %v", err)
	}
	return body, nil
}

// auditWrite publishes the audit record of a write attempt.
func (s *Server) auditWrite(ctx context.Context, rt route, r *http.Request, p *Principal, body []byte, status int) error {
	if p == nil {
		return nil // unauthenticated attempts carry no identity; they are counted in auth_failures
	}
	const maxAuditBody = 16 << 10
	if len(body) > maxAuditBody {
		body = append(append([]byte(nil), body[:maxAuditBody]...), "…(truncated)"...)
	}
	if len(body) > 0 && !json.Valid(body) {
		body, _ = json.Marshal(map[string]string{"invalidJson": string(body)})
	}
	now := s.now()
	ev := &pb.AuditEvent{
		Meta:     &pb.Meta{Tenant: p.Tenant, EventId: newID(), EventTimeMs: now.UnixMilli(), IngestTimeMs: now.UnixMilli(), Source: "api"},
		User:     p.User,
		Role:     p.RoleString(),
		Action:   rt.name,
		Resource: r.Method + " " + r.URL.Path,
		BodyJson: string(body),
		Status:   int32(status),
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout.D())
	defer cancel()
	if err := s.pub.Publish(wctx, Record{Topic: s.topics.Audit, Key: p.User, Value: ev}); err != nil {
		s.metrics.auditFail.Inc()
		s.log.Error("audit record not written", "route", rt.name, "status", status, "err", err)
		return err
	}
	s.metrics.published.WithLabelValues(s.topics.Audit).Inc()
	return nil
}

// publish writes a write's records with the write timeout; failures wrap
// errPublish (503).
func (rc *reqCtx) publish(recs ...Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(rc.r.Context()), rc.s.cfg.WriteTimeout.D())
	defer cancel()
	if err := rc.s.pub.Publish(ctx, recs...); err != nil {
		return fmt.Errorf("%w: %w", errPublish, err)
	}
	for _, r := range recs {
		rc.s.metrics.published.WithLabelValues(r.Topic).Inc()
	}
	return nil
}

// query returns a context bounded by the query timeout.
func (rc *reqCtx) query() (context.Context, context.CancelFunc) {
	return context.WithTimeout(rc.r.Context(), rc.s.cfg.QueryTimeout.D())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v == nil {
		return
	}
	if raw, ok := v.(json.RawMessage); ok {
		// Already valid JSON (built by listBody or pbJSON): encoding/json
		// would re-scan and compact it, a quarter of a list's cost.
		_, _ = w.Write(append(raw, '\n'))
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// pbJSON renders a protobuf message in wardstream's JSON form (the one
// `wardstream tail` prints) for embedding in a response.
func pbJSON(m proto.Message) json.RawMessage {
	b, err := codec.JSON(m)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

// pbList renders messages as a JSON array (never null).
func pbList[T proto.Message](ms []T) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		out = append(out, pbJSON(m))
	}
	return out
}

// listBody renders {"<key>": [items...]} without re-encoding the items.
func listBody[T proto.Message](key string, ms []T) json.RawMessage {
	b := make([]byte, 0, 64+len(ms)*512)
	b = append(b, `{"`...)
	b = append(b, key...)
	b = append(b, `":[`...)
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, pbJSON(m)...)
	}
	return append(b, "]}"...)
}

// newID returns a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RouteInfo describes one route of the router.
type RouteInfo struct {
	// Method and Path as registered (ServeMux syntax; "/{$}" is exactly "/").
	Method, Path string
	// Name is the OpenAPI operationId.
	Name string
	// Roles may call it; empty means public (no token).
	Roles []string
	// Write routes are audited.
	Write bool
}

// Routes lists the router's routes, for documentation and tests.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, len(s.routes))
	for i, r := range s.routes {
		out[i] = RouteInfo{Method: r.method, Path: r.path, Name: r.name, Roles: append([]string(nil), r.roles...), Write: r.write}
	}
	return out
}
