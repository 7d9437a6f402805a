package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Stages the harness can drive.
const (
	StageAll   = "all"   // MQTT broker -> connector -> Kafka -> processors -> sink -> ClickHouse
	StageMQTT  = "mqtt"  // MQTT broker -> connector -> Kafka
	StageKafka = "kafka" // Kafka -> processors -> sink -> ClickHouse
	StageSink  = "sink"  // Kafka -> sink -> ClickHouse
)

// Options configure one run.
type Options struct {
	// Scenario is the load.
	Scenario *Scenario
	// Root is the base topology; the run writes a copy with its own
	// tenant, ClickHouse database and (where every role supports it) topic
	// prefix and consumer groups into Out/topology.yaml.
	Root *config.Root
	// RootPath is the base topology file (copied with overrides).
	RootPath string
	// Config is the bench section.
	Config Config
	// Stage is one of StageAll, StageMQTT, StageKafka, StageSink.
	Stage string
	// Duration of the sending phase; 0 uses Messages or the scenario's.
	Duration time.Duration
	// Messages stops sending after this many telemetry readings (0: none).
	Messages int64
	// Forever sends until ctx is cancelled (demo mode).
	Forever bool
	// Shared runs in the topology's own tenant, database and topics
	// (demo mode) instead of isolated ones.
	Shared bool
	// Out is the results directory.
	Out string
	// Binary is the wardstream executable started for roles.
	Binary string
	// Roles is "auto" (the stage's roles as child processes), "none"
	// (roles already run elsewhere, e.g. on a real cluster) or a comma
	// list.
	Roles string
	// RepoRoot finds the local services' pid files (optional).
	RepoRoot string
	// Progress receives the live progress line (nil: none).
	Progress io.Writer
	// Log is the logger (nil discards).
	Log *slog.Logger
}

// stageRoles are the roles each stage needs, in start order (consumers
// first, so nothing produced is waiting for a consumer to appear).
func stageRoles(stage string, cameras bool) []string {
	switch stage {
	case StageMQTT:
		return []string{"mqtt"}
	case StageKafka:
		return []string{"sink", "processors"}
	case StageSink:
		return []string{"sink"}
	}
	r := []string{"sink", "processors", "mqtt"}
	if cameras {
		r = append(r, "rtsp")
	}
	return r
}

// roleIsolation returns the topology overrides that keep role's run
// apart from everything else on the same servers: always are needed even
// on shared topics (a run must never share MQTT client ids or a shared
// subscription group with another connector, or the broker would hand it
// half the messages or kick a session); prefixed point the role at the
// run's topic prefix and consumer groups. ok is false for a role whose
// section has no topic prefix (its strict decoding would reject the key).
func roleIsolation(role, prefix, runID string) (always, prefixed []override, ok bool) {
	switch role {
	case "mqtt":
		return []override{
				{path: []string{"connectors", "mqtt", "client_id"}, value: "bench-" + runID + "-mqtt"},
				{path: []string{"connectors", "mqtt", "share_group"}, value: "bench-" + runID},
				// The run's broker sessions must not outlive it: an expired
				// session stops queueing every device message for a day.
				{path: []string{"connectors", "mqtt", "session_expiry"}, value: "2m"},
			}, []override{
				{path: []string{"connectors", "mqtt", "topic_prefix"}, value: prefix},
				{path: []string{"connectors", "mqtt", "commands", "group"}, value: "bench-" + runID + "-commands"},
				{path: []string{"connectors", "mqtt", "shadow", "group"}, value: "bench-" + runID + "-shadows"},
			}, true
	case "processors":
		// The prefix covers every topic and goka group (and so table) name.
		return nil, []override{{path: []string{"pipelines", "topic_prefix"}, value: prefix}}, true
	case "rtsp":
		// The prefix covers the camera topics and the correlation group.
		return nil, []override{{path: []string{"connectors", "rtsp", "topic_prefix"}, value: prefix}}, true
	case "sink":
		return nil, []override{
			{path: []string{"sinks", "clickhouse", "topic_prefix"}, value: prefix},
			{path: []string{"sinks", "clickhouse", "group"}, value: "bench-" + runID + "-sink"},
		}, true
	}
	return nil, nil, false
}

// override sets a scalar (or, with node, any YAML value) at a path of the
// topology.
type override struct {
	path  []string
	value string
	node  *yaml.Node
}

