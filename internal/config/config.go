// Package config loads the topology YAML: the shared sections every role
// needs (Kafka, ClickHouse, MQTT broker, telemetry) and the raw sections each
// role decodes itself with [Section].
//
// Decoding is strict: unknown keys are errors, with their line number. Env
// vars WARDSTREAM_KAFKA_BROKERS, WARDSTREAM_CLICKHOUSE_ADDR and
// WARDSTREAM_MQTT_URL override the file. Validate reports every problem at
// once, each prefixed with its dotted field path.
//
// We keep role sections as yaml.Node rather than embedding role Config
// structs (the loki pattern): internal/ must not import the roles, so each
// role owns its Config/DefaultConfig/Validate and decodes its section.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPath is the topology file used when --config is not given.
const DefaultPath = "deploy/local/topology.yaml"

// Env var names that override the file.
const (
	EnvKafkaBrokers   = "WARDSTREAM_KAFKA_BROKERS"
	EnvClickHouseAddr = "WARDSTREAM_CLICKHOUSE_ADDR"
	EnvMQTTURL        = "WARDSTREAM_MQTT_URL"
)

// Duration is a time.Duration written as "15m", "1s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// A *yaml.TypeError, so that decoding goes on and the problems after
	// this one are reported too.
	var s string
	if err := n.Decode(&s); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration must be a string like 15m", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: bad duration %q (want e.g. 500ms, 15m, 4h)", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Root is the whole topology file.
type Root struct {
	// Tenant is the default tenant for records that do not name one.
	Tenant       string           `yaml:"tenant"`
	Kafka        Kafka            `yaml:"kafka"`
	ClickHouse   ClickHouse       `yaml:"clickhouse"`
	MQTT         MQTT             `yaml:"mqtt"`
	Telemetry    Telemetry        `yaml:"telemetry"`
	Process      Process          `yaml:"process"`
	DrainTimeout Duration         `yaml:"drain_timeout"`
	Tenants      []TenantConfig   `yaml:"tenants"`
	Connectors   ConnectorSection `yaml:"connectors"`
	Pipelines    yaml.Node        `yaml:"pipelines"`
	Sinks        SinkSection      `yaml:"sinks"`
	API          yaml.Node        `yaml:"api"`
	Bench        yaml.Node        `yaml:"bench"`
	Scaling      yaml.Node        `yaml:"scaling"`

	path string
}

// ConnectorSection holds the source roles' raw sections.
type ConnectorSection struct {
	MQTT yaml.Node `yaml:"mqtt"`
	RTSP yaml.Node `yaml:"rtsp"`
}

// SinkSection holds the sink roles' raw sections.
type SinkSection struct {
	ClickHouse yaml.Node `yaml:"clickhouse"`
}

// TenantConfig names a tenant and its wards.
type TenantConfig struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	Wards []string `yaml:"wards"`
}

// Kafka is the connection to the Kafka cluster, shared by every role.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`
	ClientID string   `yaml:"client_id"`
	// Partitions overrides the catalog's partition counts when > 0.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor for created topics (1 locally, 3 on clusters).
	ReplicationFactor int16 `yaml:"replication_factor"`
	// MaxBufferedRecords bounds the producer buffer; Produce blocks when full.
	MaxBufferedRecords int `yaml:"max_buffered_records"`
	// MaxBufferedBytes bounds the producer buffer in bytes.
	MaxBufferedBytes int `yaml:"max_buffered_bytes"`
	// Linger is the producer linger (batching delay).
	Linger Duration `yaml:"linger"`
	// FetchMinBytes and FetchMaxWait: a broker answers a consumer's fetch
	// once it has FetchMinBytes for it or FetchMaxWait has passed (Kafka's
	// fetch.min.bytes and fetch.max.wait.ms). The defaults, 1 byte and
	// 500ms, answer at once with whatever there is: lowest latency, but at
	// a high rate of small records every consumer sends thousands of
	// fetches a second, which costs the broker and the clients more CPU
	// than the records. Raise FetchMinBytes (e.g. 64KiB) and bound the
	// added latency with FetchMaxWait (e.g. 50ms) when CPU matters.
	FetchMinBytes int32    `yaml:"fetch_min_bytes"`
	FetchMaxWait  Duration `yaml:"fetch_max_wait"`
	// Compression is none, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
	// SaramaVersion is the protocol version goka's sarama client speaks
	// (>= 2.1.0; Kafka 4 dropped older versions).
	SaramaVersion string `yaml:"sarama_version"`
	TLS           TLS    `yaml:"tls"`
	SASL          SASL   `yaml:"sasl"`
}

