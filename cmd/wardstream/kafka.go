package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// cmdEmbeddedKafka runs franz-go's kfake, an in-process implementation of
// the Kafka protocol, as a single-broker cluster on a local port: the
// `--embedded` quickstart for machines without Java (make demo
// WARDSTREAM_KAFKA=embedded). It is not Apache Kafka: one broker, no
// replication, its own storage format (persisted under --data-dir so a
// restart keeps the topics, offsets and committed groups), and the tests
// and benchmarks of this project run against the real broker. Clients need
// nothing special, except goka's sarama, which must speak protocol version
// 2.1.0 to it (kafka.sarama_version, the default).
func cmdEmbeddedKafka(ctx context.Context, args []string) error {
	fs := newFlags("embedded-kafka")
	listen := fs.String("listen", "127.0.0.1:9092", "address to listen on (host:port)")
	dataDir := fs.String("data-dir", ".local/kfake", "directory the cluster persists its state in (\"\" keeps it in memory)")
	partitions := fs.Int("partitions", 6, "partitions of auto-created topics")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("%w: --listen %q: %v", errUsage, *listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 {
		return fmt.Errorf("%w: --listen %q: bad port", errUsage, *listen)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "embedded-kafka")
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(*partitions),
		kfake.ClusterID("wardstream-embedded"),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.WithLogger(kfakeLog{log}),
	}
	if *dataDir != "" {
		if err := os.MkdirAll(*dataDir, 0o755); err != nil {
			return fmt.Errorf("embedded kafka data dir %s: %w", *dataDir, err)
		}
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("starting the embedded kafka on %s: %w", *listen, err)
	}
	log.Info("embedded kafka (kfake, not Apache Kafka) listening", "addrs", c.ListenAddrs(), "data_dir", *dataDir)
	<-ctx.Done()
	log.Info("embedded kafka stopping")
	c.Close()
	return nil
}

// kfakeLog forwards kfake's warnings and errors to slog.
type kfakeLog struct{ l *slog.Logger }

func (k kfakeLog) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Warn(fmt.Sprintf(format, args...))
	}
}
