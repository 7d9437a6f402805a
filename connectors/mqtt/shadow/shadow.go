// Package shadow provides the device-shadow goka group of the mqtt role:
// one versioned shadow per device (desired state, reported state, their
// delta, online flag, last seen), kept in the group table and emitted on
// every change to the compacted shadows topic.
//
// Inputs, both keyed by device id: desired-state updates (DeviceShadow with
// Desired set, from the API or `wardstream shadow set`; a null value removes
// a key) and device status (DeviceStatus from the connector: online flag,
// reported state, last-will "offline"). Whenever the delta (desired keys
// whose value differs from the reported one) changes, or a device with a
// delta comes back online, the delta is pushed to the device through the
// injected [Publisher] (the connector publishes it at QoS 1 on
// medical/devices/{deviceId}/shadow/delta as {"version", "state",
// "timestamp"}).
//
// Offline detection: the role calls the group's visitor [VisitClock] every
// check interval through goka.Processor.VisitAll; it runs inside each
// partition's goroutine over the partition's table, so restarts and
// rebalances need no timer hand-over. A device marked online whose last
// status is older than the offline interval is marked offline, and a
// DeviceStatus{online:false, status:"silent"} is emitted on the status topic
// with a deterministic event id.
//
// It does not deliver commands (the connector does) and does not decide
// alerts (pipelines/alerts turns offline status into DEVICE_OFFLINE).
package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/gokaprod"
	"github.com/wardstream/wardstream/internal/gokastore"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/internal/kafkahash"
	"github.com/wardstream/wardstream/internal/telemetry"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Source is the Meta.Source of records the group emits.
const Source = "connectors/mqtt/shadow"

// VisitClock is the name of the offline-detection visitor; its meta is the
// current time in Unix ms (int64).
const VisitClock = "clock"

// StatusSilent is DeviceStatus.Status of offline reports made from silence.
const StatusSilent = "silent"

// Publisher pushes a shadow delta (JSON) to a device.
type Publisher func(ctx context.Context, deviceID string, body []byte) error

// Config configures the group.
type Config struct {
	// Group is the goka group (its table is "<group>-table").
	Group string
	// TopicPrefix prefixes the catalog topic names.
	TopicPrefix string
	// OfflineAfter is the silence after which a device is offline.
	OfflineAfter time.Duration
	// CheckInterval is how often silence is checked.
	CheckInterval time.Duration
	// Tenant is the default tenant of emitted records.
	Tenant string
	// Now is the clock (default time.Now; tests inject one).
	Now func() time.Time
}

// Processor is the shadow group.
type Processor struct {
	cfg     Config
	log     *slog.Logger
	publish Publisher
	now     func() time.Time
	m       metrics
}

type metrics struct {
	updates *prometheus.CounterVec
	pushes  *prometheus.CounterVec
	offline prometheus.Counter
}

// New builds the processor; publish may be nil (no delta push). It does no I/O.
func New(cfg Config, publish Publisher, log *slog.Logger, reg prometheus.Registerer) (*Processor, error) {
	if cfg.Group == "" {
		cfg.Group = cfg.TopicPrefix + topics.GroupShadows
	}
	if cfg.OfflineAfter <= 0 || cfg.CheckInterval <= 0 {
		return nil, errors.New("shadow: offline_after and check_interval must be positive")
	}
	p := &Processor{cfg: cfg, log: telemetry.OrDiscard(log).With("component", Source), publish: publish, now: cfg.Now}
	if p.now == nil {
		p.now = time.Now
	}
	p.m = metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_mqtt_shadow_updates_total", Help: "Shadow changes, by cause (desired, reported, online, offline)."}, []string{"cause"}),
		pushes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wardstream_mqtt_shadow_delta_pushes_total", Help: "Shadow deltas pushed to devices, by result."}, []string{"result"}),
		offline: prometheus.NewCounter(prometheus.CounterOpts{Name: "wardstream_mqtt_devices_offline_detected_total", Help: "Devices reported offline after silence."}),
	}
	if reg != nil {
		reg.MustRegister(p.m.updates, p.m.pushes, p.m.offline)
	}
	return p, nil
}

