package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTailWithMetaIsJSON: `tail` prints "records as JSON lines", but
// --with-meta formats the key with Go's %q, whose \x.. escapes are not
// JSON: a key with a control or non-UTF-8 byte yields a line jq rejects.
// (--max and --timeout themselves behave: 3 lines, then exit 0.)
func TestTailWithMetaIsJSON(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "wardstream.alerts"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, k := range []string{"dev-1", "dev\x012", "dev\xff3", "dev-4"} {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "wardstream.alerts", Key: []byte(k), Value: nil}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(cfg, []byte("kafka: {brokers: ["+c.ListenAddrs()[0]+"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WARDSTREAM_KAFKA_BROKERS", "")
	var terr error
	out := captureStdout(t, func() {
		terr = cmdTail(context.Background(), []string{"wardstream.alerts", "--config", cfg, "--from-beginning", "--max", "3", "--timeout", "20s", "--with-meta"})
	})
	if terr != nil {
		t.Fatal(terr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("--max 3 printed %d lines", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("not JSON: %s", l)
		}
	}
}