// Run executes one bench run and returns its results (also written to
// opts.Out unless Out is empty). A run whose required roles could not
// start returns an error together with the partial results.
func Run(ctx context.Context, opts Options) (*Results, error) {
	h, err := newHarness(opts)
	if err != nil {
		return nil, err
	}
	res, err := h.run(ctx)
	if res != nil && opts.Out != "" {
		if werr := res.Write(opts.Out); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return res, err
}

type harness struct {
	o      Options
	sc     *Scenario
	log    *slog.Logger
	runID  string
	tenant string
	db     string
	prefix string
	cfg    string // generated topology path
	res    *Results
	start  time.Time
	c      counters

	cams   *syntheticCameras
	adm    *kadm.Client
	kcl    *kgo.Client
	obs    *Observer
	kobs   *kafkaObserver
	roles  []*Proc
	svcs   []*Proc
	failed map[string]bool
	// mqttSessions are the broker sessions of the run's connector (its
	// client ids), ended when the harness stops it (see endMQTTSessions).
	mqttSessions []string

	// telemetryEnd is when telemetry stopped; sentAtTelemetryEnd the sent
	// count then (the rates' window, without trailing pillcase messages).
	telemetryEnd       time.Time
	sentAtTelemetryEnd int64
	// preSent is the sent count when the timed phase began (the load
	// phase's intakes; 0 without history preload): the timed phase's
	// rates and timeline count from it.
	preSent int64

	// failedPumps are the pumps that sent PUMP_FAILURE; h.mu.
	failedPumps map[string]bool
	// abort is why the run stopped early (a required role died); h.mu.
	abort error

	mu          sync.Mutex
	outstanding map[string]probe
	// resolution is the coarsest probe interval used (probeInterval).
	resolution time.Duration
	latencies  []float64
	// afterWarmup: latencies of probes with event time >= start + warmup.
	afterWarmup []float64
	// ackLatencies: probes' event time -> first hop's ack (ms); h.mu.
	ackLatencies []float64
	intervalLat  []float64
	fleet        *Fleet
}

func newHarness(o Options) (*harness, error) {
	switch o.Stage {
	case StageAll, StageMQTT, StageKafka, StageSink:
	default:
		return nil, fmt.Errorf("stage %q is not all, mqtt, kafka or sink", o.Stage)
	}
	if o.Scenario == nil || o.Root == nil {
		return nil, errors.New("bench: scenario and topology are required")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rb [3]byte
	_, _ = rand.Read(rb[:])
	runID := "b" + time.Now().UTC().Format("0102150405") + hex.EncodeToString(rb[:])
	h := &harness{o: o, sc: o.Scenario, log: log, runID: runID, outstanding: map[string]probe{}, failed: map[string]bool{}}
	if o.Shared {
		h.tenant, h.db = o.Root.Tenant, o.Root.ClickHouse.Database
	} else {
		h.tenant, h.db = "bench-"+runID, o.Config.DatabasePrefix+runID
	}
	return h, nil
}

// brokerWarmAge: a local Kafka broker younger than this at the start of a
// run gets a note (its JVM compiles the hot paths during the first runs).
const brokerWarmAge = 5 * time.Minute

func (h *harness) note(format string, a ...any) {
	h.res.Notes = append(h.res.Notes, fmt.Sprintf(format, a...))
}

func (h *harness) run(ctx context.Context) (*Results, error) {
	o, sc := h.o, h.sc
	h.res = &Results{RunID: h.runID, Scenario: sc.Name, Stage: o.Stage, Tenant: h.tenant, Database: h.db, Transport: sc.Transport, Rate: sc.Rate}
	if o.Stage == StageMQTT {
		h.res.Database = ""
	}
	if o.Out != "" {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", o.Out, err)
		}
	}
	roles := h.roleList()
	if contains(roles, "rtsp") && sc.Cameras.Count > 0 {
		logDir := o.Out
		if logDir == "" {
			logDir = os.TempDir()
		}
		cams, err := startSyntheticCameras(ctx, h.runID, sc.Cameras.Count, sc.Cameras.FPS, logDir)
		if err != nil {
			h.note("cameras: %v", err)
		} else {
			h.cams = cams
			defer cams.stop()
		}
	}
	if o.Forever && o.Shared {
		// Demo mode: the topology's local cameras have no real source.
		logDir := o.Out
		if logDir == "" {
			logDir = os.TempDir()
		}
		fps := sc.Cameras.FPS
		if fps == 0 {
			fps = 5
		}
		cams, ids, err := TopologyCameras(ctx, o.Root, fps, logDir)
		switch {
		case err != nil:
			h.note("cameras: %v", err)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "bench: synthetic cameras not served: %v\n", err)
			}
		case cams != nil:
			defer cams.stop()
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "bench: serving synthetic camera streams for %s (ffmpeg H.264, a red box walking)\n", strings.Join(ids, ", "))
			}
		}
	}
	if err := h.isolation(roles); err != nil {
		return h.res, err
	}
	var err error
	h.kcl, err = kafka.NewClient(o.Root.Kafka, kgo.MaxBufferedRecords(max(o.Root.Kafka.MaxBufferedRecords, 10000)))
	if err != nil {
		return h.res, err
	}
	defer h.kcl.Close()
	h.adm = kadm.NewClient(h.kcl)
	if err := h.applyTopics(ctx); err != nil {
		return h.res, err
	}
	if o.Stage != StageMQTT {
		h.obs, err = OpenObserver(ctx, o.Root.ClickHouse, passwordOf(o.Root.ClickHouse.PasswordEnv), h.db, h.tenant, h.runID)
		if err != nil {
			return h.res, err
		}
		defer h.obs.Close()
		h.obs.CountFromParts(!o.Shared && !o.Root.ClickHouse.Sharded)
		if _, err := h.obs.Migrate(ctx, o.Root.ClickHouse.Cluster); err != nil {
			return h.res, err
		}
	}
	defer h.cleanup()
	if err := h.startRoles(ctx, roles); err != nil {
		return h.res, err
	}
	defer h.stopRoles()
	if o.Stage == StageMQTT {
		h.kobs, err = newKafkaObserver(ctx, o.Root.Kafka, h.adm, h.prefix, h.tenant, topics.Vitals, topics.VitalsBatches, topics.Intake, topics.DeadLetters)
		if err != nil {
			return h.res, err
		}
		kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
		defer kcancel()
		go h.kobs.run(kctx)
	}
	return h.res, h.drive(ctx)
}

