package main

import (
	"context"
	"fmt"
	"os"

	"github.com/wardstream/wardstream/internal/deploy"
)

// cmdTopicsManifest prints (or writes) Strimzi KafkaTopic resources for
// every catalog topic: `wardstream topics manifest --cluster NAME`.
func cmdTopicsManifest(_ context.Context, args []string) error {
	fs := newFlags("topics manifest")
	cfgPath := configFlag(fs)
	cluster := fs.String("cluster", "wardstream", "Strimzi Kafka cluster name (the strimzi.io/cluster label)")
	namespace := fs.String("namespace", "", "namespace written into each resource (default: none; Kustomize sets it)")
	replicas := fs.Int("replicas", 0, "replication factor (default: kafka.replication_factor of the topology)")
	minISR := fs.Int("min-insync-replicas", 0, "min.insync.replicas (default: replicas-1, at least 1)")
	out := fs.String("out", "", "write to this file instead of stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *replicas < 0 || *replicas > 32767 {
		return fmt.Errorf("%w: --replicas %d out of range", errUsage, *replicas)
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	data, err := deploy.KafkaTopics(e.cfg.Kafka, deploy.TopicManifestOptions{
		Cluster: *cluster, Namespace: *namespace, Replicas: int16(*replicas), MinInSync: *minISR,
	})
	if err != nil {
		return fmt.Errorf("generating KafkaTopic manifests: %w", err)
	}
	if *out == "" {
		_, err = os.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	return nil
}
