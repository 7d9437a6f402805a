package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// fakeClock is a settable clock for Connector.o.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time  { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) set(t time.Time) { f.mu.Lock(); f.t = t; f.mu.Unlock() }
func (f *fakeClock) add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// cmdHarness is a Connector whose Kafka client talks to an in-process kfake
// cluster (commands, command states and dead letters with parts
// partitions), with a fake clock and no MQTT broker.
type cmdHarness struct {
	c     *Connector
	kc    *kfake.Cluster
	clock *fakeClock
}

func newCmdHarness(t *testing.T, parts int32) *cmdHarness {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topics.Commands, topics.CommandStates, topics.DeadLetters))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	c, err := New(DefaultConfig(), Shared{Tenant: "t0"})
	if err != nil {
		t.Fatal(err)
	}
	c.shared.Kafka = config.Default().Kafka
	c.shared.Kafka.Brokers = kc.ListenAddrs()
	clock := &fakeClock{t: time.UnixMilli(1_773_144_000_000)}
	c.o.now = clock.now
	c.kcl, err = kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.kcl.Close)
	return &cmdHarness{c: c, kc: kc, clock: clock}
}

// assign gives d partition 0 of both topics, as the group does before the
// first fetch.
func assign(d *dispatcher) {
	d.assigned(context.Background(), nil, map[string][]int32{d.cmdTopic: {0}, d.statesTopic: {0}})
}

