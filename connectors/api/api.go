// Package api provides the api role: wardstream's HTTP API and its live
// dashboard, served by one process.
//
// Writes (dose schedules, device commands, device shadow desired state,
// alert acknowledgements) become records on the catalog topics; the API
// never writes ClickHouse. Reads (alerts, adherence, missed doses, vitals
// anomalies, camera events, device shadows) come from ClickHouse through the
// [Store] interface, always filtered by the caller's tenant. Pipeline health
// (consumer lag, topic throughput, role readiness) comes from Kafka (kadm)
// and the roles' /readyz endpoints.
//
// Every /api/v1 route needs an OIDC/JWT bearer token verified against a
// JWKS ([Verifier]); the token names a tenant and roles
// ([RoleMedicalStaff], [RoleAdmin], [RoleAnalyst]). Each user has a token
// bucket ([Limiter]); every write is audited as a pb.AuditEvent on the audit
// topic. Errors are JSON: {"error": "..."}. The routes are described by
// openapi.yaml (served at /openapi.yaml); a test keeps the two in step.
//
// For the demo the role can act as its own identity provider: with
// auth.demo_key_file set it creates an ES256 key, serves its public half at
// /.well-known/jwks.json, and `wardstream token` mints tokens with it.
//
// Acknowledging an alert publishes a pb.AlertAck; the alerts processor
// turns it into an ACKNOWLEDGED pb.Alert version that the sink writes to
// ClickHouse. With publish_acked_alert the API also publishes that version
// itself (for deployments without the alerts processor).
//
// The package does not hold sessions or cookies (the dashboard keeps the
// token in the browser's sessionStorage), and does not cache query results
// beyond one live-stream snapshot per tenant and interval.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // schedules name IANA zones; do not depend on the host's zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Config is the api section of the topology.
type Config struct {
	// Listen is the HTTP address of the API and dashboard.
	Listen string `yaml:"listen"`
	// PublicURL is how users reach Listen (printed in logs and by the demo);
	// default http://<listen>.
	PublicURL string `yaml:"public_url"`
	// Auth configures token verification.
	Auth AuthConfig `yaml:"auth"`
	// RateLimit bounds each user's request rate.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	// MaxBodyBytes caps request bodies (413 above it). Default 64 KiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// QueryTimeout bounds each ClickHouse query. Default 10s.
	QueryTimeout config.Duration `yaml:"query_timeout"`
	// WriteTimeout bounds publishing a write's records to Kafka. Default 10s.
	WriteTimeout config.Duration `yaml:"write_timeout"`
	// CommandTimeout is a device command's default timeout when the request
	// names none. Default 5m.
	CommandTimeout config.Duration `yaml:"command_timeout"`
	// StreamInterval is how often the live stream pushes a dashboard
	// snapshot. Default 2s.
	StreamInterval config.Duration `yaml:"stream_interval"`
	// MaxStreams caps concurrent live-stream connections (503 above it).
	MaxStreams int `yaml:"max_streams"`
	// MaxStreamsPerUser caps one user's concurrent live streams (429 above
	// it), so that one user cannot take every stream. Default 8.
	MaxStreamsPerUser int `yaml:"max_streams_per_user"`
	// HealthInterval is how often consumer lag, topic offsets and role
	// readiness are polled. Default 5s.
	HealthInterval config.Duration `yaml:"health_interval"`
	// LagGroups are the consumer groups whose lag is reported; default the
	// catalog's groups.
	LagGroups []string `yaml:"lag_groups"`
	// Roles maps a role name to its readiness URL (its telemetry /readyz),
	// polled for pipeline health.
	Roles map[string]string `yaml:"roles"`
	// Timezone is the zone that "today" means on the dashboard, in default
	// day ranges and in YYYY-MM-DD parameters. Default UTC.
	Timezone string `yaml:"timezone"`
	// TenantTimezones overrides Timezone per tenant (a hospital network
	// whose hospitals lie in several zones): a user's "today" is that of
	// the tenant in its token.
	TenantTimezones map[string]string `yaml:"tenant_timezones"`
	// RequireKnownDevice refuses commands, shadow changes and schedules for
	// a device that has never reported (status or shadow) under the caller's
	// tenant, so that a user cannot command another tenant's device by id.
	// Default true; turn off only where devices are provisioned elsewhere
	// and the command path checks ownership.
	RequireKnownDevice bool `yaml:"require_known_device"`
	// TopicPrefix is prepended to every catalog topic name the API writes
	// and watches (shared clusters, tests); "" by default. It must match
	// the prefix of the roles that read those topics (sinks.clickhouse).
	TopicPrefix string `yaml:"topic_prefix"`
	// PublishAckedAlert makes an acknowledgement also publish the
	// ACKNOWLEDGED alert version to the alerts topic, instead of leaving
	// that to the alerts processor. Default false.
	PublishAckedAlert bool `yaml:"publish_acked_alert"`
}

