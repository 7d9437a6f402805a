// Package mqtt provides the mqtt role: it brings pillcases, infusion pumps
// and vitals monitors into Kafka, and takes commands and shadow deltas back
// to them.
//
// Ingest: [Connector] opens Config.Connections MQTT v5 sessions (fixed client
// ids, clean start off, a session expiry) in one shared subscription
// ($share/<share_group>/<filter>), so replicas split the load and QoS 1
// messages published while the connector is down are queued by the broker
// and delivered afterwards. Devices may speak MQTT v3.1.1 or v5 to the
// broker; the connector speaks v5. Each message is routed by its topic
// (Config.Routes, the seeds' layout by default), decoded and validated by
// package payload, and produced to the catalog topics keyed as the catalog
// says; what fails validation goes to the dead-letter topic with its reason.
// A QoS 1 message is acknowledged (PUBACK) only after Kafka acknowledged
// every record made from it, so delivery is at-least-once end to end and
// each record carries a stable event id for downstream deduplication.
// Backpressure: unacknowledged messages are bounded per connection by
// Config.ReceiveMaximum (and the broker's own inflight limit); when Kafka is
// slow the acks stop and the broker stops sending. QoS 0 input is not
// acknowledged and blocks in the producer when its buffer is full.
//
// Back to devices: the command dispatcher (commands.go) consumes the
// commands topic and publishes each command at QoS 1 on the device's
// command topic, records the device's ack from the ack topic and reports
// commands without an ack as timed out. Package shadow keeps device shadows
// and offline detection.
//
// Measured throughput is in README.md.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/connectors/mqtt/shadow"
	"github.com/wardstream/wardstream/internal/coalesce"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/runtime"
	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/schemas/codec"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Shared is what the connector takes from the topology's shared sections.
type Shared struct {
	// Tenant is the default tenant: of records whose topic names none.
	Tenant string
	// Tenants are the topology's other tenants (tenants[].id): a payload's
	// tenant field (on topics without a tenant level) may name one of
	// them or Tenant; any other is dead-lettered as unknown_tenant.
	Tenants      []string
	Kafka        config.Kafka
	MQTT         config.MQTT
	DrainTimeout time.Duration
}

// Option injects what code, not YAML, decides.
type Option func(*options)

type options struct {
	log    *slog.Logger
	reg    prometheus.Registerer
	health *runtime.Health
	kopts  []kgo.Opt
	now    func() time.Time
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer sets where metrics are registered (default: nowhere).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithHealth reports readiness (check "mqtt") to h.
func WithHealth(h *runtime.Health) Option { return func(o *options) { o.health = h } }

// WithKafkaOpts appends franz-go options (tests, hooks).
func WithKafkaOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.kopts = append(o.kopts, opts...) }
}

// Connector is the mqtt role. Create it with [New] and run it once with
// [Connector.Run].
type Connector struct {
	cfg    Config
	shared Shared
	o      options
	log    *slog.Logger
	router *router
	topics map[string]string // catalog name -> prefixed name
	m      *metrics

	cmdTopic   template
	deltaTopic template
	shadow     *shadow.Processor

	kcl *kgo.Client
	cms []*autopaho.ConnectionManager
	up  atomic.Int32 // sessions up
	// slots bounds messages waiting for Kafka across all sessions, even if
	// a broker ignores our receive maximum: onPublish blocks on it, which
	// stops reading from that session.
	slots    chan struct{}
	stopping atomic.Bool
	ran      atomic.Bool
	// cmdPublish replaces PublishDevice for commands in tests (nil: PublishDevice).
	cmdPublish func(ctx context.Context, deviceID string, body []byte) error
}