// cmdRecord is a command request as the commands topic carries it.
func cmdRecord(t *testing.T, id, device string, part int32, off int64, timeout time.Duration) *kgo.Record {
	t.Helper()
	b, err := codec.Marshal(&pb.DeviceCommand{CommandId: id, DeviceId: device, CommandType: pb.CommandType_PING, TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.Commands, Key: []byte(device), Value: b, Partition: part, Offset: off}
}

// states returns the command states on the states topic, in order.
func (h *cmdHarness) states(t *testing.T) []*pb.DeviceCommand {
	t.Helper()
	var out []*pb.DeviceCommand
	for _, r := range readTopic(t, h.kc, topics.CommandStates) {
		st := &pb.DeviceCommand{}
		if err := codec.Unmarshal(r.Value, st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

func stateNames(sts []*pb.DeviceCommand) []string {
	var out []string
	for _, st := range sts {
		out = append(out, st.CommandId+"/"+st.State.String())
	}
	return out
}

// The device's reply window (commands.timeout or timeout_ms) starts when
// the broker acknowledged the publish (README: COMMAND_SENT after the
// broker's PUBACK), not when the dispatcher took the record: a publish that
// waits for the broker (a reconnect, a full in-flight window; up to 30 s)
// must not eat the device's window. send took the clock before publishing
// and counted the deadline and sent_time_ms from it.
func TestCommandTimeoutStartsAfterPublish(t *testing.T) {
	for _, tc := range []struct {
		name    string
		publish time.Duration // how long the broker takes to PUBACK
		timeout time.Duration
	}{
		{"fast publish", 0, 10 * time.Second},
		{"slow publish shorter than the window", 20 * time.Second, 30 * time.Second},
		{"slow publish longer than the window", 25 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			d.publish = func(context.Context, string, []byte) error { h.clock.add(tc.publish); return nil }
			start := h.clock.now()
			d.send(context.Background(), cmdRecord(t, "c1", "d1", 0, 0, tc.timeout))
			acked := start.Add(tc.publish)

			// Just before the window ends, measured from the PUBACK: still pending.
			h.clock.set(acked.Add(tc.timeout - time.Second))
			d.expire(context.Background())
			if got := stateNames(h.states(t)); len(got) != 1 || got[0] != "c1/COMMAND_SENT" {
				t.Fatalf("states %d s after the PUBACK with a %v window: %v, want only c1/COMMAND_SENT", tc.timeout/time.Second-1, tc.timeout, got)
			}
			if sts := h.states(t); sts[0].SentTimeMs != acked.UnixMilli() {
				t.Errorf("sent_time_ms %d, want the PUBACK's time %d (dispatch was %d)", sts[0].SentTimeMs, acked.UnixMilli(), start.UnixMilli())
			}
			h.clock.set(acked.Add(tc.timeout + time.Second))
			d.expire(context.Background())
			if got := stateNames(h.states(t)); len(got) != 2 || got[1] != "c1/COMMAND_TIMED_OUT" {
				t.Errorf("states after the window: %v, want c1/COMMAND_SENT, c1/COMMAND_TIMED_OUT", got)
			}
		})
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

// waitFor polls cond every 20 ms for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// produce writes msg to the catalog topic on the harness's cluster.
func (h *cmdHarness) produce(t *testing.T, topic, key string, msg *pb.DeviceCommand) {
	t.Helper()
	b, err := codec.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.kcl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// runDispatcher runs runCommands until the returned stop is called; stop
// waits for it to return (its clean drain commits the marked offsets).
func (h *cmdHarness) runDispatcher(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.c.runCommands(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runCommands: %v", err)
		}
	}
}

// committed returns the group's committed offsets per topic and partition.
func (h *cmdHarness) committed(t *testing.T) map[string]map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	os, err := kadm.NewClient(cl).FetchOffsets(context.Background(), topics.GroupCommands)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out
}

// The group consumes the commands and the command states topics, with
// AutoCommitMarks: only marked offsets are committed. mark marked the
// commands topic only, so the states topic's offsets were never committed
// and every start read every state ever written (SENT, ACKED, TIMED_OUT:
// a week of retention) again, counting each replayed device answer in
// wardstream_mqtt_commands_total once more.
func TestCommandStatesOffsetsCommitted(t *testing.T) {
	h := newCmdHarness(t, 1)
	var mu sync.Mutex
	var sent []string
	h.c.cmdPublish = func(_ context.Context, dev string, _ []byte) error {
		mu.Lock()
		sent = append(sent, dev)
		mu.Unlock()
		return nil
	}
	h.produce(t, topics.Commands, "d1", &pb.DeviceCommand{CommandId: "c1", DeviceId: "d1", CommandType: pb.CommandType_PING})
	stop := h.runDispatcher(t)
	waitFor(t, "c1 sent", func() bool { return gaugeValue(h.c.m.commandsOpen) == 1 })
	h.produce(t, topics.CommandStates, "d1", &pb.DeviceCommand{CommandId: "c1", DeviceId: "d1", State: pb.CommandState_COMMAND_ACKED, AckTimeMs: 1})
	waitFor(t, "c1 acked", func() bool { return gaugeValue(h.c.m.commandsOpen) == 0 })
	stop()

	got := h.committed(t)
	// States: c1's COMMAND_SENT (ours) and the device's COMMAND_ACKED.
	if got[topics.Commands][0] != 1 || got[topics.CommandStates][0] != 2 {
		t.Errorf("committed %v, want %s/0 at 1 and %s/0 at 2", got, topics.Commands, topics.CommandStates)
	}

	// A restart reads neither c1 nor its answer again.
	acked := counterValue(h.c.m.commands.WithLabelValues(pb.CommandState_COMMAND_ACKED.String()))
	h.c.m = newMetrics(nil)
	stop = h.runDispatcher(t)
	time.Sleep(2 * time.Second)
	stop()
	if n := counterValue(h.c.m.commands.WithLabelValues(pb.CommandState_COMMAND_ACKED.String())); acked != 1 || n != 0 || len(sent) != 1 {
		t.Errorf("commands_total{ACKED} %v in the first run, %v after the restart; %d publishes; want 1, 0, 1", acked, n, len(sent))
	}
}

// A command's offset may be marked (and autocommitted within a second)
// only once its outcome is durable: the PUBACK and COMMAND_SENT (then it is
// pending), COMMAND_FAILED, COMMAND_TIMED_OUT, or its dead letter. send set
// next before publishing, so while a publish waited for the broker (up to
// 30 s) the command's offset was committed; a crash then lost the command
// (never sent, never resolved, never sent again). expire dropped the
// command from pending before COMMAND_TIMED_OUT reached Kafka, the same
// window for the timeout.
func TestCommandOffsetNotMarkedBeforeOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		// during is where the outcome is being made durable: "publish" or
		// "produce" (a produce request to Kafka).
		during  string
		publish error
		bad     bool // a record that is no command: dead-lettered
		expire  bool // the outcome is the timeout
	}{
		{name: "publishing", during: "publish"},
		{name: "producing COMMAND_FAILED", during: "produce", publish: errors.New("broker refused")},
		{name: "producing the dead letter", during: "produce", bad: true},
		{name: "producing COMMAND_TIMED_OUT", during: "produce", expire: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			const off = 7
			d.mu.Lock()
			d.next[0] = off // commands before it resolved
			d.mu.Unlock()
			var mu sync.Mutex
			var seen []int64
			check := func() {
				cmds, _ := d.marks()
				mu.Lock()
				seen = append(seen, cmds[0])
				mu.Unlock()
			}
			d.publish = func(context.Context, string, []byte) error {
				if tc.during == "publish" {
					check()
				}
				return tc.publish
			}
			rec := cmdRecord(t, "c1", "d1", 0, off, 10*time.Second)
			if tc.bad {
				rec.Value = []byte("not a command")
			}
			if tc.during == "produce" && !tc.expire {
				h.kc.ControlKey(0, func(kmsg.Request) (kmsg.Response, error, bool) { check(); return nil, nil, false })
			}
			d.send(context.Background(), rec)
			if tc.expire {
				h.kc.ControlKey(0, func(kmsg.Request) (kmsg.Response, error, bool) { check(); return nil, nil, false })
				h.clock.add(11 * time.Second)
				d.expire(context.Background())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				t.Fatal("the check never ran")
			}
			for _, o := range seen {
				if o > off {
					t.Errorf("%s: commands partition 0 marked at %d, past the command at %d whose outcome is not yet durable", tc.during, o, off)
				}
			}
			if cmds, _ := d.marks(); cmds[0] != off+1 && !(tc.during == "publish") {
				t.Errorf("after the outcome: marked at %d, want %d", cmds[0], off+1)
			}
		})
	}
}

// A rebalance (eager: the range balancer) revokes a partition while the poll
// loop is still handling records franz-go returned before it. The new
// owner starts from the committed offset and sends those commands itself.
// send went on: it published the revoked partition's remaining records,
// and a command whose publish was under way when the partition was revoked
// became pending again after revoked had cleared the partition, so this
// replica, no longer the owner, timed it out (a second outcome beside the
// new owner's) and kept marking the partition.
func TestCommandRevokedDuringSend(t *testing.T) {
	for _, tc := range []struct {
		name string
		// revokeInPublish: the partition is revoked while c1's publish
		// waits for the broker; otherwise before send takes c1.
		revokeInPublish bool
	}{
		{name: "revoked while publishing", revokeInPublish: true},
		{name: "revoked before a buffered record", revokeInPublish: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			lost := map[string][]int32{d.cmdTopic: {0}, d.statesTopic: {0}}
			published := 0
			d.publish = func(context.Context, string, []byte) error {
				published++
				if tc.revokeInPublish {
					d.revoked(context.Background(), nil, lost)
				}
				return nil
			}
			if !tc.revokeInPublish {
				d.revoked(context.Background(), nil, lost)
			}
			d.send(context.Background(), cmdRecord(t, "c1", "d1", 0, 3, 5*time.Second))
			if !tc.revokeInPublish && published != 0 {
				t.Errorf("published %d commands of a revoked partition", published)
			}
			h.clock.add(time.Minute)
			d.expire(context.Background())
			for _, st := range h.states(t) {
				if st.State == pb.CommandState_COMMAND_TIMED_OUT {
					t.Errorf("the old owner reported %s/%s for a revoked partition", st.CommandId, st.State)
				}
			}
			cmds, states := d.marks()
			if _, ok := cmds[0]; ok {
				t.Errorf("still marks revoked commands partition 0 at %d", cmds[0])
			}
			if _, ok := states[0]; ok {
				t.Errorf("still marks revoked states partition 0 at %d", states[0])
			}
			if g := gaugeValue(h.c.m.commandsOpen); g != 0 {
				t.Errorf("commands_pending %v, want 0", g)
			}
		})
	}
}

