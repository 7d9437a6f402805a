package clickhouse

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/wardstream/wardstream/internal/config"
	chschema "github.com/wardstream/wardstream/schemas/clickhouse"
	"github.com/wardstream/wardstream/schemas/topics"
)

// Config is the sinks.clickhouse section of the topology.
type Config struct {
	// Topics are the catalog topics consumed (catalog names); empty is
	// every catalog topic.
	Topics []string `yaml:"topics"`
	// TopicPrefix is prepended to every catalog name to get the Kafka
	// topic (for shared clusters and tests); "" by default.
	TopicPrefix string `yaml:"topic_prefix"`
	// Group is the Kafka consumer group; replicas sharing it share the
	// partitions. Default topics.GroupSink.
	Group string `yaml:"group"`
	// BatchRows flushes a table's batch once it holds this many rows
	// (default 100000).
	BatchRows int `yaml:"batch_rows"`
	// BatchAge flushes a table's batch once its oldest row waited this long
	// (default 1s). Low-volume tables therefore write at most one part per
	// BatchAge, never one per record.
	BatchAge config.Duration `yaml:"batch_age"`
	// TableBatchAge overrides BatchAge for the tables it names (e.g.
	// dead_letters: 5s): a table whose rows nobody waits for, fed a few
	// rows at a time, then writes one small part per its own age instead
	// of one per BatchAge (fewer inserts and merges for ClickHouse).
	TableBatchAge map[string]config.Duration `yaml:"table_batch_age"`
	// MaxBufferedRows bounds the rows held across all tables, filling and
	// being inserted (default 400000); when reached the largest batches
	// are inserted first and the sink waits for inserts to land before it
	// converts more; while ClickHouse fails, fetching is paused (the
	// breaker), so memory stays bounded by this and the fetch buffer.
	MaxBufferedRows int `yaml:"max_buffered_rows"`
	// SessionTimeout is the consumer group session timeout (default 15s):
	// how long a crashed replica's partitions wait before the group hands
	// them to another replica.
	SessionTimeout config.Duration `yaml:"session_timeout"`
	// MaxPollRecords is the most records taken per poll (default 10000).
	MaxPollRecords int `yaml:"max_poll_records"`
	// FetchMaxBytes bounds one fetch response (default 16 MiB).
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// SerialInserts makes the loop wait for every insert before it fetches
	// and fills more (the sink's behaviour before pipelined inserts,
	// flight.go): fewer, larger inserts when the machine is saturated, at
	// a higher latency otherwise. Default false.
	SerialInserts bool `yaml:"serial_inserts"`
	// Compression of insert blocks on the wire: lz4 (default), zstd or
	// none (loopback: saves the sink's CPU).
	Compression string `yaml:"compression"`
	// DisableFastPath makes vitals and anomaly-score records take the
	// general path (decode the message, then map it) instead of being read
	// from the wire format straight into the columns (fast.go). Both give
	// the same rows; this is for comparisons and as a safety switch.
	DisableFastPath bool `yaml:"disable_fast_path"`
	// InsertTimeout bounds one batch insert attempt (default 30s).
	InsertTimeout config.Duration `yaml:"insert_timeout"`
	// RetryBackoff is the first wait after a failed insert; it doubles up
	// to RetryBackoffMax (defaults 200ms and 5s), with jitter.
	RetryBackoff    config.Duration `yaml:"retry_backoff"`
	RetryBackoffMax config.Duration `yaml:"retry_backoff_max"`
	// BreakerFailures consecutive failed inserts open the circuit breaker
	// (default 3): fetching pauses and one probe insert is tried every
	// BreakerCooldown (default 2s) until one succeeds.
	BreakerFailures int             `yaml:"breaker_failures"`
	BreakerCooldown config.Duration `yaml:"breaker_cooldown"`
	// RevokeFlushTimeout bounds the flush attempted when partitions are
	// revoked in a rebalance (default 10s); on failure the batches are
	// dropped uncommitted and re-read by the partitions' new owner.
	RevokeFlushTimeout config.Duration `yaml:"revoke_flush_timeout"`
	// RetentionInterval is how often the sink drops expired month
	// partitions on servers without TTL (default 1h; 0 disables).
	RetentionInterval config.Duration `yaml:"retention_interval"`
	// BIUsers are the read-only per-tenant BI users `wardstream migrate`
	// creates (modern servers) or writes to BIUsersXML (old servers).
	BIUsers []BIUserConfig `yaml:"bi_users"`
	// BIUsersXML is where migrate writes the users.d file on servers
	// without SQL users ("" skips it).
	BIUsersXML string `yaml:"bi_users_xml"`
	// BINetworks are the client networks BI users may connect from in the
	// users.d file (default ::/0).
	BINetworks []string `yaml:"bi_networks"`
}