// New validates cfg and builds the connector; it does no I/O.
func New(cfg Config, shared Shared, opts ...Option) (*Connector, error) {
	cfg.ClientID = os.ExpandEnv(cfg.ClientID)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	r, err := newRouter(cfg)
	if err != nil {
		return nil, fmt.Errorf("connectors.mqtt.routes: %w", err)
	}
	c := &Connector{cfg: cfg, shared: shared, o: o, log: telemetry.OrDiscard(o.log).With("component", "connectors/mqtt"), router: r,
		topics: map[string]string{}, slots: make(chan struct{}, cfg.Connections*cfg.ReceiveMaximum)}
	for _, t := range topics.All() {
		c.topics[t.Name] = cfg.TopicPrefix + t.Name
	}
	c.cmdTopic, _ = parseTemplate(cfg.Commands.Topic)
	c.deltaTopic, _ = parseTemplate(cfg.Shadow.DeltaTopic)
	c.m = newMetrics(o.reg)
	if cfg.Shadow.Enabled {
		c.shadow, err = shadow.New(shadow.Config{Group: cfg.Shadow.Group, TopicPrefix: cfg.TopicPrefix, OfflineAfter: cfg.Shadow.OfflineAfter.D(),
			CheckInterval: cfg.Shadow.CheckInterval.D(), Tenant: shared.Tenant},
			func(ctx context.Context, deviceID string, body []byte) error {
				return c.PublishDevice(ctx, "delta", deviceID, body)
			},
			c.log, o.reg)
		if err != nil {
			return nil, fmt.Errorf("connectors.mqtt.shadow: %w", err)
		}
	}
	if o.health != nil {
		o.health.NotReady("mqtt")
	}
	return c, nil
}

// Name implements runtime.Role.
func (c *Connector) Name() string { return "mqtt" }

// Topic returns the Kafka topic name the connector uses for catalog topic
// name (with Config.TopicPrefix).
func (c *Connector) Topic(name string) string { return c.cfg.TopicPrefix + name }

// Filters returns the MQTT subscription filters (without the $share prefix).
func (c *Connector) Filters() []string { return append([]string(nil), c.router.filters...) }

// Run connects, ingests and dispatches until ctx is done, then stops intake
// and drains within the drain timeout: pending Kafka records are flushed and
// their MQTT messages acknowledged; whatever is not acknowledged stays
// queued in the broker session and is delivered again on the next start.
func (c *Connector) Run(ctx context.Context) error {
	if c.ran.Swap(true) {
		return errors.New("mqtt connector: Run called twice")
	}
	kcl, err := kafka.NewClient(c.shared.Kafka, c.o.kopts...)
	if err != nil {
		return err
	}
	c.kcl = kcl
	defer kcl.Close()

	brokerURL, tlsCfg, err := c.brokerURL()
	if err != nil {
		return err
	}
	connCtx, cancelConn := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConn()
	for i := 0; i < c.cfg.Connections; i++ {
		cm, err := autopaho.NewConnection(connCtx, c.clientConfig(i, brokerURL, tlsCfg))
		if err != nil {
			return fmt.Errorf("connecting to mqtt broker %s: %w", brokerURL.Redacted(), err)
		}
		c.cms = append(c.cms, cm)
	}
	awaitCtx, cancelAwait := context.WithTimeout(ctx, 30*time.Second)
	for _, cm := range c.cms {
		if err := cm.AwaitConnection(awaitCtx); err != nil {
			cancelAwait()
			c.disconnect()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("connecting to mqtt broker %s: %w", brokerURL.Redacted(), err)
		}
	}
	cancelAwait()
	c.log.Info("mqtt connected", "broker", brokerURL.Redacted(), "connections", len(c.cms), "filters", c.router.filters, "share_group", c.cfg.ShareGroup)
	if c.o.health != nil {
		c.o.health.Set("mqtt", nil)
	}

	g, gctx := errgroup.WithContext(ctx)
	if c.cfg.Commands.Enabled {
		g.Go(func() error { return c.runCommands(gctx) })
	}
	if c.shadow != nil {
		g.Go(func() error { return c.shadow.Run(gctx, c.shared.Kafka) })
	}
	<-gctx.Done()
	runErr := g.Wait()

	// Stop intake: messages that arrive from now on are left unacknowledged
	// (the broker redelivers them to the next session).
	c.stopping.Store(true)
	dctx, cancel := runtime.DrainContext(ctx, c.shared.DrainTimeout)
	defer cancel()
	if err := kcl.Flush(dctx); err != nil {
		c.log.Warn("flushing kafka at shutdown", "err", err)
	}
	// Acks are sent by paho's ack loop every 50ms; give it one round.
	select {
	case <-time.After(120 * time.Millisecond):
	case <-dctx.Done():
	}
	c.disconnect()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

func (c *Connector) disconnect() {
	var wg sync.WaitGroup
	for _, cm := range c.cms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = cm.Disconnect(dctx)
		}()
	}
	wg.Wait()
}