// pollUntil polls cl, handing every record to d (send or state, as the
// poll loop does), until it has seen n records.
func pollUntil(t *testing.T, cl *kgo.Client, d *dispatcher, n int) {
	t.Helper()
	seen := 0
	for end := time.Now().Add(15 * time.Second); seen < n; {
		if time.Now().After(end) {
			t.Fatalf("polled %d of %d records", seen, n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollRecords(ctx, 100)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if r.Topic == d.cmdTopic {
				d.send(context.Background(), r)
			} else {
				d.state(r)
			}
		})
	}
}

// Passing our own OnPartitionsRevoked replaces franz-go's default one,
// which commits the marked offsets at a revocation; franz-go then drops
// its marks. So offsets marked since the last autocommit (up to a second)
// were never committed, and the new owner sent commands that were already
// resolved again (a second outcome for a device that deduplicates without
// acking again). The revocation must commit what is marked.
func TestCommandMarksCommittedOnRevoke(t *testing.T) {
	h := newCmdHarness(t, 1)
	d := newDispatcher(h.c)
	d.publish = func(context.Context, string, []byte) error { return nil }
	// No autocommit during the test: only a revocation commits.
	cl, err := kafka.NewClient(h.c.shared.Kafka, append(d.groupOpts(topics.GroupCommands), kgo.AutoCommitInterval(time.Hour))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h.produce(t, topics.Commands, "d1", &pb.DeviceCommand{CommandId: "c1", DeviceId: "d1", CommandType: pb.CommandType_PING})
	pollUntil(t, cl, d, 2) // c1, then its COMMAND_SENT
	h.produce(t, topics.CommandStates, "d1", &pb.DeviceCommand{CommandId: "c1", DeviceId: "d1", State: pb.CommandState_COMMAND_ACKED, AckTimeMs: 1})
	pollUntil(t, cl, d, 1) // the device's ack resolves c1
	d.mark(cl)
	if g := gaugeValue(h.c.m.commandsOpen); g != 0 {
		t.Fatalf("commands_pending %v after the ack, want 0", g)
	}

	cl.ForceRebalance()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := h.committed(t)
		if got[topics.Commands][0] == 1 && got[topics.CommandStates][0] == 2 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("committed %v 5 s after the rebalance, want %s/0 at 1 and %s/0 at 2 (the marks at the revocation)", got, topics.Commands, topics.CommandStates)
		}
	}
}

