// Package kafka turns the topology's kafka section into franz-go options and
// goka/sarama settings (the one place that does so), and applies the topic
// catalog to a cluster with kadm.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/topics"
)

// ProducerBatchMaxBytes is the most bytes of one record batch the producer
// sends, and so the largest record it can produce: franz-go's default,
// which Opts sets explicitly so that what validates against it (the mqtt
// connector's max_payload_bytes) cannot drift from it. The broker's default
// message.max.bytes (1,048,588) is a little larger.
const ProducerBatchMaxBytes = 1_000_012

// Opts returns the franz-go client options for cfg followed by extra.
// Producers are idempotent with acks=all (franz-go's default; we state it
// so that nobody weakens it by accident).
func Opts(cfg config.Kafka, extra ...kgo.Opt) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.ProducerBatchMaxBytes(ProducerBatchMaxBytes),
		kgo.ProducerLinger(cfg.Linger.D()),
	}
	if cfg.FetchMinBytes > 0 {
		opts = append(opts, kgo.FetchMinBytes(cfg.FetchMinBytes))
	}
	if cfg.FetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(cfg.FetchMaxWait.D()))
	}
	if cfg.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(cfg.MaxBufferedBytes))
	}
	switch cfg.Compression {
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	if cfg.TLS.Enabled {
		tc, err := TLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if cfg.SASL.Mechanism != "" {
		pass, err := saslPassword(cfg.SASL)
		if err != nil {
			return nil, err
		}
		switch strings.ToUpper(cfg.SASL.Mechanism) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: cfg.SASL.Username, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASL.Username, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: cfg.SASL.Username, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", cfg.SASL.Mechanism)
		}
	}
	return append(opts, extra...), nil
}

// NewClient builds a franz-go client from cfg; it does no I/O.
func NewClient(cfg config.Kafka, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := Opts(cfg, extra...)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client for %v: %w", cfg.Brokers, err)
	}
	return cl, nil
}

// TLSConfig builds a client tls.Config from PEM files.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// SaramaConfig returns the sarama settings goka uses, built from the same
// kafka section. Version must be >= 2.1.0 (Kafka 4 dropped older
// protocols); kfake only speaks up to 2.1 for sarama, so 2.1.0 is our
// default.
func SaramaConfig(cfg config.Kafka) (*sarama.Config, error) {
	v, err := config.ParseVersion(cfg.SaramaVersion)
	if err != nil {
		return nil, fmt.Errorf("kafka.sarama_version: %w", err)
	}
	ver, err := sarama.ParseKafkaVersion(fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]))
	if err != nil {
		return nil, fmt.Errorf("kafka.sarama_version: %w", err)
	}
	sc := sarama.NewConfig()
	sc.Version = ver
	sc.ClientID = cfg.ClientID
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = sarama.NewHashPartitioner
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if cfg.FetchMinBytes > 0 {
		sc.Consumer.Fetch.Min = cfg.FetchMinBytes
	}
	if cfg.FetchMaxWait > 0 {
		sc.Consumer.MaxWaitTime = cfg.FetchMaxWait.D()
	}
	switch cfg.Compression {
	case "snappy":
		sc.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		sc.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		sc.Producer.Compression = sarama.CompressionZSTD
	case "gzip":
		sc.Producer.Compression = sarama.CompressionGZIP
	}
	if cfg.TLS.Enabled {
		tc, err := TLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls: %w", err)
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if cfg.SASL.Mechanism != "" {
		pass, err := saslPassword(cfg.SASL)
		if err != nil {
			return nil, err
		}
		sc.Net.SASL.Enable = true
		sc.Net.SASL.User = cfg.SASL.Username
		sc.Net.SASL.Password = pass
		mech := strings.ToUpper(cfg.SASL.Mechanism)
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
		switch mech {
		case "SCRAM-SHA-256", "SCRAM-SHA-512":
			// sarama needs a SCRAM client; franz-go's (the one every other
			// client here uses) does the exchange.
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{sha512: mech == "SCRAM-SHA-512"} }
		}
	}
	return sc, nil
}

// saslPassword reads the SASL password from the environment variable the
// config names; unset or empty is an error, not an empty password.
func saslPassword(s config.SASL) (string, error) {
	if s.PasswordEnv == "" {
		return "", errors.New("kafka.sasl.password_env: must name the environment variable holding the password")
	}
	pass := os.Getenv(s.PasswordEnv)
	if pass == "" {
		return "", fmt.Errorf("kafka.sasl.password_env: environment variable %s is unset or empty", s.PasswordEnv)
	}
	return pass, nil
}