// SASL is optional SASL/PLAIN or SCRAM authentication.
type SASL struct {
	Mechanism   string `yaml:"mechanism"`
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
}

// TLS is a client TLS setup; files are PEM paths.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// ClickHouse is the connection to ClickHouse.
type ClickHouse struct {
	Addr     []string `yaml:"addr"`
	Database string   `yaml:"database"`
	Username string   `yaml:"username"`
	// PasswordEnv names the env var holding the password (never in the file).
	PasswordEnv string `yaml:"password_env"`
	// Cluster, when set, makes migrations emit ON CLUSTER / Replicated*.
	Cluster string `yaml:"cluster"`
	// Sharded (needs Cluster) puts every table on several shards: local
	// replicated tables and Distributed tables over them.
	Sharded     bool     `yaml:"sharded"`
	DialTimeout Duration `yaml:"dial_timeout"`
	TLS         TLS      `yaml:"tls"`
}

// MQTT is the connection to the MQTT broker.
type MQTT struct {
	URL         string `yaml:"url"`
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
	TLS         TLS    `yaml:"tls"`
}

// Telemetry configures logs and the metrics/health endpoint.
type Telemetry struct {
	// Listen is the address of /metrics, /healthz and /readyz ("" disables).
	Listen    string `yaml:"listen"`
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
	// Pprof adds Go's /debug/pprof/ endpoints to the listener (off by
	// default: profiles reveal internals; keep the listener private).
	Pprof bool `yaml:"pprof"`
}

// Process tunes the Go runtime of every wardstream process started with
// the topology (each role process, the bench harness, the demo).
type Process struct {
	// GoMaxProcs is runtime.GOMAXPROCS: how many OS threads run Go code at
	// once. 0 keeps Go's default (the machine's CPUs, or the container's
	// CPU limit). The GOMAXPROCS environment variable, when set, wins.
	//
	// Set it to 1 where many processes share a few cores (every role,
	// server and the bench harness on one small machine): with 2, the
	// goroutines handing a message to one another wake the other thread
	// for nearly every message, and on a virtual machine those wake-ups
	// cost more than the work (bench/README.md, "GOMAXPROCS").
	GoMaxProcs int `yaml:"gomaxprocs"`
	// GOGC is the garbage collector's target percent (runtime/debug
	// SetGCPercent): heap growth over the live heap that triggers the next
	// collection. 0 keeps Go's default (100). The GOGC environment variable,
	// when set, wins. The bench harness, when neither sets it, uses 400.
	//
	// A larger value trades memory for CPU: 400 on every role took the
	// processors from 18 to 13-16 us of CPU per reading in the hospital
	// bench (bench/README.md, "2026-12-03, 09:00"); the k8s manifests set
	// GOGC=400 with a GOMEMLIMIT for the same reason.
	GOGC int `yaml:"gogc"`
	// KeepSysmonAwake keeps the Go runtime's monitor thread (sysmon) out of
	// its deep sleep. Go parks sysmon whenever every P is idle and wakes it
	// on the next syscall, after which it polls every 20 us for about a
	// millisecond. A process that turns idle and busy thousands of times a
	// second (a role handing messages on, on a saturated small machine)
	// pays two context switches per poll: sysmon took 22-29% of the MQTT
	// connector's and the bench harness's CPU at ~15k readings/s. Awake,
	// sysmon backs off to one check per 10 ms while nothing needs it.
	// Measured in the hospital bench: connector 23-28 -> 16-17 us of CPU per
	// reading, harness 19-23 -> 11-12, the whole box 121-142 -> 99-106
	// (bench/README.md, "2026-12-03, 09:00").
	//
	// The runtime has no setting for this alone: the process re-executes
	// itself once at start with GODEBUG=schedtrace=2147483647 added (sysmon
	// never deep-sleeps while a scheduler trace is due; the trace itself is
	// due every 24.8 days, so it prints at most one "SCHED" line to stderr
	// then, and a crash report gains the scheduler's state). A GODEBUG that
	// already names schedtrace is left alone. Off by default (Go's own
	// behaviour); Linux and other Unix systems only.
	KeepSysmonAwake bool `yaml:"keep_sysmon_awake"`
}