func (p *Processor) topic(name string) goka.Stream { return goka.Stream(p.cfg.TopicPrefix + name) }

// Graph is the goka group graph.
func (p *Processor) Graph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(p.cfg.Group),
		goka.Input(p.topic(topics.ShadowDesired), codec.NewGoka(func() *pb.DeviceShadow { return &pb.DeviceShadow{} }), p.onDesired),
		goka.Input(p.topic(topics.DeviceStatus), codec.NewGoka(func() *pb.DeviceStatus { return &pb.DeviceStatus{} }), p.onStatus),
		goka.Visitor(VisitClock, p.onClock),
		goka.Persist(codec.NewGoka(func() *pb.DeviceShadow { return &pb.DeviceShadow{} })),
		goka.Output(p.topic(topics.Shadows), codec.NewGoka(func() *pb.DeviceShadow { return &pb.DeviceShadow{} })),
		// Offline reports go to the status topic for downstream stages
		// (alerts, the sink). The group consumes them too and finds the
		// device already offline.
		goka.Output(p.topic(topics.DeviceStatus), codec.NewGoka(func() *pb.DeviceStatus { return &pb.DeviceStatus{} })),
	)
}

// Run runs the group on the cluster of kcfg until ctx is done, visiting the
// clock every check interval.
func (p *Processor) Run(ctx context.Context, kcfg config.Kafka) error {
	sc, err := kafka.SaramaConfig(kcfg)
	if err != nil {
		return err
	}
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = int(kcfg.ReplicationFactor)
	tmc.Stream.Replication = int(kcfg.ReplicationFactor)
	// A topic created a moment ago (by `wardstream topics`, a test, or
	// another role starting at the same time) may not be in every broker's
	// metadata yet, and goka fails on a topic it cannot see: try again for
	// a while before giving up.
	var proc *goka.Processor
	for deadline := time.Now().Add(30 * time.Second); ; {
		proc, err = goka.NewProcessor(kcfg.Brokers, p.Graph(),
			goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
			goka.WithProducerBuilder(gokaprod.Builder(kcfg)),
			goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
			goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tmc)),
			goka.WithStorageBuilder(gokastore.Builder()),
			goka.WithLogger(gokaLogger{p.log}),
			// Devices' records are keyed and partitioned by franz-go
			// (Kafka's default partitioner): the table and the status
			// records this group writes must land in the same partitions.
			goka.WithHasher(kafkahash.New),
		)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("creating shadow processor %s: %w", p.cfg.Group, err)
		}
		p.log.Info("shadow processor not ready, retrying", "group", p.cfg.Group, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.cfg.CheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !proc.Recovered() {
					continue
				}
				if err := proc.VisitAll(ctx, VisitClock, p.now().UnixMilli()); err != nil && ctx.Err() == nil {
					p.log.Warn("shadow clock visit failed", "err", err)
				}
			}
		}
	}()
	err = proc.Run(ctx)
	<-done
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shadow processor %s: %w", p.cfg.Group, err)
	}
	return nil
}

func current(ctx goka.Context) *pb.DeviceShadow {
	if v, ok := ctx.Value().(*pb.DeviceShadow); ok && v != nil {
		return proto.Clone(v).(*pb.DeviceShadow)
	}
	return &pb.DeviceShadow{DeviceId: ctx.Key()}
}

