package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/mqtt"
	"github.com/wardstream/wardstream/connectors/mqtt/devicesim"
	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/connectors/mqtt/shadow"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// itEnv is one isolated test setup on the shared servers: a unique Kafka
// topic prefix and a unique MQTT topic root, so that other engineers'
// traffic on the shared Mosquitto never reaches the connector under test.
type itEnv struct {
	svc    testutil.Services
	prefix string // kafka topic prefix
	root   string // mqtt topic root, ends in "/"
	id     string
}

func newITEnv(t testing.TB, name string) *itEnv {
	t.Helper()
	svc := testutil.Integration(t)
	id := testutil.Unique(t, name)
	id = strings.ReplaceAll(id, "-", "_")
	if len(id) > 60 {
		id = id[len(id)-60:]
	}
	e := &itEnv{svc: svc, prefix: id + ".", root: "it/" + id + "/", id: id}
	e.createTopics(t)
	return e
}

func (e *itEnv) createTopics(t testing.TB) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for _, tp := range topics.All() {
		names = append(names, e.prefix+tp.Name)
	}
	resp, err := adm.CreateTopics(ctx, 3, 1, nil, names...)
	if err != nil {
		t.Fatalf("creating topics: %v", err)
	}
	for _, r := range resp {
		if r.Err != nil && !strings.Contains(r.Err.Error(), "TOPIC_ALREADY_EXISTS") {
			t.Fatalf("creating topic %s: %v", r.Topic, r.Err)
		}
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, append(names, e.prefix+topics.GroupShadows+"-table")...)
	})
}

// config returns the connector config of this env.
func (e *itEnv) config() (mqtt.Config, mqtt.Shared) {
	cfg := mqtt.DefaultConfig()
	cfg.ClientID = "it-" + e.id
	cfg.ShareGroup = "g" + e.id
	cfg.TopicPrefix = e.prefix
	cfg.Connections = 2
	cfg.Routes = nil
	for _, r := range mqtt.DefaultRoutes() {
		r.Topic = e.root + r.Topic
		cfg.Routes = append(cfg.Routes, r)
	}
	cfg.Commands.Topic = e.root + cfg.Commands.Topic
	cfg.Commands.AckTopic = e.root + cfg.Commands.AckTopic
	cfg.Shadow.DeltaTopic = e.root + cfg.Shadow.DeltaTopic
	cfg.MaxPayloadBytes = 4096
	kc := config.Default().Kafka
	kc.Brokers = e.svc.KafkaBrokers
	kc.Linger = config.Duration(2 * time.Millisecond)
	return cfg, mqtt.Shared{Tenant: "it", Kafka: kc, MQTT: config.MQTT{URL: e.svc.MQTTURL}, DrainTimeout: 10 * time.Second}
}

// consume reads topic from the start until each returns true (then it
// returns true) or timeout (false).
func (e *itEnv) consume(t *testing.T, topic string, timeout time.Duration, each func(r *kgo.Record) (stop bool)) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...), kgo.ConsumeTopics(e.prefix+topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return false
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			if !stop && each(r) {
				stop = true
			}
		})
		if stop {
			return true
		}
	}
}

func startConnector(t *testing.T, cfg mqtt.Config, sh mqtt.Shared, opts ...mqtt.Option) (stop func()) {
	t.Helper()
	c, err := mqtt.New(cfg, sh, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("connector Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("connector did not stop within 30s")
		}
	}
}

// publish publishes one message from a throwaway v5 client.
func publish(t *testing.T, url, topic string, qos byte, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := devicesim.Dial(ctx, url, fmt.Sprintf("it-pub-%d", time.Now().UnixNano()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(&paho.Disconnect{})
	if _, err := cl.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: body}); err != nil {
		t.Fatalf("publishing to %s: %v", topic, err)
	}
}

// counterValue returns the value of the counter name in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// waitSubscribed gives the shared subscription a moment after connecting.
func waitSubscribed() { time.Sleep(700 * time.Millisecond) }