// AuthConfig configures bearer-token verification.
type AuthConfig struct {
	// JWKSURL is the identity provider's key set. Exactly one of JWKSURL
	// and DemoKeyFile must be set.
	JWKSURL string `yaml:"jwks_url"`
	// DemoKeyFile is an ECDSA P-256 PEM key created on first start; the
	// role verifies tokens signed by it and serves its JWKS at
	// /.well-known/jwks.json. For demos and tests only.
	DemoKeyFile string `yaml:"demo_key_file"`
	// Issuer, when set, must equal the token's iss. Required with JWKSURL.
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be in the token's aud. Required with
	// JWKSURL.
	Audience string `yaml:"audience"`
	// TenantClaim is the (dotted) claim holding the tenant. Default "tenant".
	TenantClaim string `yaml:"tenant_claim"`
	// RolesClaim is the (dotted) claim holding the roles, a string or array.
	// Default "roles"; Keycloak puts them at "realm_access.roles".
	RolesClaim string `yaml:"roles_claim"`
	// Leeway tolerates clock skew on exp/nbf/iat. Default 30s.
	Leeway config.Duration `yaml:"leeway"`
	// JWKSMaxAge is how long a fetched JWKS is used. Default 15m.
	JWKSMaxAge config.Duration `yaml:"jwks_max_age"`
}