// scramClient is sarama's SCRAMClient on franz-go's SCRAM mechanism.
type scramClient struct {
	sha512 bool
	sess   sasl.Session
	first  []byte
	done   bool
}

func (c *scramClient) Begin(user, pass, authzID string) error {
	a := scram.Auth{User: user, Pass: pass, Zid: authzID}
	m := a.AsSha256Mechanism()
	if c.sha512 {
		m = a.AsSha512Mechanism()
	}
	sess, first, err := m.Authenticate(context.Background(), "")
	if err != nil {
		return fmt.Errorf("starting SCRAM: %w", err)
	}
	c.sess, c.first, c.done = sess, first, false
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) {
	if c.first != nil {
		first := c.first
		c.first = nil
		return string(first), nil
	}
	done, msg, err := c.sess.Challenge([]byte(challenge))
	if err != nil {
		return "", fmt.Errorf("SCRAM exchange: %w", err)
	}
	c.done = done
	return string(msg), nil
}

func (c *scramClient) Done() bool { return c.done }

// TopicResult is what ApplyTopics did to one topic.
type TopicResult struct {
	Topic  string
	Action string // created, updated, unchanged
	Err    error
}

// PartitionsFor returns the partition count to use for t under cfg.
func PartitionsFor(cfg config.Kafka, t topics.Topic) int32 {
	if cfg.Partitions > 0 {
		return cfg.Partitions
	}
	return t.Partitions
}

// ApplyTopics creates every catalog topic that is missing and brings the
// configs of existing ones in line (idempotent). Partition counts of
// existing topics are never changed: lowering is impossible, and raising
// a keyed topic's moves its keys (an error names the topic).
func ApplyTopics(ctx context.Context, adm *kadm.Client, cfg config.Kafka, log *slog.Logger) ([]TopicResult, error) {
	all := topics.All()
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("listing topics on %v: %w", cfg.Brokers, err)
	}
	var results []TopicResult
	var errs []error
	for _, t := range all {
		parts := PartitionsFor(cfg, t)
		td, ok := existing[t.Name]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			resp, err := adm.CreateTopic(ctx, parts, cfg.ReplicationFactor, t.Configs(), t.Name)
			if err == nil {
				err = resp.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("creating topic %s: %w", t.Name, err)
				errs = append(errs, err)
			}
			results = append(results, TopicResult{t.Name, "created", err})
			continue
		}
		action := "unchanged"
		var perr error
		if have := int32(len(td.Partitions)); have < parts {
			// Every catalog topic is keyed: more partitions remap keys,
			// which breaks goka's co-partitioning with its tables and
			// leaves a compacted topic's old values in their old
			// partitions. Refused; the count stays as it is.
			perr = fmt.Errorf("raising partitions of %s from %d to %d: refused: the topic is keyed by %s and more partitions move keys to other partitions (goka tables, compacted topics); keep kafka.partitions at %d or recreate the topics and group tables",
				t.Name, have, parts, t.Key, have)
			errs = append(errs, perr)
		}
		var alters []kadm.AlterConfig
		for k, v := range t.Configs() {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
		}
		sort.Slice(alters, func(i, j int) bool { return alters[i].Name < alters[j].Name })
		rs, err := adm.AlterTopicConfigs(ctx, alters, t.Name)
		if err == nil {
			for _, r := range rs {
				if r.Err != nil {
					err = r.Err
				}
			}
		}
		if err != nil {
			err = fmt.Errorf("setting configs of %s: %w", t.Name, err)
			errs = append(errs, err)
		}
		results = append(results, TopicResult{t.Name, action, errors.Join(perr, err)})
	}
	if log != nil {
		for _, r := range results {
			log.Debug("topic applied", "topic", r.Topic, "action", r.Action)
		}
	}
	return results, errors.Join(errs...)
}

// WaitTopics waits until every topic in names is in the cluster's metadata
// with a leader for each partition, or timeout passes. Created topics take
// a moment to appear in every broker's metadata and to get partition
// leaders, and goka (sarama) fails on a topic it cannot see yet or a
// partition without a leader.
func WaitTopics(ctx context.Context, adm *kadm.Client, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ts, err := adm.ListTopics(ctx, names...)
		missing := ""
		for _, n := range names {
			td, ok := ts[n]
			if err == nil && (!ok || td.Err != nil || len(td.Partitions) == 0) {
				missing = n
				continue
			}
			for _, pd := range td.Partitions {
				if pd.Err != nil || pd.Leader < 0 {
					missing = fmt.Sprintf("%s/%d (no leader yet)", n, pd.Partition)
				}
			}
		}
		if err == nil && missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s not visible %s after creating it (list error: %v)", missing, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
