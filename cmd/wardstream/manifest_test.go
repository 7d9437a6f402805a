package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/deploy"
)

func TestTopicsManifestCommand(t *testing.T) {
	dir := t.TempDir()
	topo := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(topo, []byte("kafka:\n  brokers: [k:9093]\n  partitions: 24\n  replication_factor: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "topics.yaml")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"topics", "manifest", "--config", topo, "--cluster", "kc", "--namespace", "ns", "--out", out}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	root, err := config.Load(topo)
	if err != nil {
		t.Fatal(err)
	}
	want, err := deploy.KafkaTopics(root.Kafka, deploy.TopicManifestOptions{Cluster: "kc", Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) || !strings.Contains(string(got), "partitions: 24") || !strings.Contains(string(got), "namespace: ns") {
		t.Fatalf("manifest differs from the generator:\n%s", got)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"topics", "manifest", "--config", topo, "--cluster", "Bad_Name"}, 1, "not a valid Kubernetes name"},
		{[]string{"topics", "manifest", "--config", topo, "--replicas", "-1"}, 2, "out of range"},
		{[]string{"topics", "manifest", "--config", topo, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"topics", "manifest", "--config", topo, "--replicas", "2", "--min-insync-replicas", "3"}, 1, "exceeds replicas"},
	} {
		stderr.Reset()
		if code := run(context.Background(), c.args, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d %q, want %d %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}