func (h *harness) roleList() []string {
	switch strings.TrimSpace(h.o.Roles) {
	case "", "auto":
		return stageRoles(h.o.Stage, h.sc.Cameras.Count > 0)
	case "none":
		return nil
	}
	var out []string
	for _, r := range strings.Split(h.o.Roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// isolation writes the run's topology: its tenant, its database and, when
// every role supports it, its topic prefix and consumer groups.
func (h *harness) isolation(roles []string) error {
	var ovs []override
	if !h.o.Shared {
		ovs = append(ovs, override{path: []string{"tenant"}, value: h.tenant}, override{path: []string{"clickhouse", "database"}, value: h.db})
		prefix := "bench." + h.runID + "."
		prefixOK := len(roles) > 0
		var prefixed []override
		var lacking []string
		for _, r := range roles {
			always, pre, ok := roleIsolation(r, prefix, h.runID)
			ovs = append(ovs, always...)
			switch {
			case ok:
				prefixed = append(prefixed, pre...)
			default:
				prefixOK = false
				lacking = append(lacking, r)
			}
		}
		if prefixOK {
			h.prefix = prefix
			ovs = append(ovs, prefixed...)
		} else if len(roles) > 0 {
			h.note("topics: shared catalog topics and consumer groups (role(s) %s have no topic_prefix setting): another instance of those roles on the same servers would split the run's partitions; the run is isolated by tenant %q, device ids, MQTT client ids and ClickHouse database %q", strings.Join(lacking, ","), h.tenant, h.db)
		}
	}
	if h.o.Out == "" {
		h.cfg = h.o.RootPath
		return nil
	}
	data, err := os.ReadFile(h.o.RootPath)
	if err != nil {
		return fmt.Errorf("reading topology: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parsing topology %s: %w", h.o.RootPath, err)
	}
	ovs = append(ovs, h.cameraOverrides()...)
	conns := 4 // connectors/mqtt's default
	if v, ok := getPath(&doc, []string{"connectors", "mqtt", "connections"}); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			conns = n
		}
	}
	for _, ov := range ovs {
		if len(ov.path) == 3 && ov.path[0] == "connectors" && ov.path[1] == "mqtt" && ov.path[2] == "client_id" {
			for i := range conns {
				h.mqttSessions = append(h.mqttSessions, fmt.Sprintf("%s-%d", ov.value, i))
			}
		}
	}
	for _, ov := range ovs {
		if ov.node != nil {
			setNode(&doc, ov.path, ov.node)
			continue
		}
		setPath(&doc, ov.path, ov.value)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("encoding run topology: %w", err)
	}
	h.cfg = filepath.Join(h.o.Out, "topology.yaml")
	if err := os.WriteFile(h.cfg, out, 0o644); err != nil {
		return fmt.Errorf("writing run topology: %w", err)
	}
	return nil
}