// wardstream_mqtt_commands_pending counts the commands in pending. A
// publish cut short by the shutdown left its command pending (so that its
// offset stays unmarked) without counting it, and the command's later
// removal (its ack, its timeout, the revocation at Close) took the gauge
// below zero.
func TestCommandsPendingGaugeOnShutdownPath(t *testing.T) {
	ack := func(t *testing.T, h *cmdHarness, d *dispatcher) {
		b, err := codec.Marshal(&pb.DeviceCommand{CommandId: "c1", DeviceId: "d1", State: pb.CommandState_COMMAND_ACKED, AckTimeMs: 1})
		if err != nil {
			t.Fatal(err)
		}
		d.state(&kgo.Record{Topic: topics.CommandStates, Key: []byte("d1"), Value: b, Partition: 0, Offset: 0})
	}
	for _, tc := range []struct {
		name   string
		remove func(t *testing.T, h *cmdHarness, d *dispatcher)
	}{
		{"revoked", func(_ *testing.T, _ *cmdHarness, d *dispatcher) {
			d.revoked(context.Background(), nil, map[string][]int32{d.cmdTopic: {0}, d.statesTopic: {0}})
		}},
		{"lost", func(_ *testing.T, _ *cmdHarness, d *dispatcher) {
			d.lost(context.Background(), nil, map[string][]int32{d.cmdTopic: {0}, d.statesTopic: {0}})
		}},
		{"acked", ack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			ctx, cancel := context.WithCancel(context.Background())
			d.publish = func(ctx context.Context, _ string, _ []byte) error { cancel(); return ctx.Err() }
			d.send(ctx, cmdRecord(t, "c1", "d1", 0, 0, 10*time.Second))
			if g := gaugeValue(h.c.m.commandsOpen); g != 1 {
				t.Errorf("commands_pending %v with c1 left pending at shutdown, want 1", g)
			}
			tc.remove(t, h, d)
			if g := gaugeValue(h.c.m.commandsOpen); g != 0 {
				t.Errorf("commands_pending %v after c1 was %s, want 0", g, tc.name)
			}
		})
	}
}