func TestIntegrationDeadLettersBatchAndV311(t *testing.T) {
	e := newITEnv(t, "mqttdlq")
	cfg, sh := e.config()
	cfg.Shadow.Enabled = false
	cfg.Commands.Enabled = false
	reg := prometheus.NewRegistry()
	stop := startConnector(t, cfg, sh, mqtt.WithRegisterer(reg))
	defer stop()
	waitSubscribed()

	now := time.Now().UnixMilli()
	vit := e.root + "medical/h1/monitor/dev-1/vitals"
	cases := []struct {
		name, topic string
		body        []byte
		reason      string
	}{
		{"malformed", vit, []byte(`{"deviceId":"dev-1","heartRate":`), "malformed_json"},
		{"missing", vit, []byte(`{"messageId":"m-missing","heartRate":80}`), "missing_field"},
		{"spoofed", vit, []byte(fmt.Sprintf(`{"messageId":"m-spoof","deviceId":"dev-2","timestamp":%d,"heartRate":80}`, now)), "spoofed_device"},
		{"oversize", vit, []byte(fmt.Sprintf(`{"messageId":"m-big","deviceId":"dev-1","timestamp":%d,"message":"%s"}`, now, strings.Repeat("x", 5000))), "oversize"},
		{"intake missing", e.root + "medical/devices/pc-1/medication_intake", []byte(`{"deviceId":"pc-1","patientId":"p1","status":"taken"}`), "missing_field"},
		{"future", vit, []byte(fmt.Sprintf(`{"messageId":"m-future","deviceId":"dev-1","timestamp":%d}`, now+int64(time.Hour/time.Millisecond))), "timestamp_out_of_window"},
	}
	for _, c := range cases {
		publish(t, e.svc.MQTTURL, c.topic, 1, c.body)
	}
	// A batch of three readings (one of them bad) and a good single reading.
	batch := fmt.Sprintf(`{"batchId":"b-1","deviceId":"dev-9","count":3,"messages":[
		{"messageId":"b1-0","timestamp":%d,"heartRate":71},
		{"messageId":"b1-1","timestamp":%d,"heartRate":72,"type":"readings","administrationRate":5},
		{"messageId":"b1-2","deviceId":"dev-8","timestamp":%d,"heartRate":73}]}`, now, now, now)
	publish(t, e.svc.MQTTURL, e.root+"medical/devices/batch/telemetry", 1, []byte(batch))
	// An all-valid batch: the batch encoder's path (JSON straight to the
	// record's wire bytes).
	batch2 := fmt.Sprintf(`{"batchId":"b-2","deviceId":"dev-9","count":2,"messages":[
		{"messageId":"b2-0","timestamp":%d,"heartRate":64,"bloodPressure":{"systolic":121,"diastolic":79},"spo2":97.5},
		{"timestamp":%d,"type":"alerts","severity":7,"alertType":"PUMP_FAILURE","patientId":"p9","ward":"w2"}]}`, now, now)
	publish(t, e.svc.MQTTURL, e.root+"medical/devices/batch/telemetry", 1, []byte(batch2))

	// A v3.1.1 device publishing through mosquitto_pub.
	v311 := false
	intakeAt := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	if path, err := exec.LookPath("mosquitto_pub"); err == nil {
		host, port := hostPort(e.svc.MQTTURL)
		body := fmt.Sprintf(`{"messageId":"v311-1","deviceId":"pc-7","patientId":"p7","medicationId":"m7","intakeTime":%q,"status":"taken","dosage":1}`, intakeAt.Format(time.RFC3339))
		out, err := exec.Command(path, "-V", "mqttv311", "-h", host, "-p", port, "-q", "1", "-i", "it-v311-"+e.id,
			"-t", e.root+"medical/devices/pc-7/medication_intake", "-m", body).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub -V mqttv311: %v: %s", err, out)
		}
		v311 = true
	} else {
		t.Log("mosquitto_pub not installed: the v3.1.1 publisher case is skipped")
	}

	want := map[string]int{}
	for _, c := range cases {
		want[c.reason]++
	}
	want["spoofed_device"]++ // batch message b1-2
	got := map[string]int{}
	var total int
	for _, n := range want {
		total += n
	}
	seen := 0
	if !e.consume(t, topics.DeadLetters, 60*time.Second, func(r *kgo.Record) bool {
		dl := &pb.DeadLetter{}
		if err := codec.Unmarshal(r.Value, dl); err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		if dl.SourceTopic == "" || len(dl.Raw) == 0 || dl.Error == "" || dl.Meta.GetIngestTimeMs() == 0 || dl.Stage != "connectors/mqtt" {
			t.Errorf("dead letter lacks source, raw bytes, error, time or stage: %v", dl)
		}
		got[dl.Reason]++
		seen++
		return seen >= total
	}) {
		t.Fatalf("dead letters: got %v, want %v", got, want)
	}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("dead letters with reason %s: got %d, want %d (all: %v)", r, got[r], n, got)
		}
	}

	// Batch parts and the v3.1.1 intake.
	// batch_records (the default): the valid parts travel as one
	// VitalsBatch record keyed by the device.
	parts := map[string]*pb.VitalsTelemetry{}
	if !e.consume(t, topics.VitalsBatches, 30*time.Second, func(r *kgo.Record) bool {
		b := &pb.VitalsBatch{}
		if err := codec.Unmarshal(r.Value, b); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != b.DeviceId || b.DeviceId != "dev-9" || (b.BatchId != "b-1" && b.BatchId != "b-2") || len(b.Readings) != 2 ||
			b.Meta.GetEventId() != "batch|dev-9/"+b.BatchId {
			t.Errorf("vitals batch key %q, device %q, batch %q, id %q, %d readings; want dev-9, b-1 or b-2, 2", r.Key, b.DeviceId, b.BatchId, b.Meta.GetEventId(), len(b.Readings))
		}
		for _, v := range b.Readings {
			parts[v.Meta.EventId] = v
		}
		return len(parts) >= 4
	}) {
		t.Fatalf("batch parts: got %d of 4", len(parts))
	}
	if p := parts["b2-0"]; p == nil || p.BatchId != "b-2" || p.DeviceId != "dev-9" || p.HeartRate != 64 || p.SystolicBp != 121 || p.DiastolicBp != 79 ||
		p.Spo2 != 97.5 || p.Kind != "vitals" || p.Meta.GetTenant() != "it" || p.Meta.GetEventTimeMs() != now || !slices.Equal(p.Present, []string{"heartRate", "systolicBp", "diastolicBp", "spo2"}) {
		t.Errorf("batch part b2-0 = %v", p)
	}
	if p := parts["dev-9/b-2/1"]; p == nil || p.Kind != "alerts" || p.Severity != 7 || p.AlertType != "PUMP_FAILURE" || p.PatientId != "p9" || p.Ward != "w2" {
		t.Errorf("batch part dev-9/b-2/1 (no message id: device/batch/index) = %v", p)
	}
	// b-1 (with a spoofed part) took the general path, b-2 the encoder.
	if n := counterValue(t, reg, "wardstream_mqtt_batches_encoded_total"); n != 1 {
		t.Errorf("wardstream_mqtt_batches_encoded_total = %v, want 1", n)
	}
	if p := parts["b1-0"]; p == nil || p.BatchId != "b-1" || p.DeviceId != "dev-9" || p.HeartRate != 71 || p.Kind != "vitals" {
		t.Errorf("batch part b1-0 = %v", p)
	}
	if p := parts["b1-1"]; p == nil || p.Kind != "readings" || p.AdministrationRate != 5 {
		t.Errorf("batch part b1-1 = %v", p)
	}
	if v311 {
		if !e.consume(t, topics.Intake, 30*time.Second, func(r *kgo.Record) bool {
			in := &pb.MedicationIntake{}
			if err := codec.Unmarshal(r.Value, in); err != nil {
				t.Fatal(err)
			}
			if in.Meta.EventId != "v311-1" || string(r.Key) != "p7" || in.IntakeTimeMs != intakeAt.UnixMilli() {
				t.Errorf("v3.1.1 intake = %v key %q", in, r.Key)
			}
			return true
		}) {
			t.Fatal("the v3.1.1 intake did not reach Kafka")
		}
	}
}