// RateLimitConfig sizes the per-user token buckets.
type RateLimitConfig struct {
	// RequestsPerSecond is the sustained rate per user. Default 20.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests a user may make at once. Default 40.
	Burst int `yaml:"burst"`
	// MaxUsers bounds the users tracked at once. Default 100000.
	MaxUsers int `yaml:"max_users"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		Auth:              AuthConfig{TenantClaim: "tenant", RolesClaim: "roles", Leeway: config.Duration(30 * time.Second), JWKSMaxAge: config.Duration(15 * time.Minute)},
		RateLimit:         RateLimitConfig{RequestsPerSecond: 20, Burst: 40, MaxUsers: 100_000},
		MaxBodyBytes:      64 << 10,
		QueryTimeout:      config.Duration(10 * time.Second),
		WriteTimeout:      config.Duration(10 * time.Second),
		CommandTimeout:    config.Duration(5 * time.Minute),
		StreamInterval:    config.Duration(2 * time.Second),
		MaxStreams:        256,
		MaxStreamsPerUser: 8,
		HealthInterval:    config.Duration(5 * time.Second),
		Timezone:          "UTC",

		RequireKnownDevice: true,
	}
}

// Validate returns every problem, each prefixed with its path under "api".
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("api.%s: %s", path, fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen", "%q is not host:port", c.Listen)
	}
	switch {
	case c.Auth.JWKSURL == "" && c.Auth.DemoKeyFile == "":
		add("auth", "set jwks_url (your identity provider) or demo_key_file (demo only)")
	case c.Auth.JWKSURL != "" && c.Auth.DemoKeyFile != "":
		add("auth", "set only one of jwks_url and demo_key_file")
	case c.Auth.JWKSURL != "" && !strings.HasPrefix(c.Auth.JWKSURL, "https://") && !strings.HasPrefix(c.Auth.JWKSURL, "http://"):
		add("auth.jwks_url", "%q is not an http(s) URL", c.Auth.JWKSURL)
	case c.Auth.JWKSURL != "" && (c.Auth.Issuer == "" || c.Auth.Audience == ""):
		// An identity provider signs tokens for every client it serves:
		// without both checks, a token issued to any of them would do.
		add("auth", "with jwks_url, set issuer and audience (the identity provider's iss and this API's client id)")
	}
	if c.Auth.TenantClaim == "" {
		add("auth.tenant_claim", "must not be empty")
	}
	if c.Auth.RolesClaim == "" {
		add("auth.roles_claim", "must not be empty")
	}
	if c.Auth.Leeway.D() < 0 || c.Auth.Leeway.D() > 10*time.Minute {
		add("auth.leeway", "must be between 0 and 10m")
	}
	if c.Auth.JWKSMaxAge.D() < time.Minute {
		add("auth.jwks_max_age", "must be >= 1m")
	}
	if c.RateLimit.RequestsPerSecond <= 0 {
		add("rate_limit.requests_per_second", "must be > 0")
	}
	if c.RateLimit.Burst < 1 {
		add("rate_limit.burst", "must be >= 1")
	}
	if c.RateLimit.MaxUsers < 1 {
		add("rate_limit.max_users", "must be >= 1")
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 16<<20 {
		add("max_body_bytes", "must be between 1024 and 16777216")
	}
	for name, d := range map[string]config.Duration{"query_timeout": c.QueryTimeout, "write_timeout": c.WriteTimeout,
		"command_timeout": c.CommandTimeout, "stream_interval": c.StreamInterval, "health_interval": c.HealthInterval} {
		if d.D() <= 0 {
			add(name, "must be > 0")
		}
	}
	if c.MaxStreams < 1 {
		add("max_streams", "must be >= 1")
	}
	if c.MaxStreamsPerUser < 1 {
		add("max_streams_per_user", "must be >= 1")
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" {
		add("timezone", "%q is not an IANA time zone", c.Timezone)
	}
	for _, tenant := range slices.Sorted(maps.Keys(c.TenantTimezones)) {
		if z := c.TenantTimezones[tenant]; z == "" {
			add("tenant_timezones."+tenant, "empty zone")
		} else if _, err := time.LoadLocation(z); err != nil {
			add("tenant_timezones."+tenant, "%q is not an IANA time zone", z)
		}
	}
	for name, u := range c.Roles {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			add("roles."+name, "%q is not an http(s) URL", u)
		}
	}
	return joinSorted(errs)
}

// joinSorted joins errs in a stable order (Validate ranges over a map).
func joinSorted(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	slices.Sort(msgs)
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return errors.Join(out...)
}

// LoadConfig decodes the api section of root over the defaults and
// validates it.
func LoadConfig(root *config.Root) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(&root.API, "api", &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Topics are the topic names the API writes and watches; [DefaultTopics]
// are the catalog's. Tests override them with [WithTopics] to stay apart on
// shared servers.
type Topics struct {
	Schedules, Commands, ShadowDesired, AlertAcks, Alerts, Audit string
	// Watched are the topics whose throughput pipeline health reports.
	Watched []string
}

// DefaultTopics returns the catalog topics.
func DefaultTopics() Topics { return PrefixedTopics("") }

// PrefixedTopics returns the catalog topics with prefix prepended.
func PrefixedTopics(prefix string) Topics {
	var watched []string
	for _, t := range topics.All() {
		watched = append(watched, prefix+t.Name)
	}
	return Topics{Schedules: prefix + topics.Schedules, Commands: prefix + topics.Commands, ShadowDesired: prefix + topics.ShadowDesired,
		AlertAcks: prefix + topics.AlertAcks, Alerts: prefix + topics.Alerts, Audit: prefix + topics.Audit, Watched: watched}
}

// defaultLagGroups are the catalog's consumer groups.
func defaultLagGroups() []string {
	return []string{topics.GroupAdherence, topics.GroupAnomaly, topics.GroupAlerts, topics.GroupCorrelation,
		topics.GroupShadows, topics.GroupCommands, topics.GroupSink}
}

// Option injects what code provides: logger, metrics, clients, clock.
type Option func(*Server)

// WithLogger sets the logger (discarding by default).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRegisterer registers the role's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(s *Server) { s.reg = r } }

// WithHealth reports readiness to h and includes h's checks (the roles in
// this process) in pipeline health.
func WithHealth(h *runtime.Health) Option { return func(s *Server) { s.health = h } }

// WithStore sets the store reads come from (required).
func WithStore(st Store) Option { return func(s *Server) { s.store = st } }

// WithPublisher sets where writes go (required).
func WithPublisher(p Publisher) Option { return func(s *Server) { s.pub = p } }

// WithAdmin sets the Kafka admin client used for lag and throughput;
// without it pipeline health reports Kafka as unknown.
func WithAdmin(a *kadm.Client) Option { return func(s *Server) { s.adm = a } }

// WithKeys sets the token key source, overriding auth.jwks_url and
// auth.demo_key_file (tests).
func WithKeys(k KeySource) Option { return func(s *Server) { s.keys = k } }

// WithTopics overrides the topic names (and api.topic_prefix).
func WithTopics(t Topics) Option { return func(s *Server) { s.topics = t } }

// WithClock sets the clock (time.Now by default).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// withClose registers a function Run calls after draining (owned clients).
func withClose(f func()) Option { return func(s *Server) { s.closers = append(s.closers, f) } }

// Server is the api role. Build it with [New] or [FromRoot]; it serves
// until Run's context is done.
type Server struct {
	cfg     Config
	log     *slog.Logger
	reg     prometheus.Registerer
	health  *runtime.Health
	store   Store
	pub     Publisher
	adm     *kadm.Client
	keys    KeySource
	signer  *SigningKey
	topics  Topics
	now     func() time.Time
	closers []func()

	verifier *Verifier
	limiter  *Limiter
	loc      *time.Location
	// tenantLoc are the zones of cfg.TenantTimezones.
	tenantLoc map[string]*time.Location
	metrics   *metrics
	routes    []route
	mux       *http.ServeMux
	monitor   *monitor
	hub       *hub

	verMu   sync.Mutex
	lastVer int64
	runOnce sync.Once
}

// New builds the role from cfg (already validated) and opts. It does no
// network I/O; with auth.demo_key_file it reads (or creates) the key file.
// locFor is the zone "today" means for tenant's users.
func (s *Server) locFor(tenant string) *time.Location {
	if l, ok := s.tenantLoc[tenant]; ok {
		return l
	}
	return s.loc
}

func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, topics: PrefixedTopics(cfg.TopicPrefix), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.store == nil || s.pub == nil {
		return nil, errors.New("api: a store and a publisher are required (WithStore, WithPublisher)")
	}
	s.log = telemetry.OrDiscard(s.log).With("component", "connectors/api")
	s.loc, _ = time.LoadLocation(cfg.Timezone) // checked by Validate
	s.tenantLoc = make(map[string]*time.Location, len(cfg.TenantTimezones))
	for tenant, z := range cfg.TenantTimezones {
		s.tenantLoc[tenant], _ = time.LoadLocation(z) // checked by Validate
	}
	if s.keys == nil {
		switch {
		case cfg.Auth.DemoKeyFile != "":
			sk, err := LoadOrCreateSigningKey(cfg.Auth.DemoKeyFile)
			if err != nil {
				return nil, err
			}
			s.signer, s.keys = sk, sk.Keys()
		default:
			s.keys = &JWKSCache{URL: cfg.Auth.JWKSURL, MaxAge: cfg.Auth.JWKSMaxAge.D(), MinRefresh: 30 * time.Second}
		}
	}
	s.verifier = NewVerifier(cfg.Auth, s.keys)
	s.limiter = NewLimiter(cfg.RateLimit.RequestsPerSecond, cfg.RateLimit.Burst, cfg.RateLimit.MaxUsers, s.now)
	m, err := newMetrics(telemetry.OrNop(s.reg))
	if err != nil {
		return nil, err
	}
	s.metrics = m
	groups := cfg.LagGroups
	if len(groups) == 0 {
		groups = defaultLagGroups()
	}
	s.monitor = newMonitor(s.adm, s.store, s.health, groups, s.topics.Watched, cfg.Roles, s.now, s.log)
	s.hub = newHub(s, cfg.MaxStreams, cfg.MaxStreamsPerUser)
	s.routes = s.routeTable()
	s.mux = s.buildMux()
	if s.health != nil {
		s.health.NotReady("api")
	}
	return s, nil
}

// FromRoot builds the role from the topology: the api section, a Kafka
// client on root.Kafka and a ClickHouse store on root.ClickHouse, both
// closed when Run returns. opts come after and may override them.
func FromRoot(root *config.Root, opts ...Option) (*Server, error) {
	cfg, err := LoadConfig(root)
	if err != nil {
		return nil, err
	}
	cl, err := kafka.NewClient(root.Kafka, kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	st, err := NewClickHouseStore(root.ClickHouse)
	if err != nil {
		cl.Close()
		return nil, err
	}
	base := []Option{WithPublisher(KafkaPublisher{Client: cl}), WithAdmin(kadm.NewClient(cl)), WithStore(st),
		withClose(func() { _ = st.Close() }), withClose(cl.Close)}
	s, err := New(cfg, append(base, opts...)...)
	if err != nil {
		_ = st.Close()
		cl.Close()
		return nil, err
	}
	return s, nil
}

// Name implements runtime.Role.
func (s *Server) Name() string { return "api" }

// Handler returns the HTTP handler (the API, the dashboard, the JWKS).
func (s *Server) Handler() http.Handler { return s.mux }

// SigningKey returns the demo signing key, or nil when tokens come from an
// identity provider.
func (s *Server) SigningKey() *SigningKey { return s.signer }

// Run serves until ctx is done, then stops accepting requests and drains
// in-flight ones (live streams are closed at once) within the drain
// timeout, and closes the clients FromRoot created. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	first := false
	s.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("api: Run called twice")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.closeClients()
		return fmt.Errorf("api: listening on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

func (s *Server) closeClients() {
	for _, c := range s.closers {
		c()
	}
	s.closers = nil
}

// Serve is Run on an existing listener (tests listen on port 0). It
// closes ln and the clients FromRoot created when it returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.closeClients()
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBg := context.WithCancel(ctx)
	defer stopBg()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.monitor.run(bg, s.cfg.HealthInterval.D()) }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	url := s.cfg.PublicURL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	s.log.Info("api listening", "addr", ln.Addr().String(), "dashboard", url+"/", "demo_auth", s.signer != nil)
	if s.health != nil {
		s.health.Set("api", nil)
	}
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("api: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if s.health != nil {
		s.health.NotReady("api")
	}
	s.hub.close() // live streams end now; they would hold Shutdown forever
	dctx, cancel := runtime.DrainContext(ctx, s.cfg.WriteTimeout.D()+time.Second)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("api: draining requests: %w", err)
	}
	stopBg()
	wg.Wait()
	s.hub.wait()
	return serveErr
}

// nextVersion returns a schedule version: milliseconds since the epoch,
// strictly increasing within this process so that two quick updates of one
// schedule never tie (the highest version wins downstream).
func (s *Server) nextVersion() int64 {
	s.verMu.Lock()
	defer s.verMu.Unlock()
	v := s.now().UnixMilli()
	if v <= s.lastVer {
		v = s.lastVer + 1
	}
	s.lastVer = v
	return v
}