// wardstream_mqtt_commands_total{state="COMMAND_ACKED"|"COMMAND_FAILED"}
// counts commands the device answered. state counted every ack record it
// read: a duplicate ack, an ack replayed after a restart, an ack for a
// command id nobody sent; an ack from another device than the command's
// was dropped with no trace. Only an ack that resolves a pending command
// counts there; the others count in command_acks_unmatched_total{reason}.
func TestCommandAckMetrics(t *testing.T) {
	type ack struct {
		id, device string
		state      pb.CommandState
	}
	for _, tc := range []struct {
		name              string
		acks              []ack
		acked, failed     float64
		unknown, mismatch float64
		pending           float64
	}{
		{name: "ack resolves", acks: []ack{{"c1", "d1", pb.CommandState_COMMAND_ACKED}}, acked: 1},
		{name: "error ack resolves", acks: []ack{{"c1", "d1", pb.CommandState_COMMAND_FAILED}}, failed: 1},
		{name: "duplicate ack", acks: []ack{{"c1", "d1", pb.CommandState_COMMAND_ACKED}, {"c1", "d1", pb.CommandState_COMMAND_ACKED}}, acked: 1, unknown: 1},
		{name: "unknown command", acks: []ack{{"c9", "d1", pb.CommandState_COMMAND_ACKED}}, unknown: 1, pending: 1},
		{name: "another device", acks: []ack{{"c1", "d2", pb.CommandState_COMMAND_ACKED}}, mismatch: 1, pending: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			d.publish = func(context.Context, string, []byte) error { return nil }
			d.send(context.Background(), cmdRecord(t, "c1", "d1", 0, 0, 10*time.Minute))
			for i, a := range tc.acks {
				d.state(ackRecord(t, a.id, a.device, a.state, int64(i+1)))
			}
			// An answer to no pending command is held for a while in case
			// its command comes (TestCommandAckBeforeItsCommand), and
			// counted when it leaves.
			h.clock.add(earlyAckTTL + time.Second)
			d.expire(context.Background())
			m := h.c.m
			got := []float64{
				counterValue(m.commands.WithLabelValues(pb.CommandState_COMMAND_ACKED.String())),
				counterValue(m.commands.WithLabelValues(pb.CommandState_COMMAND_FAILED.String())),
				counterValue(m.acksUnmatched.WithLabelValues(ackUnknownCommand)),
				counterValue(m.acksUnmatched.WithLabelValues(ackDeviceMismatch)),
				gaugeValue(m.commandsOpen),
			}
			want := []float64{tc.acked, tc.failed, tc.unknown, tc.mismatch, tc.pending}
			for i, name := range []string{"commands_total{ACKED}", "commands_total{FAILED}", "acks_unmatched{unknown_command}", "acks_unmatched{device_mismatch}", "commands_pending"} {
				if got[i] != want[i] {
					t.Errorf("%s = %v, want %v", name, got[i], want[i])
				}
			}
		})
	}
}