func hostPort(u string) (string, string) {
	hp := u[strings.Index(u, "://")+3:]
	h, p, _ := strings.Cut(hp, ":")
	if p == "" {
		p = "1883"
	}
	return h, p
}

// TestIntegrationCommandsAndShadow: a command reaches the device topic and
// its ack is recorded; a command without ack times out; a desired state
// produces a delta pushed to the device; silence marks the device offline.
func TestIntegrationCommandsAndShadow(t *testing.T) {
	e := newITEnv(t, "mqttcmd")
	cfg, sh := e.config()
	cfg.Commands.Timeout = config.Duration(2 * time.Second)
	cfg.Shadow.OfflineAfter = config.Duration(2 * time.Second)
	cfg.Shadow.CheckInterval = config.Duration(500 * time.Millisecond)
	stop := startConnector(t, cfg, sh)
	defer stop()

	// The device: subscribes to its commands and shadow delta; acks commands.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const dev = "pc-42"
	var mu sync.Mutex
	received := map[string][]byte{}
	var devCl *paho.Client
	var err error
	devCl, err = devicesim.Dial(ctx, e.svc.MQTTURL, "it-dev-"+e.id, func(pr paho.PublishReceived) (bool, error) {
		mu.Lock()
		received[pr.Packet.Topic] = pr.Packet.Payload
		mu.Unlock()
		if strings.HasSuffix(pr.Packet.Topic, "/commands") {
			var body map[string]any
			_ = json.Unmarshal(pr.Packet.Payload, &body)
			if body["type"] == "PING" {
				go func() {
					ack, _ := json.Marshal(map[string]any{"commandId": body["commandId"], "status": "ok"})
					_, _ = devCl.Publish(ctx, &paho.Publish{Topic: e.root + "medical/devices/" + dev + "/commands/ack", QoS: 1, Payload: ack})
				}()
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer devCl.Disconnect(&paho.Disconnect{})
	if _, err := devCl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: e.root + "medical/devices/" + dev + "/commands", QoS: 1},
		{Topic: e.root + "medical/devices/" + dev + "/shadow/delta", QoS: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	waitSubscribed()

	kc, err := kgo.NewClient(kgo.SeedBrokers(e.svc.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	produce := func(topic, key string, m proto.Message) {
		b, err := codec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := kc.ProduceSync(ctx, &kgo.Record{Topic: e.prefix + topic, Key: []byte(key), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(topics.Commands, dev, &pb.DeviceCommand{Meta: &pb.Meta{Tenant: "it"}, CommandId: "c-ping", DeviceId: dev, CommandType: pb.CommandType_PING,
		// A generous per-command timeout: the ack travels device -> Mosquitto
		// -> connector -> Kafka, which takes seconds on a loaded CI machine;
		// c-reset keeps the configured 2 s and is never acked.
		TimeoutMs: 30_000, PayloadJson: `{"note":"hello"}`})
	produce(topics.Commands, dev, &pb.DeviceCommand{Meta: &pb.Meta{Tenant: "it"}, CommandId: "c-reset", DeviceId: dev, CommandType: pb.CommandType_TRIGGER_REMINDER, PayloadJson: `{"medicationId":"m1"}`})

	states := map[string]pb.CommandState{}
	if !e.consume(t, topics.CommandStates, 60*time.Second, func(r *kgo.Record) bool {
		st := &pb.DeviceCommand{}
		if err := codec.Unmarshal(r.Value, st); err != nil {
			t.Fatal(err)
		}
		if st.State > states[st.CommandId] {
			states[st.CommandId] = st.State
		}
		return states["c-ping"] == pb.CommandState_COMMAND_ACKED && states["c-reset"] == pb.CommandState_COMMAND_TIMED_OUT
	}) {
		t.Fatalf("command states: %v", states)
	}
	mu.Lock()
	cmdBody := received[e.root+"medical/devices/"+dev+"/commands"]
	mu.Unlock()
	if !strings.Contains(string(cmdBody), `"commandId":"c-`) {
		t.Errorf("device command topic got %s", cmdBody)
	}

	// Shadow: the device reports, the desired state differs -> delta.
	publish(t, e.svc.MQTTURL, e.root+"medical/devices/"+dev+"/status", 1,
		[]byte(fmt.Sprintf(`{"deviceId":%q,"online":true,"batteryLevel":85,"reported":{"reminderEnabled":false,"firmwareVersion":"2.1.0"},"timestamp":%d}`, dev, time.Now().UnixMilli())))
	desired, _ := shadow.ParseDesired([]string{"reminderEnabled=true", "firmwareVersion=2.1.0"})
	produce(topics.ShadowDesired, dev, &pb.DeviceShadow{Meta: &pb.Meta{Tenant: "it", EventTimeMs: time.Now().UnixMilli()}, DeviceId: dev, Desired: desired})
	var last *pb.DeviceShadow
	if !e.consume(t, topics.Shadows, 60*time.Second, func(r *kgo.Record) bool {
		s := &pb.DeviceShadow{}
		if err := codec.Unmarshal(r.Value, s); err != nil {
			t.Fatal(err)
		}
		last = s
		return !s.Online && s.Version >= 3
	}) {
		t.Fatalf("no offline shadow with version >= 3; last %v", last)
	}
	if _, ok := last.GetDelta().GetFields()["reminderEnabled"]; !ok || len(last.Delta.Fields) != 1 {
		t.Errorf("shadow delta = %v, want only reminderEnabled", last.GetDelta())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		delta := received[e.root+"medical/devices/"+dev+"/shadow/delta"]
		mu.Unlock()
		if strings.Contains(string(delta), `"reminderEnabled":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shadow delta pushed to the device (got %q)", delta)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Silence: the processor reported the device offline on the status topic.
	if !e.consume(t, topics.DeviceStatus, 30*time.Second, func(r *kgo.Record) bool {
		st := &pb.DeviceStatus{}
		_ = codec.Unmarshal(r.Value, st)
		return st.Status == shadow.StatusSilent && !st.Online && st.DeviceId == dev
	}) {
		t.Fatal("no silent offline status for the device")
	}
}

// helperEnv carries the subprocess connector's settings.
const helperEnv = "WARDSTREAM_MQTT_IT_HELPER"

// TestIntegrationHelperConnector is not a test: TestIntegrationKillRestart
// runs the test binary with helperEnv set to run a connector in a separate
// process that it can SIGKILL (no clean disconnect, no flush).
func TestIntegrationHelperConnector(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestIntegrationKillRestart")
	}
	var e itEnv
	if err := json.Unmarshal([]byte(spec), &e.svc); err != nil {
		t.Fatal(err)
	}
	e.prefix, e.root, e.id = os.Getenv(helperEnv+"_PREFIX"), os.Getenv(helperEnv+"_ROOT"), os.Getenv(helperEnv+"_ID")
	cfg, sh := e.config()
	cfg.Shadow.Enabled, cfg.Commands.Enabled = false, false
	if os.Getenv(helperEnv+"_QOS") == "0" {
		cfg.QoS = 0
	}
	if os.Getenv(helperEnv+"_BENCH") == "1" {
		cfg.MaxPayloadBytes = payload.MaxDeadLetterRaw // the most Validate allows; batches of 100 are ~21 KB
		cfg.Connections = mqtt.DefaultConfig().Connections
		if n, err := strconv.Atoi(os.Getenv("WARDSTREAM_MQTT_BENCH_CONNS")); err == nil && n > 0 {
			cfg.Connections = n
		}
		// Producer settings for A/B runs (defaults: config.Default's
		// compression, the test linger of 2 ms).
		if v := os.Getenv("WARDSTREAM_MQTT_BENCH_COMPRESSION"); v != "" {
			sh.Kafka.Compression = v
		}
		if d, err := time.ParseDuration(os.Getenv("WARDSTREAM_MQTT_BENCH_LINGER")); err == nil {
			sh.Kafka.Linger = config.Duration(d)
		}
	}
	c, err := mqtt.New(cfg, sh)
	if err != nil {
		t.Fatal(err)
	}
	// WARDSTREAM_MQTT_BENCH_CPUPROFILE=FILE profiles the helper's first
	// WARDSTREAM_MQTT_BENCH_PROFILE_SECONDS (default 10) seconds; it is
	// killed afterwards, so the profile is written before.
	if f := os.Getenv("WARDSTREAM_MQTT_BENCH_CPUPROFILE"); f != "" {
		secs, _ := strconv.Atoi(os.Getenv("WARDSTREAM_MQTT_BENCH_PROFILE_SECONDS"))
		if secs <= 0 {
			secs = 10
		}
		go profileFor(t, f, time.Duration(secs)*time.Second)
	}
	_ = c.Run(context.Background()) // until killed
}

func (e *itEnv) startHelper(t testing.TB, extraEnv ...string) *exec.Cmd {
	t.Helper()
	spec, _ := json.Marshal(e.svc)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationHelperConnector$", "-test.count=1", "-test.bench=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec), helperEnv+"_PREFIX="+e.prefix, helperEnv+"_ROOT="+e.root, helperEnv+"_ID="+e.id)
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestIntegrationKillRestart: 100 simulated devices publish 100k QoS 1
// messages; the connector process is SIGKILLed in the middle and started
// again; every message id must be in Kafka (duplicates allowed).
func TestIntegrationKillRestart(t *testing.T) {
	e := newITEnv(t, "mqttkill")
	const devices, per = 100, 1000
	// First start creates the persistent sessions and the subscription.
	first := e.startHelper(t)
	time.Sleep(2 * time.Second)

	var acked atomic.Int64
	runID := "k" + e.id[len(e.id)-6:]
	simDone := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := devicesim.Run(context.Background(), devicesim.Options{URL: e.svc.MQTTURL, ClientPrefix: "it-" + runID + "-", TopicRoot: e.root,
			Devices: devices, Messages: per, QoS: 1, InFlight: 4, RunID: runID}, &acked)
		simDone <- err
	}()
	for acked.Load() < devices*per/3 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	t.Logf("killed the connector after %d publishes", acked.Load())
	time.Sleep(time.Second) // devices keep publishing while it is down
	e.startHelper(t)
	if err := <-simDone; err != nil {
		t.Fatalf("simulated devices: %v", err)
	}
	t.Logf("devices published %d messages in %s", acked.Load(), time.Since(start))

	want := map[string]bool{}
	for d := 0; d < devices; d++ {
		for i := 0; i < per; i++ {
			want[devicesim.MessageID(runID, d, i, -1)] = true
		}
	}
	seen, dups := 0, 0
	got := map[string]bool{}
	if !e.consume(t, topics.Vitals, 150*time.Second, func(r *kgo.Record) bool {
		v := &pb.VitalsTelemetry{}
		if err := codec.Unmarshal(r.Value, v); err != nil {
			t.Fatal(err)
		}
		if got[v.Meta.EventId] {
			dups++
		} else if want[v.Meta.EventId] {
			got[v.Meta.EventId] = true
			seen++
		}
		return seen == len(want)
	}) {
		t.Fatalf("only %d of %d message ids reached Kafka (%d duplicates)", seen, len(want), dups)
	}
	t.Logf("all %d message ids in Kafka (%d duplicates) %s after start", seen, dups, time.Since(start))
}

func profileFor(t *testing.T, file string, d time.Duration) {
	f, err := os.Create(file)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Log(err)
		return
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
}
