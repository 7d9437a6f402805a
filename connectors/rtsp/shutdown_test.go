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

// TestUnknownPersonClass: events.person_class or a camera's
// class_confidence naming no class of the model makes Run fail with a
// clear error instead of running without ever raising a person event.
func TestUnknownPersonClass(t *testing.T) {
	lib := rtsptest.NeedRuntime(t)
	for name, mut := range map[string]func(*rtsp.Config){
		"person_class":     func(c *rtsp.Config) { c.Events.PersonClass = "human" },
		"class_confidence": func(c *rtsp.Config) { c.Cameras[0].ClassConfidence = map[string]float32{"persn": 0.5} },
	} {
		cfg := baseConfig(t, lib, rtsp.Camera{ID: "c1", URL: "rtsp://127.0.0.1:1/x", Tenant: "t1"})
		mut(&cfg)
		root := config.Default()
		root.Kafka.Brokers = []string{"127.0.0.1:1"}
		conn, err := rtsp.New(&root, cfg, rtsp.WithRegisterer(prometheus.NewRegistry()), rtsp.WithLogger(testLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = conn.Run(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s: Run accepted a class the model does not have", name)
		}
	}
}