func (p *Processor) onDesired(ctx goka.Context, msg any) {
	in, ok := msg.(*pb.DeviceShadow)
	if !ok || in == nil {
		return
	}
	sh := current(ctx)
	before := proto.Clone(sh).(*pb.DeviceShadow)
	if sh.Desired == nil {
		sh.Desired = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	for k, v := range in.GetDesired().GetFields() {
		if _, isNull := v.GetKind().(*structpb.Value_NullValue); isNull || v == nil {
			delete(sh.Desired.Fields, k)
		} else {
			sh.Desired.Fields[k] = v
		}
	}
	sh.DesiredUpdatedMs = in.GetDesiredUpdatedMs()
	if sh.DesiredUpdatedMs == 0 {
		sh.DesiredUpdatedMs = in.GetMeta().GetEventTimeMs()
	}
	if sh.Meta == nil && in.Meta != nil {
		sh.Meta = &pb.Meta{Tenant: in.Meta.Tenant}
	}
	p.commit(ctx, before, sh, "desired", false)
}

func (p *Processor) onStatus(ctx goka.Context, msg any) {
	st, ok := msg.(*pb.DeviceStatus)
	if !ok || st == nil {
		return
	}
	sh := current(ctx)
	before := proto.Clone(sh).(*pb.DeviceShadow)
	if sh.Meta == nil {
		sh.Meta = &pb.Meta{Tenant: st.GetMeta().GetTenant()}
	}
	if st.Status == StatusSilent {
		// Verified here, where the device's latest status is known: a
		// device heard from since the report stays online.
		if !sh.Online || p.now().UnixMilli()-sh.LastSeenMs < p.cfg.OfflineAfter.Milliseconds() {
			return
		}
		sh.Online = false
		p.commit(ctx, before, sh, "offline", false)
		return
	}
	seen := st.GetMeta().GetIngestTimeMs()
	if seen == 0 {
		seen = st.GetMeta().GetEventTimeMs()
	}
	// Received before a status already applied (the connector's sessions
	// produce independently, so a will and the next "online" can swap
	// places in Kafka): it must not set the online flag.
	late := seen > 0 && seen < sh.LastSeenMs
	if seen > sh.LastSeenMs {
		sh.LastSeenMs = seen
	}
	// A status older than the reported state (a device flushing its
	// offline buffer after a fresh status) is a sign of life, nothing
	// more: it must not take the reported state or the online flag back.
	// A status without a device time (a bare word, a JSON last will such
	// as {"status":"offline"}) is stamped by the connector with its
	// arrival time, event time = ingest time: that is the connector's
	// clock, not the device's the reported state's time is on, so it is
	// neither compared with it (the arrival order above decides) nor
	// becomes it.
	ev := st.GetMeta().GetEventTimeMs()
	deviceTime := ev > 0 && ev != st.GetMeta().GetIngestTimeMs()
	if deviceTime && ev < sh.ReportedUpdatedMs && len(st.GetReported().GetFields()) > 0 {
		p.commit(ctx, before, sh, "reported", false)
		return
	}
	online := st.Online
	if late {
		online = sh.Online
	}
	cameOnline := online && !sh.Online
	sh.Online = online
	if len(st.GetReported().GetFields()) > 0 {
		if sh.Reported == nil {
			sh.Reported = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		}
		for k, v := range st.Reported.Fields {
			sh.Reported.Fields[k] = v
		}
		if deviceTime {
			sh.ReportedUpdatedMs = ev
		}
	}
	cause := "reported"
	if cameOnline {
		cause = "online"
	} else if !online && before.Online {
		cause = "offline"
	}
	p.commit(ctx, before, sh, cause, cameOnline)
}

// onClock marks silent devices offline.
func (p *Processor) onClock(ctx goka.Context, msg any) {
	now, _ := msg.(int64)
	sh, ok := ctx.Value().(*pb.DeviceShadow)
	if !ok || sh == nil || !sh.Online || sh.LastSeenMs == 0 || now-sh.LastSeenMs < p.cfg.OfflineAfter.Milliseconds() {
		return
	}
	before := proto.Clone(sh).(*pb.DeviceShadow)
	next := proto.Clone(sh).(*pb.DeviceShadow)
	next.Online = false
	tenant := sh.GetMeta().GetTenant()
	if tenant == "" {
		tenant = p.cfg.Tenant
	}
	st := &pb.DeviceStatus{
		Meta:     &pb.Meta{Tenant: tenant, EventId: fmt.Sprintf("%s/silent/%d", sh.DeviceId, sh.LastSeenMs), EventTimeMs: now, IngestTimeMs: now, Source: Source},
		DeviceId: ctx.Key(), Online: false, Status: StatusSilent,
	}
	ctx.Emit(p.topic(topics.DeviceStatus), ctx.Key(), st)
	p.m.offline.Inc()
	p.commit(ctx, before, next, "offline", false)
}

// Delta returns the desired keys whose value differs from the reported one.
func Delta(desired, reported *structpb.Struct) *structpb.Struct {
	d := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for k, v := range desired.GetFields() {
		if r, ok := reported.GetFields()[k]; !ok || !proto.Equal(r, v) {
			d.Fields[k] = v
		}
	}
	return d
}

// commit stores and emits sh if it changed, with the next version, and
// pushes the delta when it changed (or the device came back online).
func (p *Processor) commit(ctx goka.Context, before, sh *pb.DeviceShadow, cause string, cameOnline bool) {
	sh.Delta = Delta(sh.Desired, sh.Reported)
	sh.DeviceId = ctx.Key()
	cmp := proto.Clone(sh).(*pb.DeviceShadow)
	cmp.Meta, cmp.Version, cmp.LastSeenMs = before.Meta, before.Version, before.LastSeenMs
	if proto.Equal(cmp, before) && sh.LastSeenMs == before.LastSeenMs {
		return
	}
	if proto.Equal(cmp, before) {
		// A heartbeat: stored for offline detection, not a new version and
		// not worth a record on the shadows topic.
		sh.Version, sh.Meta = before.Version, before.Meta
		ctx.SetValue(sh)
		return
	}
	sh.Version = before.Version + 1
	now := p.now().UnixMilli()
	tenant := sh.GetMeta().GetTenant()
	if tenant == "" {
		tenant = p.cfg.Tenant
	}
	sh.Meta = &pb.Meta{Tenant: tenant, EventId: fmt.Sprintf("%s/shadow/%d", sh.DeviceId, sh.Version), EventTimeMs: now, IngestTimeMs: now, Source: Source}
	ctx.SetValue(sh)
	ctx.Emit(p.topic(topics.Shadows), sh.DeviceId, sh)
	p.m.updates.WithLabelValues(cause).Inc()
	deltaChanged := !proto.Equal(sh.Delta, before.GetDelta()) && !(len(sh.Delta.GetFields()) == 0 && len(before.GetDelta().GetFields()) == 0)
	if p.publish != nil && len(sh.Delta.Fields) > 0 && (deltaChanged || cameOnline) {
		p.push(ctx.Context(), sh)
	}
}

func (p *Processor) push(ctx context.Context, sh *pb.DeviceShadow) {
	body, err := json.Marshal(map[string]any{"version": sh.Version, "state": sh.Delta.AsMap(), "timestamp": sh.Meta.EventTimeMs})
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = p.publish(pctx, sh.DeviceId, body)
		cancel()
	}
	if err != nil {
		// The delta is pushed again on the next change or reconnect; the
		// shadow topic holds it meanwhile.
		p.m.pushes.WithLabelValues("failed").Inc()
		p.log.Warn("pushing shadow delta failed", "version", sh.Version, "err", err)
		return
	}
	p.m.pushes.WithLabelValues("ok").Inc()
}

// ParseDesired turns "key=value" arguments into a desired state: values
// parse as JSON when they can (numbers, booleans, null to remove, objects),
// else they are strings.
func ParseDesired(args []string) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("desired %q is not key=value", a)
		}
		var x any
		if err := json.Unmarshal([]byte(v), &x); err != nil {
			x = v
		}
		pv, err := structpb.NewValue(x)
		if err != nil {
			return nil, fmt.Errorf("desired %q: %w", a, err)
		}
		s.Fields[k] = pv
	}
	return s, nil
}

type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any) { g.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), "source", "goka") }
func (g gokaLogger) Println(v ...any) {
	g.l.Debug(strings.TrimSpace(fmt.Sprintln(v...)), "source", "goka")
}
func (g gokaLogger) Printf(format string, v ...any) {
	g.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "goka")
}