func (c *Connector) brokerURL() (*url.URL, *tls.Config, error) {
	u, err := url.Parse(c.shared.MQTT.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtt.url %q: %w", c.shared.MQTT.URL, err)
	}
	switch u.Scheme {
	case "tcp":
		u.Scheme = "mqtt"
	case "ssl", "tls", "mqtts":
		u.Scheme = "tls"
	}
	var tc *tls.Config
	if c.shared.MQTT.TLS.Enabled || u.Scheme == "tls" || u.Scheme == "wss" {
		tc, err = kafka.TLSConfig(c.shared.MQTT.TLS)
		if err != nil {
			return nil, nil, fmt.Errorf("mqtt.tls: %w", err)
		}
		if u.Scheme == "mqtt" {
			u.Scheme = "tls"
		}
	}
	return u, tc, nil
}

func (c *Connector) clientConfig(i int, u *url.URL, tc *tls.Config) autopaho.ClientConfig {
	id := fmt.Sprintf("%s-%d", c.cfg.ClientID, i)
	recvMax := uint16(c.cfg.ReceiveMaximum)
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        tc,
		KeepAlive:                     uint16(c.cfg.KeepAlive.D() / time.Second),
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(c.cfg.SessionExpiry.D() / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(200*time.Millisecond, 10*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               c.shared.MQTT.Username,
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = &recvMax
			return cp, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			c.m.connections.Inc()
			if c.up.Add(1) == 1 && c.o.health != nil {
				c.o.health.Set("mqtt", nil)
			}
			c.log.Info("mqtt session up", "client_id", id, "session_present", ca.SessionPresent)
			// Subscribing again is harmless when the session kept the
			// subscription, and needed when it did not.
			go c.subscribe(cm, id)
		},
		OnConnectionDown: func() bool {
			c.m.connections.Dec()
			if c.up.Add(-1) == 0 && c.o.health != nil {
				c.o.health.Set("mqtt", errors.New("no mqtt session is up"))
			}
			c.m.connectionLost.Inc()
			return true
		},
		OnConnectError: func(err error) {
			c.m.connectFailed.Inc()
			c.log.Warn("mqtt connect failed", "client_id", id, "err", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   id,
			EnableManualAcknowledgment: true,
			// Acks leave in batches: every 10 ms (3 ms before) the
			// PUBACKs due go out in one write. With 16 sessions the
			// longer interval cut the connector's CPU per message by
			// a fifth in one pair of runs (bench/README.md); the broker
			// frees a message 10 ms later, which latency does not see.
			SendAcksInterval: 10 * time.Millisecond,
			// A PINGRESP late behind the broker's backlog must not drop a
			// session that is receiving data (pinger.go).
			PingHandler:       newLivenessPinger(),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){c.onPublish},
			OnClientError: func(err error) {
				c.log.Warn("mqtt client error", "client_id", id, "err", err)
			},
		},
	}
	if env := c.shared.MQTT.PasswordEnv; env != "" {
		cc.ConnectPassword = []byte(os.Getenv(env))
	}
	if u.Scheme == "mqtt" || u.Scheme == "tls" {
		// TCP and TLS connections coalesce their writes: the PUBACKs paho
		// sends every SendAcksInterval leave in one system call instead of
		// one each (internal/coalesce). WebSocket URLs keep autopaho's own
		// dialer.
		cc.AttemptConnection = dialCoalesced
	}
	return cc
}