// Default returns the defaults of the shared sections.
func Default() Root {
	return Root{
		Tenant: "default",
		Kafka: Kafka{
			Brokers: []string{"127.0.0.1:9092"}, ClientID: "wardstream", ReplicationFactor: 1,
			MaxBufferedRecords: 100_000, MaxBufferedBytes: 64 << 20, Linger: Duration(5 * time.Millisecond),
			FetchMinBytes: 1, FetchMaxWait: Duration(500 * time.Millisecond),
			Compression: "lz4", SaramaVersion: "2.1.0",
		},
		ClickHouse:   ClickHouse{Addr: []string{"127.0.0.1:9000"}, Database: "wardstream", Username: "default", DialTimeout: Duration(5 * time.Second)},
		MQTT:         MQTT{URL: "tcp://127.0.0.1:1883"},
		Telemetry:    Telemetry{Listen: "127.0.0.1:9464", LogLevel: "info", LogFormat: "text"},
		DrainTimeout: Duration(15 * time.Second),
	}
}

// Load reads path, applies env overrides and validates. Errors name the
// file and the offending field.
func Load(path string) (*Root, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	r.path = path
	return r, nil
}

// Parse decodes a topology document strictly, applies env overrides and
// validates the shared sections.
func Parse(data []byte) (*Root, error) {
	r := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, errEOF(err)) {
		return nil, withPaths(cleanYAMLError(err), yamlPaths(data, 0))
	}
	r.ApplyEnv(os.Getenv)
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func errEOF(err error) error {
	if err != nil && err.Error() == "EOF" {
		return err
	}
	return errors.New("not eof")
}

var fieldNotFound = regexp.MustCompile(`line (\d+): field (\S+) not found in type (?:\S+\.(\w+)|struct \{.*\})`)

// cleanYAMLError turns yaml.v3's Go-type wording into field wording.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = fieldNotFound.ReplaceAllString(msg, "line $1: unknown field $2")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return errors.New(msg)
}

// valuePath is the dotted path of a value and, for a scalar, its text.
type valuePath struct{ path, value string }

// yamlPaths maps each line of the YAML document data to the dotted paths
// of the values on it ("kafka.linger", "tenants[1].name"), in document
// order; a flow map puts several on one line.
func yamlPaths(data []byte, shift int) map[int][]valuePath {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	m := map[int][]valuePath{}
	add := func(n *yaml.Node, p string) {
		v := ""
		if n.Kind == yaml.ScalarNode {
			v = n.Value
		}
		m[n.Line+shift] = append(m[n.Line+shift], valuePath{p, v})
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				add(v, p)
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				add(c, p)
				walk(c, p)
			}
		}
	}
	walk(doc.Content[0], "")
	return m
}

var problemLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// withPaths names the dotted path of each problem at a line that holds a
// value ("line 2: kafka.linger: bad duration ..."); unknown fields already
// name theirs. Of several values on one line (a flow map), the scalar whose
// text the problem quotes is meant, else the deepest one.
func withPaths(err error, paths map[int][]valuePath) error {
	if len(paths) == 0 {
		return err
	}
	parts := strings.Split(err.Error(), "; ")
	for i, p := range parts {
		sm := problemLine.FindStringSubmatch(p)
		if sm == nil || strings.HasPrefix(sm[2], "unknown field") {
			continue
		}
		k, _ := strconv.Atoi(sm[1])
		cands := paths[k]
		if len(cands) == 0 {
			continue
		}
		path := cands[len(cands)-1].path
		for _, c := range cands {
			// Our errors quote with %q, yaml.v3's with backticks.
			if c.value != "" && (strings.Contains(sm[2], strconv.Quote(c.value)) || strings.Contains(sm[2], "`"+c.value+"`")) {
				path = c.path
				break
			}
		}
		if !strings.HasPrefix(sm[2], path+":") {
			parts[i] = "line " + sm[1] + ": " + path + ": " + sm[2]
		}
	}
	return errors.New(strings.Join(parts, "; "))
}

