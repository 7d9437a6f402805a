package rtsp_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wardstream/wardstream/connectors/rtsp"
	"github.com/wardstream/wardstream/connectors/rtsp/rtsptest"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestShutdownWithSilentCamera: a camera that accepts the TCP connection
// but never answers DESCRIBE must not hold up shutdown until the read
// timeout.
func TestShutdownWithSilentCamera(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	cfg := baseConfig(t, lib, rtsp.Camera{ID: "silent", URL: "rtsp://" + ln.Addr().String() + "/x", Tenant: "t1"})
	cfg.ReadTimeout = config.Duration(30 * time.Second)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.Detections, topics.VideoEvents, topics.CameraControls))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	root := config.Default()
	root.Kafka.Brokers = cluster.ListenAddrs()
	root.DrainTimeout = config.Duration(5 * time.Second)
	conn, err := rtsp.New(&root, cfg, rtsp.WithRegisterer(prometheus.NewRegistry()), rtsp.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- conn.Run(ctx) }()
	time.Sleep(1500 * time.Millisecond) // the session is waiting for DESCRIBE's answer
	cancel()
	start := time.Now()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Run took %v to return after cancel", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel (waits for the camera's read timeout)")
	}
}