// dialCoalesced dials u as autopaho would for the mqtt and tls schemes
// (without its all_proxy support), within cfg.ConnectTimeout, and wraps the
// connection in a coalesce.Conn.
func dialCoalesced(ctx context.Context, cfg autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var (
		conn net.Conn
		err  error
	)
	switch u.Scheme {
	case "mqtt":
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", u.Host)
	case "tls":
		d := tls.Dialer{Config: cfg.TlsCfg}
		conn, err = d.DialContext(dctx, "tcp", u.Host)
	default:
		return nil, fmt.Errorf("dialing mqtt broker %s: scheme %q has no coalescing dialer", u.Redacted(), u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("dialing mqtt broker %s: %w", u.Redacted(), err)
	}
	return coalesce.New(conn), nil
}

func (c *Connector) subscribe(cm *autopaho.ConnectionManager, id string) {
	subs := make([]paho.SubscribeOptions, 0, len(c.router.filters))
	for _, f := range c.router.filters {
		if c.cfg.ShareGroup != "" {
			f = "$share/" + c.cfg.ShareGroup + "/" + f
		}
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: byte(c.cfg.QoS)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		c.log.Error("mqtt subscribe failed", "client_id", id, "err", err)
	}
}

// delivery tracks the records made from one MQTT message; the message is
// acknowledged when the last one succeeded.
type delivery struct {
	c       *Connector
	pr      paho.PublishReceived
	pending atomic.Int32
	failed  atomic.Bool
	start   time.Time
}

func (d *delivery) done(r *kgo.Record, err error) {
	if err != nil {
		// This is franz-go's promise goroutine, which must not wait for
		// another produce: the dead letter's own promise would queue
		// behind this one, and every later promise of the process with
		// it. The replacement is produced on its own goroutine, which
		// settles the message when it is done.
		go func() {
			if !d.c.deadLetterProduceFailure(d, r, err) {
				d.failed.Store(true)
			}
			d.settle()
		}()
		return
	}
	d.settle()
}

// settle counts one record of the message as done; the last one acks the
// message, unless a record failed for good without a dead letter.
func (d *delivery) settle() {
	if d.pending.Add(-1) != 0 {
		return
	}
	d.c.m.inflight.Dec()
	<-d.c.slots
	if d.failed.Load() {
		// Not acknowledged: the broker redelivers it to the next session.
		d.c.m.unacked.Inc()
		return
	}
	if d.pr.Packet.QoS > 0 {
		if err := d.pr.Client.Ack(d.pr.Packet); err != nil {
			d.c.m.unacked.Inc()
			return
		}
	}
	d.c.m.ackLatency.Observe(time.Since(d.start).Seconds())
}

// deadLetterProduceFailure replaces a record Kafka refused for good (too
// large, invalid) by a dead letter, so the message can be acknowledged.
// Cancellation and shutdown are not refusals: the message stays unacked.
func (c *Connector) deadLetterProduceFailure(d *delivery, r *kgo.Record, err error) bool {
	c.m.produceFailed.Inc()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) || c.stopping.Load() {
		return false
	}
	if r.Topic == c.topics[topics.DeadLetters] {
		c.log.Error("producing dead letter failed", "topic", r.Topic, "err", err)
		return false
	}
	src := payload.Source{Topic: d.pr.Packet.Topic}
	out := payload.DeadLetter(src, d.pr.Packet.Payload, payload.Options{Tenant: c.shared.Tenant, Now: c.o.now()},
		&payload.Error{Reason: payload.ReasonProduceFailed, Err: fmt.Errorf("producing to %s: %w", r.Topic, err)})
	rec, merr := c.record(out)
	if merr != nil {
		return false
	}
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if perr := c.kcl.ProduceSync(pctx, rec).FirstErr(); perr != nil {
		c.log.Error("producing dead letter failed", "topic", rec.Topic, "err", perr)
		return false
	}
	c.m.rejected.WithLabelValues(string(payload.ReasonProduceFailed)).Inc()
	return true
}

func (c *Connector) record(o payload.Out) (*kgo.Record, error) {
	b, err := o.Encoded()
	if err != nil {
		return nil, fmt.Errorf("encoding %s record: %w", o.Topic, err)
	}
	return &kgo.Record{Topic: c.topics[o.Topic], Key: []byte(o.Key), Value: b}, nil
}