// BIUserConfig is one BI user.
type BIUserConfig struct {
	Name   string `yaml:"name"`
	Tenant string `yaml:"tenant"`
	// PasswordEnv names the env var holding the password.
	PasswordEnv string `yaml:"password_env"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Group:              topics.GroupSink,
		BatchRows:          100_000,
		BatchAge:           config.Duration(time.Second),
		MaxBufferedRows:    400_000,
		MaxPollRecords:     10_000,
		SessionTimeout:     config.Duration(15 * time.Second),
		FetchMaxBytes:      16 << 20,
		InsertTimeout:      config.Duration(30 * time.Second),
		Compression:        "lz4",
		RetryBackoff:       config.Duration(200 * time.Millisecond),
		RetryBackoffMax:    config.Duration(5 * time.Second),
		BreakerFailures:    3,
		BreakerCooldown:    config.Duration(2 * time.Second),
		RevokeFlushTimeout: config.Duration(10 * time.Second),
		RetentionInterval:  config.Duration(time.Hour),
		BINetworks:         []string{"::/0"},
	}
}

// Validate returns every problem, each prefixed with its field path.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("sinks.clickhouse.%s: %s", field, fmt.Sprintf(format, a...)))
	}
	for i, t := range c.Topics {
		if _, ok := topics.Lookup(t); !ok {
			add(fmt.Sprintf("topics[%d]", i), "%q is not a catalog topic (see wardstream topics list)", t)
		}
	}
	if c.Group == "" {
		add("group", "must not be empty")
	}
	if c.BatchRows < 1 {
		add("batch_rows", "must be >= 1")
	}
	if c.BatchAge.D() <= 0 {
		add("batch_age", "must be > 0")
	}
	for _, t := range slices.Sorted(maps.Keys(c.TableBatchAge)) {
		if _, ok := chschema.LookupTable(t); !ok {
			add("table_batch_age."+t, "%q is not a table the sink writes", t)
		}
		if c.TableBatchAge[t].D() <= 0 {
			add("table_batch_age."+t, "must be > 0")
		}
	}
	if c.MaxBufferedRows < c.BatchRows {
		add("max_buffered_rows", "must be >= batch_rows (%d)", c.BatchRows)
	}
	if c.SessionTimeout.D() < 6*time.Second {
		add("session_timeout", "must be >= 6s (the broker's group.min.session.timeout.ms default)")
	}
	if c.MaxPollRecords < 1 {
		add("max_poll_records", "must be >= 1")
	}
	if c.FetchMaxBytes < 1<<10 {
		add("fetch_max_bytes", "must be >= 1024")
	}
	switch c.Compression {
	case "lz4", "zstd", "none":
	default:
		add("compression", "%q is not lz4, zstd or none", c.Compression)
	}
	if c.InsertTimeout.D() <= 0 {
		add("insert_timeout", "must be > 0")
	}
	if c.RetryBackoff.D() <= 0 || c.RetryBackoffMax.D() < c.RetryBackoff.D() {
		add("retry_backoff", "must be > 0 and <= retry_backoff_max")
	}
	if c.BreakerFailures < 1 {
		add("breaker_failures", "must be >= 1")
	}
	if c.BreakerCooldown.D() <= 0 {
		add("breaker_cooldown", "must be > 0")
	}
	if c.RevokeFlushTimeout.D() <= 0 {
		add("revoke_flush_timeout", "must be > 0")
	}
	if c.RetentionInterval.D() < 0 {
		add("retention_interval", "must be >= 0")
	}
	for i, u := range c.BIUsers {
		if u.Name == "" || u.Tenant == "" || u.PasswordEnv == "" {
			add(fmt.Sprintf("bi_users[%d]", i), "name, tenant and password_env are required")
		}
	}
	return errors.Join(errs...)
}

// Load decodes the sinks.clickhouse section of root over the defaults and
// validates it.
func Load(root *config.Root) (Config, error) {
	cfg := DefaultConfig()
	if err := config.Section(&root.Sinks.ClickHouse, "sinks.clickhouse", &cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// catalogTopics returns the catalog names consumed.
func (c Config) catalogTopics() []string {
	if len(c.Topics) > 0 {
		return c.Topics
	}
	var out []string
	for _, t := range topics.All() {
		out = append(out, t.Name)
	}
	return out
}