// getPath returns the scalar at path in a YAML document.
func getPath(doc *yaml.Node, path []string) (string, bool) {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		var child *yaml.Node
		for j := 0; n.Kind == yaml.MappingNode && j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				child = n.Content[j+1]
				break
			}
		}
		if child == nil {
			return "", false
		}
		n = child
	}
	return n.Value, n.Kind == yaml.ScalarNode
}

// setPath sets a scalar at path in a YAML document, creating mappings.
func setPath(doc *yaml.Node, path []string, value string) {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			n.Content = []*yaml.Node{{Kind: yaml.MappingNode}}
		}
		n = n.Content[0]
	}
	for i, key := range path {
		var child *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				child = n.Content[j+1]
				break
			}
		}
		last := i == len(path)-1
		if child == nil {
			child = &yaml.Node{Kind: yaml.MappingNode}
			if last {
				child = &yaml.Node{Kind: yaml.ScalarNode}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, child)
		}
		if last {
			child.Kind, child.Tag, child.Value, child.Content = yaml.ScalarNode, "!!str", value, nil
			return
		}
		if child.Kind != yaml.MappingNode {
			child.Kind, child.Tag, child.Value, child.Content = yaml.MappingNode, "", "", nil
		}
		n = child
	}
}

// setNode sets the value at path (creating mappings) to node.
func setNode(doc *yaml.Node, path []string, node *yaml.Node) {
	setPath(doc, path, "")
	n := doc.Content[0]
	for _, key := range path {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				if key == path[len(path)-1] {
					n.Content[j+1] = node
					return
				}
				n = n.Content[j+1]
				break
			}
		}
	}
}