// ackRecord is a device's answer as the states topic carries it.
func ackRecord(t *testing.T, id, device string, state pb.CommandState, off int64) *kgo.Record {
	t.Helper()
	b, err := codec.Marshal(&pb.DeviceCommand{CommandId: id, DeviceId: device, State: state, AckTimeMs: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.CommandStates, Key: []byte(device), Value: b, Partition: 0, Offset: off}
}

// After a restart or rebalance the dispatcher reads the commands partition
// from its oldest unresolved command and the states partition from before
// that command's answer, but the two are fetched independently: the
// device's answer (replayed) can come before the command. state ignored it
// (no such command pending), send published the command again, the device
// deduplicated it without answering again, and the command was reported
// COMMAND_TIMED_OUT after COMMAND_ACKED.
func TestCommandAckBeforeItsCommand(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ackDevice   string
		ackState    pb.CommandState
		revoke      bool // a rebalance between the answer and the command
		wantPublish int
		wantStates  []string // produced by the dispatcher, in order
		wantCount   string   // commands_total label counted once
		mismatch    float64
	}{
		{name: "ack", ackDevice: "d1", ackState: pb.CommandState_COMMAND_ACKED, wantCount: "COMMAND_ACKED"},
		{name: "error ack", ackDevice: "d1", ackState: pb.CommandState_COMMAND_FAILED, wantCount: "COMMAND_FAILED"},
		{name: "ack from another device", ackDevice: "d2", ackState: pb.CommandState_COMMAND_ACKED, wantPublish: 1,
			wantStates: []string{"c1/COMMAND_SENT", "c1/COMMAND_TIMED_OUT"}, wantCount: "COMMAND_TIMED_OUT", mismatch: 1},
		// The new owner reads the answer again; this one forgets it.
		{name: "revoked in between", ackDevice: "d1", ackState: pb.CommandState_COMMAND_ACKED, revoke: true, wantPublish: 1,
			wantStates: []string{"c1/COMMAND_SENT", "c1/COMMAND_TIMED_OUT"}, wantCount: "COMMAND_TIMED_OUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			published := 0
			d.publish = func(context.Context, string, []byte) error { published++; return nil }
			d.state(ackRecord(t, "c1", tc.ackDevice, tc.ackState, 5))
			if _, states := d.marks(); states[0] != 5 {
				t.Errorf("states partition marked at %d with the answer at 5 held for its command, want 5", states[0])
			}
			if tc.revoke {
				all := map[string][]int32{d.cmdTopic: {0}, d.statesTopic: {0}}
				d.revoked(context.Background(), nil, all)
				d.assigned(context.Background(), nil, all)
			}
			d.send(context.Background(), cmdRecord(t, "c1", "d1", 0, 3, 10*time.Second))
			h.clock.add(time.Minute)
			d.expire(context.Background())
			if published != tc.wantPublish {
				t.Errorf("published c1 %d times, want %d", published, tc.wantPublish)
			}
			if got := stateNames(h.states(t)); fmt.Sprint(got) != fmt.Sprint(tc.wantStates) {
				t.Errorf("states %v, want %v", got, tc.wantStates)
			}
			for _, s := range []string{"COMMAND_ACKED", "COMMAND_FAILED", "COMMAND_TIMED_OUT"} {
				want := 0.0
				if s == tc.wantCount {
					want = 1
				}
				if n := counterValue(h.c.m.commands.WithLabelValues(s)); n != want {
					t.Errorf("commands_total{%s} = %v, want %v", s, n, want)
				}
			}
			if n := counterValue(h.c.m.acksUnmatched.WithLabelValues(ackDeviceMismatch)); n != tc.mismatch {
				t.Errorf("acks_unmatched{device_mismatch} = %v, want %v", n, tc.mismatch)
			}
			if cmds, _ := d.marks(); cmds[0] != 4 {
				t.Errorf("commands partition marked at %d, want 4 (c1 resolved)", cmds[0])
			}
			if g := gaugeValue(h.c.m.commandsOpen); g != 0 {
				t.Errorf("commands_pending %v, want 0", g)
			}
		})
	}
}