// Path returns the file the config was loaded from ("" when parsed).
func (r *Root) Path() string { return r.path }

// ApplyEnv overrides addresses from the environment (getenv is os.Getenv).
func (r *Root) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvKafkaBrokers); v != "" {
		r.Kafka.Brokers = splitList(v)
	}
	if v := getenv(EnvClickHouseAddr); v != "" {
		r.ClickHouse.Addr = splitList(v)
	}
	if v := getenv(EnvMQTTURL); v != "" {
		r.MQTT.URL = v
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate checks the shared sections and returns all problems joined,
// each prefixed by its field path.
func (r *Root) Validate() error {
	var errs []error
	add := func(path, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
	}
	if r.Tenant == "" {
		add("tenant", "must not be empty")
	}
	if len(r.Kafka.Brokers) == 0 {
		add("kafka.brokers", "must list at least one host:port")
	}
	for i, b := range r.Kafka.Brokers {
		if _, _, err := splitHostPort(b); err != nil {
			add(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if r.Kafka.ReplicationFactor < 1 {
		add("kafka.replication_factor", "must be >= 1")
	}
	if r.Kafka.Partitions < 0 {
		add("kafka.partitions", "must be >= 0")
	}
	if r.Kafka.MaxBufferedRecords < 1 {
		add("kafka.max_buffered_records", "must be >= 1")
	}
	if r.Kafka.MaxBufferedBytes < 0 {
		add("kafka.max_buffered_bytes", "must be >= 0 (0: the client's default)")
	}
	if r.Kafka.Linger.D() < 0 {
		add("kafka.linger", "%v must not be negative", r.Kafka.Linger.D())
	}
	if r.Kafka.FetchMinBytes < 1 {
		add("kafka.fetch_min_bytes", "must be >= 1")
	}
	if d := r.Kafka.FetchMaxWait.D(); d <= 0 || d > 30*time.Second {
		add("kafka.fetch_max_wait", "%v is not in (0, 30s]", d)
	}
	switch r.Kafka.Compression {
	case "none", "snappy", "lz4", "zstd", "gzip":
	default:
		add("kafka.compression", "%q is not one of none, snappy, lz4, zstd, gzip", r.Kafka.Compression)
	}
	if _, err := ParseVersion(r.Kafka.SaramaVersion); err != nil {
		add("kafka.sarama_version", "%v", err)
	}
	if m := r.Kafka.SASL; m.Mechanism != "" {
		switch strings.ToUpper(m.Mechanism) {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			add("kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", m.Mechanism)
		}
		if m.Username == "" {
			add("kafka.sasl.username", "must be set with a mechanism")
		}
		if m.PasswordEnv == "" {
			add("kafka.sasl.password_env", "must name the environment variable holding the password")
		}
	}
	if len(r.ClickHouse.Addr) == 0 {
		add("clickhouse.addr", "must list at least one host:port")
	}
	for i, a := range r.ClickHouse.Addr {
		if _, _, err := splitHostPort(a); err != nil {
			add(fmt.Sprintf("clickhouse.addr[%d]", i), "%q is not host:port", a)
		}
	}
	if r.ClickHouse.Sharded && r.ClickHouse.Cluster == "" {
		add("clickhouse.sharded", "needs clickhouse.cluster (the cluster whose shards hold the tables)")
	}
	if d := r.ClickHouse.DialTimeout.D(); d <= 0 {
		add("clickhouse.dial_timeout", "%v must be > 0", d)
	}
	if r.ClickHouse.Database == "" {
		add("clickhouse.database", "must not be empty")
	}
	if !(strings.HasPrefix(r.MQTT.URL, "tcp://") || strings.HasPrefix(r.MQTT.URL, "mqtt://") ||
		strings.HasPrefix(r.MQTT.URL, "ssl://") || strings.HasPrefix(r.MQTT.URL, "mqtts://") ||
		strings.HasPrefix(r.MQTT.URL, "tls://") || strings.HasPrefix(r.MQTT.URL, "ws://") || strings.HasPrefix(r.MQTT.URL, "wss://")) {
		add("mqtt.url", "%q must start with tcp://, mqtt://, ssl://, mqtts://, tls://, ws:// or wss://", r.MQTT.URL)
	}
	switch r.Telemetry.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("telemetry.log_level", "%q is not one of debug, info, warn, error", r.Telemetry.LogLevel)
	}
	switch r.Telemetry.LogFormat {
	case "text", "json":
	default:
		add("telemetry.log_format", "%q is not text or json", r.Telemetry.LogFormat)
	}
	if r.Process.GoMaxProcs < 0 {
		add("process.gomaxprocs", "%d is negative (0 keeps Go's default)", r.Process.GoMaxProcs)
	}
	if r.Process.GOGC < 0 {
		add("process.gogc", "%d is negative (0 keeps Go's default; turning the collector off is the GOGC environment variable's business)", r.Process.GOGC)
	}
	if r.DrainTimeout.D() <= 0 {
		add("drain_timeout", "must be > 0")
	}
	for i, t := range r.Tenants {
		if t.ID == "" {
			add(fmt.Sprintf("tenants[%d].id", i), "must not be empty")
		}
	}
	return errors.Join(errs...)
}

func splitHostPort(s string) (string, int, error) {
	if strings.ContainsAny(s, " \t\r\n") {
		return "", 0, errors.New("contains white space")
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return "", 0, errors.New("missing port")
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return s[:i], p, nil
}

// ParseVersion parses "2.1.0"-style Kafka versions into numbers.
func ParseVersion(s string) ([3]int, error) {
	var v [3]int
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return v, fmt.Errorf("%q is not a Kafka version like 2.1.0", s)
	}
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return v, fmt.Errorf("%q is not a Kafka version like 2.1.0", s)
		}
		v[i] = n
	}
	if v[0] < 2 || (v[0] == 2 && v[1] < 1) {
		return v, fmt.Errorf("%q is too old: Kafka 4 needs >= 2.1.0", s)
	}
	return v, nil
}

// Section strictly decodes a role's raw section into out, which should
// already hold the role's defaults. path prefixes errors ("connectors.mqtt").
// An empty (absent) section leaves out unchanged.
func Section(n *yaml.Node, path string, out any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	// Block style throughout, so that every key of the copy has a line of
	// its own to map back (flow mappings would stay on one line).
	raw, err := yaml.Marshal(blockStyle(n))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && err.Error() != "EOF" {
		// Re-marshalling starts the section at line 1, drops blank lines
		// and reflows flow mappings: map each line of the copy back to the
		// file's line of the same node.
		lines := map[int]int{}
		var re yaml.Node
		if yaml.Unmarshal(raw, &re) == nil && len(re.Content) > 0 {
			mapLines(n, re.Content[0], lines)
		}
		msg := cleanYAMLError(err).Error()
		msg = lineRe.ReplaceAllStringFunc(msg, func(m string) string {
			k, _ := strconv.Atoi(lineRe.FindStringSubmatch(m)[1])
			if orig, ok := lines[k]; ok {
				return fmt.Sprintf("line %d", orig)
			}
			return fmt.Sprintf("line %d", k+n.Line-1)
		})
		return fmt.Errorf("%s: %s", path, msg)
	}
	return nil
}

// blockStyle returns a deep copy of n without flow style.
func blockStyle(n *yaml.Node) *yaml.Node {
	c := *n
	c.Style &^= yaml.FlowStyle
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = blockStyle(k)
	}
	return &c
}

// mapLines maps the lines of the nodes of copy (a re-marshalled orig, the
// same tree) to orig's lines.
func mapLines(orig, copy *yaml.Node, lines map[int]int) {
	if _, ok := lines[copy.Line]; !ok {
		lines[copy.Line] = orig.Line
	}
	for i := 0; i < len(orig.Content) && i < len(copy.Content); i++ {
		mapLines(orig.Content[i], copy.Content[i], lines)
	}
}

var lineRe = regexp.MustCompile(`line (\d+)`)