// onPublish runs on paho's single router goroutine per connection; it
// blocks in Produce when the Kafka buffer is full, which stops reading from
// that connection (QoS 0 backpressure).
func (c *Connector) onPublish(pr paho.PublishReceived) (bool, error) {
	if c.stopping.Load() {
		return true, nil
	}
	p := pr.Packet
	c.slots <- struct{}{} // released in delivery.done
	c.m.received.Inc()
	d := &delivery{c: c, pr: pr, start: time.Now()}
	rt, src, ok := c.router.match(p.Topic)
	opts := payload.Options{Tenant: c.shared.Tenant, Tenants: c.shared.Tenants, MaxBytes: c.cfg.MaxPayloadBytes, MaxAge: c.cfg.MaxEventAge.D(),
		MaxSkew: c.cfg.MaxClockSkew.D(), Now: c.o.now(), BatchRecords: c.cfg.BatchRecords}
	var outs []payload.Out
	switch {
	case !ok:
		outs = []payload.Out{payload.DeadLetter(src, p.Payload, opts, &payload.Error{Reason: payload.ReasonUnknownTopic,
			Err: fmt.Errorf("topic %q matches no route", p.Topic)})}
	case rt.ignore:
		c.m.ignored.Inc()
		d.pending.Store(1)
		c.m.inflight.Inc()
		d.done(nil, nil)
		return true, nil
	case rt.typ == TypeCommandAck:
		outs = c.commandAck(src, p.Payload, opts)
	default:
		outs = payload.Decode(payload.Type(rt.typ), src, p.Payload, opts)
	}
	recs := make([]*kgo.Record, 0, len(outs))
	for _, o := range outs {
		if o.Reason != "" {
			c.m.rejected.WithLabelValues(string(o.Reason)).Inc()
		}
		if o.Value != nil {
			c.m.batchEncoded.Inc()
		}
		rec, err := c.record(o)
		if err != nil {
			rec, _ = c.record(payload.DeadLetter(src, p.Payload, opts, &payload.Error{Reason: payload.ReasonInvalidValue, Err: err}))
			c.m.rejected.WithLabelValues(string(payload.ReasonInvalidValue)).Inc()
		}
		recs = append(recs, rec)
	}
	c.m.records.Add(float64(len(recs)))
	d.pending.Store(int32(len(recs)))
	c.m.inflight.Inc()
	for _, r := range recs {
		c.kcl.Produce(context.Background(), r, d.done)
	}
	return true, nil
}

// PublishDevice publishes body at QoS 1 on device deviceID's command topic
// (which == "commands") or shadow delta topic (which == "delta"). It blocks
// until the broker acknowledged it, trying the next session when one fails.
// It is safe for concurrent use while Run runs.
func (c *Connector) PublishDevice(ctx context.Context, which, deviceID string, body []byte) error {
	t := c.cmdTopic
	if which == "delta" {
		t = c.deltaTopic
	}
	if deviceID == "" || strings.ContainsAny(deviceID, "+#/") {
		return fmt.Errorf("device id %q cannot name an mqtt topic", deviceID)
	}
	topic := t.expand(deviceID)
	var lastErr error
	for _, cm := range c.cms {
		if c.stopping.Load() {
			return errors.New("mqtt connector is stopping")
		}
		resp, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: body})
		if err == nil {
			if resp != nil && resp.ReasonCode >= 0x80 {
				return fmt.Errorf("publishing to %s: broker reason code %d", topic, resp.ReasonCode)
			}
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("publishing to %s: %w", topic, lastErr)
}

// produceSync produces msgs and waits for Kafka.
func (c *Connector) produceSync(ctx context.Context, outs ...payload.Out) error {
	recs := make([]*kgo.Record, 0, len(outs))
	for _, o := range outs {
		r, err := c.record(o)
		if err != nil {
			return err
		}
		recs = append(recs, r)
	}
	return c.kcl.ProduceSync(ctx, recs...).FirstErr()
}

// Kafka returns the connector's Kafka client while it runs (the shadow
// processor produces through it).
func (c *Connector) Kafka() *kgo.Client { return c.kcl }

// Tenant is the default tenant.
func (c *Connector) Tenant() string { return c.shared.Tenant }

// marshal is codec.Marshal for callers in this package.
func marshal(m proto.Message) ([]byte, error) { return codec.Marshal(m) }