// applyTopics creates the catalog topics (with the run's prefix).
func (h *harness) applyTopics(ctx context.Context) error {
	if h.prefix == "" {
		_, err := kafka.ApplyTopics(ctx, h.adm, h.o.Root.Kafka, h.log)
		return err
	}
	var errs []error
	for _, t := range topics.All() {
		resp, err := h.adm.CreateTopic(ctx, kafka.PartitionsFor(h.o.Root.Kafka, t), h.o.Root.Kafka.ReplicationFactor, t.Configs(), h.prefix+t.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %s: %w", h.prefix+t.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Creation is asynchronous: roles that look their topics up at start
	// (goka) fail on a topic the metadata does not show yet.
	names := make([]string, 0, len(topics.All()))
	for _, t := range topics.All() {
		names = append(names, h.prefix+t.Name)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tds, err := h.adm.ListTopics(ctx, names...)
		ready := err == nil && len(tds) == len(names)
		if ready {
			for _, td := range tds {
				if td.Err != nil || len(td.Partitions) == 0 {
					ready = false
					break
				}
				for _, p := range td.Partitions {
					if p.Err != nil || p.Leader < 0 {
						ready = false
					}
				}
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the run's topics have no leaders 30s after creation (%v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func passwordOf(env string) string {
	if env == "" {
		return ""
	}
	return os.Getenv(env)
}

// startRoles starts each role as a child process and waits for /readyz.
// A role that is not part of this build is recorded as unavailable.
func (h *harness) startRoles(ctx context.Context, roles []string) error {
	if len(roles) == 0 {
		h.note("roles: none started by the harness (--roles none); they must already run against this topology")
	}
	logDir := h.o.Out
	if logDir == "" {
		logDir = os.TempDir()
	}
	for _, r := range roles {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		p, err := StartRole(ctx, h.o.Binary, r, h.cfg, addr, logDir)
		if err != nil {
			return err
		}
		status, err := h.waitReady(ctx, p)
		h.res.Roles = append(h.res.Roles, RoleResult{Name: r, Status: status, Usage: Usage{Pid: p.Pid}})
		if err != nil {
			h.failed[r] = true
			h.note("role %s: %v", r, err)
			if h.required(r) {
				return fmt.Errorf("role %s is required by stage %s: %w", r, h.o.Stage, err)
			}
			continue
		}
		h.roles = append(h.roles, p)
	}
	for name, pid := range ServicePids(h.o.RepoRoot) {
		h.svcs = append(h.svcs, WatchPid("service "+name, pid))
		if age, err := procAge(pid); err == nil && name == "kafka" && age < brokerWarmAge {
			h.note("service kafka started %s before this run: the broker's JIT compiler is still warming up, and the first runs after `make services` measure a slower broker (bench/README.md, \"2026-12-03, 10:10\")", age.Round(time.Second))
		}
	}
	sort.Slice(h.svcs, func(i, j int) bool { return h.svcs[i].Name < h.svcs[j].Name })
	h.svcs = append(h.svcs, WatchPid("bench harness (simulator, publishers, observers)", os.Getpid()))
	return nil
}

// required says whether the stage cannot measure anything without role.
func (h *harness) required(role string) bool {
	switch role {
	case "mqtt":
		return h.o.Stage == StageAll || h.o.Stage == StageMQTT
	case "sink":
		return h.o.Stage != StageMQTT
	}
	return false
}

func (h *harness) waitReady(ctx context.Context, p *Proc) (string, error) {
	deadline := time.Now().Add(h.o.Config.StartupTimeout.D())
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if ok, err := p.Exited(); ok {
			tail := p.LogTail(3)
			if strings.Contains(tail, "not part of this build") {
				return "unavailable", fmt.Errorf("not part of this build yet: %s", lastLine(tail))
			}
			return "exited", fmt.Errorf("exited at start (%v): %s", err, lastLine(tail))
		}
		resp, err := client.Get("http://" + p.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "running", nil
			}
		}
		select {
		case <-ctx.Done():
			return "cancelled", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	_ = p.Stop(h.o.Config.StopTimeout.D())
	return "not ready", fmt.Errorf("not ready within %s: %s", h.o.Config.StartupTimeout.D(), lastLine(p.LogTail(3)))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

func (h *harness) stopRoles() {
	for i := len(h.roles) - 1; i >= 0; i-- {
		p := h.roles[i]
		p.Sample(time.Now())
		if err := p.Stop(h.o.Config.StopTimeout.D()); err != nil {
			h.note("role %s stop: %v", p.Name, err)
		}
		if p.Name == "mqtt" {
			h.endMQTTSessions()
		}
	}
	h.roles = nil
}

// endMQTTSessions ends the stopped connector's broker sessions. They are
// persistent (the run sets session_expiry to its minimum, minutes), and
// until they expire the broker queues every device message of the next
// run for this run's shared subscription, without limit on the local
// Mosquitto: back-to-back runs found it at 1.7 GB, stalling for seconds
// on each autosave (1024 publishes timed out at once). A connect with
// clean start and no session expiry, then a disconnect, removes each.
func (h *harness) endMQTTSessions() {
	ids := h.mqttSessions
	h.mqttSessions = nil
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := endSessions(ctx, h.o.Root.MQTT.URL, ids); err != nil {
		h.note("ending the connector's MQTT sessions (the broker keeps them until they expire): %v", err)
	}
}

// cleanup drops the run's database and topics unless kept.
func (h *harness) cleanup() {
	if h.o.Shared || h.o.Config.KeepDatabase {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Roles must be gone before their topics and tables go.
	h.stopRoles()
	if h.obs != nil {
		if err := h.obs.DropDatabase(ctx); err != nil {
			h.note("dropping database %s: %v", h.db, err)
		}
	}
	// Every topic and group named after the run: the prefixed catalog
	// topics and whatever the roles created (goka group tables, loopbacks).
	if tds, err := h.adm.ListTopics(ctx); err == nil {
		var names []string
		for _, t := range tds.Names() {
			if strings.Contains(t, h.runID) {
				names = append(names, t)
			}
		}
		if len(names) > 0 {
			if _, err := h.adm.DeleteTopics(ctx, names...); err != nil {
				h.note("deleting run topics: %v", err)
			}
		}
	}
	if groups, err := h.adm.ListGroups(ctx); err == nil {
		var mine []string
		for _, g := range groups.Groups() {
			if strings.Contains(g, h.runID) {
				mine = append(mine, g)
			}
		}
		if len(mine) > 0 {
			_, _ = h.adm.DeleteGroups(ctx, mine...)
		}
	}
}