// The answers held for their commands are bounded: per partition at most
// maxEarlyAcks, each for at most earlyAckTTL; the states mark moves on
// past those dropped.
func TestEarlyAcksBounded(t *testing.T) {
	h := newCmdHarness(t, 1)
	d := newDispatcher(h.c)
	assign(d)
	for i := 0; i < maxEarlyAcks+10; i++ {
		d.state(ackRecord(t, fmt.Sprintf("old-%d", i), "d1", pb.CommandState_COMMAND_ACKED, int64(i)))
	}
	d.mu.Lock()
	held := len(d.early[0].byID)
	d.mu.Unlock()
	if held != maxEarlyAcks {
		t.Errorf("%d answers held, want %d", held, maxEarlyAcks)
	}
	if n := counterValue(h.c.m.acksUnmatched.WithLabelValues(ackUnknownCommand)); n != 10 {
		t.Errorf("acks_unmatched{unknown_command} = %v after dropping 10, want 10", n)
	}
	if _, states := d.marks(); states[0] != 10 {
		t.Errorf("states partition marked at %d, want 10 (the oldest held answer)", states[0])
	}
	h.clock.add(earlyAckTTL + time.Second)
	d.expire(context.Background())
	if n := counterValue(h.c.m.acksUnmatched.WithLabelValues(ackUnknownCommand)); n != maxEarlyAcks+10 {
		t.Errorf("acks_unmatched{unknown_command} = %v after the TTL, want %d", n, maxEarlyAcks+10)
	}
	if _, states := d.marks(); states[0] != maxEarlyAcks+10 {
		t.Errorf("states partition marked at %d after the TTL, want %d", states[0], maxEarlyAcks+10)
	}
}

// refuseProduce makes kc answer every produce request from now on with
// MESSAGE_TOO_LARGE: Kafka refusing the records for good.
func refuseProduce(kc *kfake.Cluster) {
	kc.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = pr.Version
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.MessageTooLarge.Code
				rp.BaseOffset = -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

// A command's outcome that Kafka refuses for good (its COMMAND_FAILED,
// COMMAND_TIMED_OUT or dead letter) was logged and the command resolved
// anyway: its offset was marked and committed, so the outcome was lost and
// the command never retried. The dispatcher must keep the offset unmarked
// and stop the role with the error, so that the next start handles the
// command again.
func TestCommandOutcomeRefusedStopsTheRole(t *testing.T) {
	for _, tc := range []struct {
		name    string
		publish error
		bad     bool // a record that is no command: dead-lettered
		expire  bool // the outcome is the timeout
	}{
		{name: "COMMAND_FAILED refused", publish: errors.New("broker refused")},
		{name: "dead letter refused", bad: true},
		{name: "COMMAND_TIMED_OUT refused", expire: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCmdHarness(t, 1)
			d := newDispatcher(h.c)
			assign(d)
			const off = 7
			d.mu.Lock()
			d.next[0] = off
			d.mu.Unlock()
			d.publish = func(context.Context, string, []byte) error { return tc.publish }
			rec := cmdRecord(t, "c1", "d1", 0, off, 10*time.Second)
			if tc.bad {
				rec.Value = []byte("not a command")
			}
			if !tc.expire {
				refuseProduce(h.kc)
			}
			d.send(context.Background(), rec)
			if tc.expire {
				refuseProduce(h.kc)
				h.clock.add(11 * time.Second)
				d.expire(context.Background())
			}
			if cmds, _ := d.marks(); cmds[0] > off {
				t.Errorf("commands partition marked at %d, past the command at %d whose outcome Kafka refused", cmds[0], off)
			}
			if err := d.failure(); err == nil {
				t.Error("no error to stop the role with")
			}
		})
	}

	// End to end: runCommands returns the error, and the commit it makes
	// on the way out leaves the command to the next start.
	t.Run("runCommands", func(t *testing.T) {
		h := newCmdHarness(t, 1)
		h.c.cmdPublish = func(context.Context, string, []byte) error { return nil }
		if err := h.c.kcl.ProduceSync(context.Background(), &kgo.Record{Topic: topics.Commands, Key: []byte("d1"), Value: []byte("not a command")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		refuseProduce(h.kc)
		done := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { done <- h.c.runCommands(ctx) }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("runCommands returned nil, want the produce error")
			}
		case <-time.After(20 * time.Second):
			cancel()
			<-done
			t.Error("runCommands still runs 20 s after the dead letter was refused")
		}
		if got := h.committed(t)[topics.Commands][0]; got > 0 {
			t.Errorf("commands partition committed at %d, past the refused command at 0", got)
		}
	})
}
