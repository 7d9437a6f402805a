package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/api"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestKafkaPublisherAndLag runs the API against an in-process Kafka
// (kfake): a write lands on the topic with its key and protobuf value, and
// pipeline health reports a consumer group's lag and topic offsets.
func TestKafkaPublisherAndLag(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics.Commands, topics.Audit, topics.Vitals))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tp := api.DefaultTopics()
	tp.Watched = []string{topics.Commands, topics.Vitals}
	h := newHarness(t, func(c *api.Config) { c.LagGroups = []string{"test-group"} },
		api.WithPublisher(api.KafkaPublisher{Client: cl}), api.WithAdmin(kadm.NewClient(cl)), api.WithTopics(tp))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	r := h.do("POST", "/api/v1/devices/pump-3/commands", h.token("n", "hospital-a", api.RoleMedicalStaff), `{"commandType":"EMERGENCY_MODE","payload":{"level":2}}`)
	if r.code != 202 {
		t.Fatalf("command: %d %s", r.code, r.body)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics.Commands, topics.Audit),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string]*kgo.Record{}
	for len(got) < 2 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(rec *kgo.Record) { got[rec.Topic] = rec })
	}
	cmdRec := got[topics.Commands]
	if cmdRec == nil || string(cmdRec.Key) != "pump-3" {
		t.Fatalf("command record %v", cmdRec)
	}
	var cmd pb.DeviceCommand
	if err := codec.Unmarshal(cmdRec.Value, &cmd); err != nil || cmd.CommandType != pb.CommandType_EMERGENCY_MODE || cmd.PayloadJson != `{"level":2}` {
		t.Fatalf("command value %v: %v", &cmd, err)
	}
	if a := got[topics.Audit]; a == nil || string(a.Key) != "n" {
		t.Fatalf("audit record %v", a)
	}

	// 10 vitals produced to partition 0, a group that committed 4 of them: lag 6.
	manual, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	for i := 0; i < 10; i++ {
		if err := manual.ProduceSync(ctx, &kgo.Record{Topic: topics.Vitals, Partition: 0, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	offs.AddOffset(topics.Vitals, 0, 4, -1)
	if _, err := adm.CommitOffsets(ctx, "test-group", offs); err != nil {
		t.Fatal(err)
	}
	r = h.do("GET", "/api/v1/pipeline/health", h.token("a", "hospital-a", api.RoleAnalyst), "")
	var ph api.PipelineHealth
	if err := json.Unmarshal(r.body, &ph); err != nil {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if !ph.Kafka.OK || ph.TotalLag != 6 || len(ph.Groups) != 1 || ph.Groups[0].Lag != 6 {
		t.Fatalf("health %s", r.body)
	}
	ends := map[string]int64{}
	for _, tr := range ph.Topics {
		ends[tr.Topic] = tr.EndOffset
	}
	if ends[topics.Vitals] != 10 || ends[topics.Commands] != 1 {
		t.Fatalf("end offsets %v", ends)
	}
}

// TestServeStreamAndDrain runs the real HTTP server: the live stream pushes
// a snapshot, and cancelling Run's context ends streams and returns nil.
func TestServeStreamAndDrain(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.MaxStreams = 1 })
	h.store.alerts["hospital-a"] = []*pb.Alert{alert("hospital-a", "live-1", pb.AlertState_OPEN, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	tok := h.token("n", "hospital-a", api.RoleMedicalStaff)
	req, _ := http.NewRequest("GET", base+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var snapshot string
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			snapshot = strings.TrimPrefix(line, "data: ")
			break
		}
	}
	var d api.Dashboard
	if err := json.Unmarshal([]byte(snapshot), &d); err != nil || len(d.OpenAlerts) != 1 || !strings.Contains(string(d.OpenAlerts[0]), "live-1") {
		t.Fatalf("snapshot %q: %v", snapshot, err)
	}
	// The stream cap is 1: a second stream is refused with a JSON 503.
	req2, _ := http.NewRequest("GET", base+"/api/v1/stream", nil)
	req2.Header.Set("Authorization", "Bearer "+tok)
	resp2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 503 {
		t.Fatalf("second stream: %d", resp2.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	for sc.Scan() {
	}
	if metricValue(t, h, "wardstream_api_stream_clients") != 0 {
		t.Fatal("stream gauge not back to 0")
	}
}

func BenchmarkListAlerts(b *testing.B) {
	h := newHarness(b, func(c *api.Config) { c.RateLimit.RequestsPerSecond = 1e9; c.RateLimit.Burst = 1 << 30 })
	for i := 0; i < 100; i++ {
		h.store.alerts["hospital-a"] = append(h.store.alerts["hospital-a"], alert("hospital-a", "a"+string(rune('a'+i%26))+string(rune('a'+i/26)), pb.AlertState_OPEN, 1))
	}
	tok := h.token("n", "hospital-a", api.RoleAnalyst)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := h.do("GET", "/api/v1/alerts?state=OPEN", tok, ""); r.code != 200 {
			b.Fatal(r.code)
		}
	}
}

// TestStreamEndsWhenTokenExpires: a live stream does not outlive its token.
func TestStreamEndsWhenTokenExpires(t *testing.T) {
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.srv.Serve(ctx, ln) }()
	tok, err := h.key.Mint(h.cfg.Auth, api.TokenRequest{User: "short", Tenant: "hospital-a", Roles: []string{api.RoleAnalyst},
		Issuer: h.cfg.Auth.Issuer, Audience: h.cfg.Auth.Audience, TTL: 1500 * time.Millisecond}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sawExpired := false
	for sc.Scan() {
		if sc.Text() == "event: expired" {
			sawExpired = true
		}
	}
	// jwt exp has one-second resolution: the token ends within [0.5s, 2.5s].
	if el := time.Since(start); !sawExpired || el > 5*time.Second {
		t.Fatalf("stream ended after %v, expired event %v", el, sawExpired)
	}
}

// TestStreamCapPerUser: one user cannot take every live stream; another
// user of the same tenant still gets one.
func TestStreamCapPerUser(t *testing.T) {
	h := newHarness(t, func(c *api.Config) { c.MaxStreams, c.MaxStreamsPerUser = 3, 1 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	open := func(user string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+h.token(user, "hospital-a", api.RoleMedicalStaff))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := open("n1")
	defer first.Body.Close()
	second := open("n1")
	second.Body.Close()
	other := open("n2")
	defer other.Body.Close()
	if first.StatusCode != 200 || second.StatusCode != 429 || other.StatusCode != 200 {
		t.Fatalf("streams: n1 %d, n1 again %d (want 429), n2 %d", first.StatusCode, second.StatusCode, other.StatusCode)
	}
}
