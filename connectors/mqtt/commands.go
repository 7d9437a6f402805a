package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// deviceAck is the body a device publishes on the ack topic.
type deviceAck struct {
	CommandID string             `json:"commandId"`
	Status    string             `json:"status"`
	Error     string             `json:"error"`
	Timestamp *payload.Timestamp `json:"timestamp"`
}

// commandAck turns a device's ack into a COMMAND_ACKED (or COMMAND_FAILED
// when the device reports an error) state record. It goes through Kafka,
// keyed by device, so that the replica that sent the command (it owns the
// device's partition) learns about it whichever replica received the ack.
func (c *Connector) commandAck(src payload.Source, raw []byte, o payload.Options) []payload.Out {
	if o.MaxBytes > 0 && len(raw) > o.MaxBytes {
		// Truncated like the ingest path's: a dead letter with the whole
		// payload may exceed what a Kafka record holds.
		return []payload.Out{payload.Oversize(src, raw, o)}
	}
	var a deviceAck
	if err := json.Unmarshal(raw, &a); err != nil {
		return []payload.Out{payload.DeadLetter(src, raw, o, &payload.Error{Reason: payload.ReasonMalformedJSON, Err: fmt.Errorf("command ack: %w", err)})}
	}
	if a.CommandID == "" {
		return []payload.Out{payload.DeadLetter(src, raw, o, &payload.Error{Reason: payload.ReasonMissingField, Err: errors.New("command ack lacks commandId")})}
	}
	now := o.Now.UnixMilli()
	st := &pb.DeviceCommand{
		Meta:      &pb.Meta{Tenant: o.Tenant, EventId: a.CommandID + "/ack", EventTimeMs: now, IngestTimeMs: now, Source: src.Topic},
		CommandId: a.CommandID, DeviceId: src.DeviceID, State: pb.CommandState_COMMAND_ACKED, AckTimeMs: now,
	}
	if a.Timestamp != nil && *a.Timestamp > 0 {
		st.Meta.EventTimeMs = int64(*a.Timestamp)
	}
	if a.Status != "" && a.Status != "ok" && a.Status != "success" {
		st.State = pb.CommandState_COMMAND_FAILED
		st.Error = a.Error
		if st.Error == "" {
			st.Error = "device reported " + a.Status
		}
	}
	return []payload.Out{{Topic: topics.CommandStates, Key: src.DeviceID, Msg: st}}
}

// pendingCmd is a sent command waiting for its ack.
type pendingCmd struct {
	cmd      *pb.DeviceCommand
	part     int32
	offset   int64
	deadline time.Time
	// statesAt is the next offset to consume on the states partition of
	// the same number when the command was sent (-1: none consumed yet);
	// the device's answer comes after it.
	statesAt int64
	// expiring: expire is producing its COMMAND_TIMED_OUT.
	expiring bool
}

// dispatcher holds the commands this replica sent and has not resolved.
type dispatcher struct {
	c           *Connector
	cmdTopic    string
	statesTopic string
	// publish sends a command body to the device (PublishDevice; tests
	// replace it).
	publish func(ctx context.Context, deviceID string, body []byte) error
	mu      sync.Mutex
	pending map[string]*pendingCmd // command id
	next    map[int32]int64        // per commands partition: next offset to consume
	// busy is, per commands partition, the command send is handling: its
	// offset stays unmarked until its outcome is durable.
	busy map[int32]int64
	// statesNext is, per states partition, the next offset to consume.
	statesNext map[int32]int64
	// owned holds the partitions assigned to us, per topic; gen counts the
	// revocations of each commands partition, so that send, which runs
	// concurrently with a revocation (the poll loop still handles records
	// returned before it), can tell that its partition went away.
	owned map[string]map[int32]bool
	gen   map[int32]uint64
	// early holds, per states partition, device answers read before their
	// command (see earlyAcks).
	early map[int32]*earlyAcks
	// err is the first outcome Kafka refused for good (see fail); stop
	// ends runCommands' context with it.
	err  error
	stop context.CancelCauseFunc
}

// fail stops the dispatcher with err, an outcome (COMMAND_FAILED,
// COMMAND_TIMED_OUT, a dead letter) that Kafka refused for good. Its
// command's offset stays unmarked, so the next start handles the command
// again; going on would mark later commands and commit past it.
func (d *dispatcher) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
	d.stop(err)
}

// failure is the error fail stopped the dispatcher with, if any.
func (d *dispatcher) failure() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Bounds of earlyAcks: per partition at most maxEarlyAcks answers, each
// for at most earlyAckTTL.
const (
	maxEarlyAcks = 4096
	earlyAckTTL  = 5 * time.Minute
)

// earlyAck is a device's answer to a command id that was not pending when
// it was read.
type earlyAck struct {
	id, device string
	state      pb.CommandState
	offset     int64 // on the states partition
	readAt     time.Time
	claimed    bool
}

// earlyAcks are the device answers of one states partition that came
// before their command. After a restart or rebalance the states partition
// is read again from before the answers to the unresolved commands (mark),
// but it is fetched independently of the commands partition, so an answer
// can be read before the command it answers is read again; dropped, the
// command was sent again and a device that deduplicates by commandId
// without answering again got it timed out after it had acked it. The
// states partition of a number holds the answers to the commands partition
// of the same number (both keyed by device, as many partitions, the range
// balancer), so send looks here before publishing. Answers to commands
// resolved long ago (a replay goes back to the oldest unresolved command)
// are never claimed: they leave after earlyAckTTL or when maxEarlyAcks
// newer ones came, and count as unmatched then. While one is held the
// states partition is not marked past it, so a crash or rebalance before
// its command is read reads it again.
type earlyAcks struct {
	q    []*earlyAck // read order
	byID map[string]*earlyAck
}

// holdLocked keeps a (read from states partition p) unless an answer to
// its id is already held; it says whether it did.
func (d *dispatcher) holdLocked(p int32, a *earlyAck) bool {
	e := d.early[p]
	if e == nil {
		e = &earlyAcks{byID: map[string]*earlyAck{}}
		d.early[p] = e
	}
	if _, dup := e.byID[a.id]; dup {
		return false
	}
	e.q = append(e.q, a)
	e.byID[a.id] = a
	d.pruneLocked(p, a.readAt)
	return true
}

// claimLocked takes the held answer to command id of device (commands
// partition p), if any.
func (d *dispatcher) claimLocked(p int32, id, device string) (*earlyAck, bool) {
	e := d.early[p]
	if e == nil {
		return nil, false
	}
	a, ok := e.byID[id]
	if !ok {
		return nil, false
	}
	delete(e.byID, id)
	a.claimed = true
	if a.device != device {
		d.c.m.acksUnmatched.WithLabelValues(ackDeviceMismatch).Inc()
		d.c.log.Warn("command ack ignored", "reason", ackDeviceMismatch, "topic", d.statesTopic, "partition", p, "offset", a.offset)
		return nil, false
	}
	return a, true
}

// pruneLocked drops the answers of states partition p held longer than
// earlyAckTTL and the oldest beyond maxEarlyAcks, counting the unclaimed.
func (d *dispatcher) pruneLocked(p int32, now time.Time) {
	e := d.early[p]
	if e == nil {
		return
	}
	for len(e.q) > 0 && (e.q[0].claimed || len(e.q) > maxEarlyAcks || now.Sub(e.q[0].readAt) > earlyAckTTL) {
		if a := e.q[0]; !a.claimed {
			delete(e.byID, a.id)
			d.c.m.acksUnmatched.WithLabelValues(ackUnknownCommand).Inc()
			d.c.log.Debug("command ack ignored", "reason", ackUnknownCommand, "topic", d.statesTopic, "partition", p, "offset", a.offset)
		}
		e.q[0] = nil
		e.q = e.q[1:]
	}
	if len(e.q) == 0 {
		delete(d.early, p)
	}
}

// runCommands consumes the commands topic and the command states topic in
// one group (both keyed by device, so the replica that sent a command
// consumes its ack). A command's offset is committed only once it is
// resolved (acked, failed or timed out); after a crash or rebalance the new
// owner sends unresolved commands again (devices deduplicate by commandId).
// It returns nil when ctx is done, and an error when Kafka refused a
// command's outcome for good (see dispatcher.fail): the role stops, and the
// next start handles that command again.
func (c *Connector) runCommands(ctx context.Context) error {
	d := newDispatcher(c)
	ctx, d.stop = context.WithCancelCause(ctx)
	defer d.stop(nil)
	group := c.cfg.Commands.Group
	if group == "" {
		group = c.cfg.TopicPrefix + topics.GroupCommands
	}
	cl, err := kafka.NewClient(c.shared.Kafka, d.groupOpts(group)...)
	if err != nil {
		return err
	}
	defer func() {
		d.mark(cl)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = cl.CommitMarkedOffsets(cctx)
		cl.Close()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				d.expire(ctx)
				d.mark(cl)
			}
		}
	}()
	for {
		fs := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return d.failure()
		}
		fs.EachError(func(t string, p int32, err error) {
			c.log.Warn("consuming commands", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if ctx.Err() != nil {
				return // stopping (fail): leave the rest to the next start
			}
			if r.Topic == d.cmdTopic {
				d.send(ctx, r)
			} else {
				d.state(r)
			}
		})
		d.mark(cl)
	}
}

// groupOpts are the consumer options of the dispatcher's group.
func (d *dispatcher) groupOpts(group string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(d.cmdTopic, d.statesTopic),
		// The range balancer gives a member the same partition numbers of
		// both topics (they have as many partitions and the same keys), so
		// a device's ack reaches the replica holding its pending command;
		// franz-go's default cooperative-sticky balancer does not promise
		// that, and the ack could reach a replica that then also reports
		// the command timed out.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsAssigned(d.assigned),
		// Our own revoke callback replaces franz-go's default one, which
		// commits at a revocation, so revoked commits the marks itself.
		kgo.OnPartitionsRevoked(d.revoked),
		kgo.OnPartitionsLost(d.lost),
	}
}

func newDispatcher(c *Connector) *dispatcher {
	d := &dispatcher{c: c, cmdTopic: c.topics[topics.Commands], statesTopic: c.topics[topics.CommandStates],
		pending: map[string]*pendingCmd{}, next: map[int32]int64{}, busy: map[int32]int64{}, statesNext: map[int32]int64{},
		owned: map[string]map[int32]bool{}, gen: map[int32]uint64{}, early: map[int32]*earlyAcks{},
		stop: func(error) {}}
	d.publish = func(ctx context.Context, deviceID string, body []byte) error {
		return c.PublishDevice(ctx, "commands", deviceID, body)
	}
	if c.cmdPublish != nil {
		d.publish = c.cmdPublish
	}
	return d
}

func (d *dispatcher) assigned(_ context.Context, _ *kgo.Client, added map[string][]int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for t, ps := range added {
		if d.owned[t] == nil {
			d.owned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			d.owned[t][p] = true
		}
	}
}

// revoked commits what is resolved, then forgets the commands of the
// revoked partitions: their new owner sends the unresolved ones again from
// the committed offset and resolves them. franz-go drops its marks after
// this callback and commits nothing itself (we replaced its default revoke
// callback), so without the commit here everything resolved since the last
// autocommit (up to a second) would be sent again.
func (d *dispatcher) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if cl != nil {
		d.mark(cl)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			d.c.log.Warn("committing command offsets at a revocation", "err", err)
		}
		cancel()
	}
	d.forget(revoked)
}

// lost forgets the commands of partitions lost to a group error; a commit
// would fail (our generation is gone), so none is tried.
func (d *dispatcher) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	d.forget(lost)
}

// forget drops the state of partitions that are no longer ours.
func (d *dispatcher) forget(lost map[string][]int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range lost[d.cmdTopic] {
		for id, pc := range d.pending {
			if pc.part == p {
				delete(d.pending, id)
				d.c.m.commandsOpen.Dec()
			}
		}
		delete(d.next, p)
		delete(d.busy, p)
		delete(d.owned[d.cmdTopic], p)
		d.gen[p]++
		// The new owner reads the held answers again (the states mark
		// stayed before them).
		delete(d.early, p)
	}
	for _, p := range lost[d.statesTopic] {
		delete(d.statesNext, p)
		delete(d.owned[d.statesTopic], p)
		delete(d.early, p)
	}
}

// ownsLocked says whether commands partition p is still ours since
// generation gen (no revocation in between).
func (d *dispatcher) ownsLocked(p int32, gen uint64) bool {
	return d.owned[d.cmdTopic][p] && d.gen[p] == gen
}

// mark marks, per commands partition, the offset below which every command
// is resolved, and per states partition the offset from which the answers
// to those unresolved commands (and to every later one, which a restart
// sends again) must be read again.
func (d *dispatcher) mark(cl *kgo.Client) {
	// Under d.mu, so that a revocation cannot come between reading the
	// offsets and marking them: a mark of a revoked partition would be
	// committed over its new owner's commits.
	d.mu.Lock()
	defer d.mu.Unlock()
	cmds, states := d.marksLocked()
	m := map[string]map[int32]kgo.EpochOffset{}
	for topic, offs := range map[string]map[int32]int64{d.cmdTopic: cmds, d.statesTopic: states} {
		if len(offs) == 0 {
			continue
		}
		m[topic] = map[int32]kgo.EpochOffset{}
		for p, o := range offs {
			m[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
	}
	if len(m) > 0 {
		cl.MarkCommitOffsets(m)
	}
}

// marks returns the offsets mark marks. A states partition holds the
// answers to the commands of the commands partition of the same number
// (same keys, as many partitions, the range balancer: see runCommands).
func (d *dispatcher) marks() (cmds, states map[int32]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.marksLocked()
}

func (d *dispatcher) marksLocked() (cmds, states map[int32]int64) {
	cmds, states = map[int32]int64{}, map[int32]int64{}
	for p, n := range d.next {
		cmds[p] = n
	}
	for p, n := range d.statesNext {
		states[p] = n
	}
	for p, o := range d.busy {
		if n, ok := cmds[p]; !ok || o < n {
			cmds[p] = o
		}
	}
	unknown := map[int32]bool{}
	for _, pc := range d.pending {
		if o, ok := cmds[pc.part]; !ok || pc.offset < o {
			cmds[pc.part] = pc.offset
		}
		if pc.statesAt < 0 {
			unknown[pc.part] = true
		} else if o, ok := states[pc.part]; !ok || pc.statesAt < o {
			states[pc.part] = pc.statesAt
		}
	}
	for p, e := range d.early {
		for _, a := range e.q {
			if a.claimed {
				continue
			}
			if o, ok := states[p]; !ok || a.offset < o {
				states[p] = a.offset
			}
			break // read order is offset order
		}
	}
	for p := range unknown {
		// Sent before we read anything of its states partition: keep what
		// is committed there.
		delete(states, p)
	}
	return cmds, states
}

// deviceBody is the JSON a device receives: the seeds' {type, ...} with
// the command's payload fields merged in.
func deviceBody(cmd *pb.DeviceCommand, sent int64) ([]byte, error) {
	body := map[string]any{}
	if cmd.PayloadJson != "" {
		var p any
		if err := json.Unmarshal([]byte(cmd.PayloadJson), &p); err != nil {
			return nil, fmt.Errorf("command %s payload_json: %w", cmd.CommandId, err)
		}
		if obj, ok := p.(map[string]any); ok {
			for k, v := range obj {
				body[k] = v
			}
		} else {
			body["payload"] = p
		}
	}
	body["commandId"] = cmd.CommandId
	body["type"] = cmd.CommandType.String()
	body["issuedAt"] = sent
	if cmd.IssuedBy != "" {
		body["issuedBy"] = cmd.IssuedBy
	}
	return json.Marshal(body)
}

func (d *dispatcher) send(ctx context.Context, r *kgo.Record) {
	c := d.c
	// The offset is marked past this command only once its outcome is
	// durable (pending after the PUBACK, or a state or dead letter in
	// Kafka): a crash in between sends it again instead of losing it.
	d.mu.Lock()
	gen := d.gen[r.Partition]
	if !d.ownsLocked(r.Partition, gen) {
		// Returned by a poll before its partition was revoked: the new
		// owner sends it.
		d.mu.Unlock()
		return
	}
	d.busy[r.Partition] = r.Offset
	d.mu.Unlock()
	refused := false // its outcome did not reach Kafka: stays busy
	defer func() {
		d.mu.Lock()
		if !refused && d.ownsLocked(r.Partition, gen) {
			delete(d.busy, r.Partition)
			d.next[r.Partition] = r.Offset + 1
		}
		d.mu.Unlock()
	}()
	cmd := &pb.DeviceCommand{}
	now := c.o.now()
	if err := codec.Unmarshal(r.Value, cmd); err != nil || cmd.CommandId == "" || cmd.DeviceId == "" || cmd.CommandType == pb.CommandType_COMMAND_TYPE_UNSPECIFIED {
		if err == nil {
			err = errors.New("command needs command_id, device_id and command_type")
		}
		src := payload.Source{Topic: r.Topic, DeviceID: string(r.Key)}
		dl := payload.DeadLetter(src, r.Value, payload.Options{Tenant: c.shared.Tenant, Now: now}, &payload.Error{Reason: payload.ReasonInvalidValue, Err: fmt.Errorf("command at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)})
		dlm := dl.Msg.(*pb.DeadLetter)
		dlm.Stage, dlm.SourcePartition, dlm.SourceOffset = payload.Stage+"/commands", r.Partition, r.Offset
		c.m.rejected.WithLabelValues(string(dl.Reason)).Inc()
		if err := c.produceSync(ctx, dl); err != nil {
			// Left unmarked either way: the next start dead-letters it.
			refused = true
			if ctx.Err() == nil {
				c.log.Error("dead-lettering a command failed", "partition", r.Partition, "offset", r.Offset, "err", err)
				d.fail(fmt.Errorf("dead-lettering the command at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err))
			}
		}
		return
	}
	if cmd.State != pb.CommandState_COMMAND_STATE_UNSPECIFIED && cmd.State != pb.CommandState_COMMAND_PENDING {
		return // a state record written to the requests topic; not a request
	}
	d.mu.Lock()
	a, answered := d.claimLocked(r.Partition, cmd.CommandId, cmd.DeviceId)
	d.mu.Unlock()
	if answered {
		// Sent before a restart or rebalance and answered: the answer is in
		// Kafka already, and the device would not answer a second send.
		c.m.commands.WithLabelValues(a.state.String()).Inc()
		return
	}
	timeout := c.cfg.Commands.Timeout.D()
	if cmd.TimeoutMs > 0 {
		timeout = time.Duration(cmd.TimeoutMs) * time.Millisecond
	}
	body, err := deviceBody(cmd, now.UnixMilli())
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = d.publish(pctx, cmd.DeviceId, body)
		cancel()
	}
	d.mu.Lock()
	owned := d.ownsLocked(r.Partition, gen)
	d.mu.Unlock()
	if !owned {
		// Revoked while we published: the new owner sends it again and
		// resolves it; a second outcome from us would contradict its own.
		return
	}
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: leave it unresolved so the next owner sends it.
			d.mu.Lock()
			d.addPendingLocked(&pendingCmd{cmd: cmd, part: r.Partition, offset: r.Offset, deadline: now.Add(timeout), statesAt: d.statesAtLocked(r.Partition)})
			d.mu.Unlock()
			return
		}
		if err := d.emit(ctx, cmd, pb.CommandState_COMMAND_FAILED, now, err.Error()); err != nil {
			refused = true
			d.fail(fmt.Errorf("command at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err))
		}
		return
	}
	// The device's window starts at the broker's PUBACK: a publish that
	// waited for the broker (up to 30 s) must not eat into it.
	sent := c.o.now()
	d.mu.Lock()
	if !d.ownsLocked(r.Partition, gen) {
		d.mu.Unlock()
		return
	}
	d.addPendingLocked(&pendingCmd{cmd: cmd, part: r.Partition, offset: r.Offset, deadline: sent.Add(timeout), statesAt: d.statesAtLocked(r.Partition)})
	d.mu.Unlock()
	cmd.SentTimeMs = sent.UnixMilli()
	// A COMMAND_SENT that Kafka refuses is only logged (by emit): the
	// command is pending, and its outcome is what must reach Kafka.
	_ = d.emit(ctx, cmd, pb.CommandState_COMMAND_SENT, sent, "")
}

// addPendingLocked makes pc pending; wardstream_mqtt_commands_pending
// counts every command in pending, and every removal from it decrements it.
func (d *dispatcher) addPendingLocked(pc *pendingCmd) {
	if _, dup := d.pending[pc.cmd.CommandId]; !dup {
		d.c.m.commandsOpen.Inc()
	}
	d.pending[pc.cmd.CommandId] = pc
}

// statesAtLocked is pendingCmd.statesAt for a command of partition p.
func (d *dispatcher) statesAtLocked(p int32) int64 {
	if n, ok := d.statesNext[p]; ok {
		return n
	}
	return -1
}

// Reasons of wardstream_mqtt_command_acks_unmatched_total: the ack's
// command is not pending here (a duplicate, a replay of an answer already
// counted, an id nobody sent), or it is, for another device.
const (
	ackUnknownCommand = "unknown_command"
	ackDeviceMismatch = "device_mismatch"
)

// state resolves a pending command from an ack state record.
func (d *dispatcher) state(r *kgo.Record) {
	st := &pb.DeviceCommand{}
	// A broken record was written by us (one from a device was already
	// dead-lettered upstream); a state without ack time is not a device's
	// answer.
	answer := codec.Unmarshal(r.Value, st) == nil && st.AckTimeMs != 0 &&
		(st.State == pb.CommandState_COMMAND_ACKED || st.State == pb.CommandState_COMMAND_FAILED)
	// One critical section from moving statesNext past the record to
	// holding it, so that no mark in between passes a held answer.
	d.mu.Lock()
	if d.owned[d.statesTopic][r.Partition] {
		d.statesNext[r.Partition] = r.Offset + 1
	}
	if !answer {
		d.mu.Unlock()
		return
	}
	pc, ok := d.pending[st.CommandId]
	resolved := ok && st.DeviceId == pc.cmd.DeviceId
	if resolved {
		delete(d.pending, st.CommandId)
		d.c.m.commandsOpen.Dec()
	}
	held := false
	if !ok && d.owned[d.statesTopic][r.Partition] {
		held = d.holdLocked(r.Partition, &earlyAck{id: st.CommandId, device: st.DeviceId, state: st.State, offset: r.Offset, readAt: d.c.o.now()})
	}
	d.mu.Unlock()
	switch {
	case held:
		// Its command may come yet (see earlyAcks); counted when claimed
		// or dropped.
	case resolved:
		// Counted once per command: duplicates and replays of the answer
		// find nothing pending.
		d.c.m.commands.WithLabelValues(st.State.String()).Inc()
	case ok:
		// The ack topic names the device; an ack for another device's
		// command is refused, and the command keeps waiting.
		d.c.m.acksUnmatched.WithLabelValues(ackDeviceMismatch).Inc()
		d.c.log.Warn("command ack ignored", "reason", ackDeviceMismatch, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
	default:
		d.c.m.acksUnmatched.WithLabelValues(ackUnknownCommand).Inc()
		d.c.log.Debug("command ack ignored", "reason", ackUnknownCommand, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
	}
}

// expire reports commands past their deadline as timed out.
func (d *dispatcher) expire(ctx context.Context) {
	now := d.c.o.now()
	var due []*pendingCmd
	d.mu.Lock()
	for p := range d.early {
		d.pruneLocked(p, now)
	}
	for _, pc := range d.pending {
		if !pc.expiring && now.After(pc.deadline) {
			pc.expiring = true
			due = append(due, pc)
		}
	}
	d.mu.Unlock()
	for _, pc := range due {
		if err := d.emit(ctx, pc.cmd, pb.CommandState_COMMAND_TIMED_OUT, now, "no ack from the device"); err != nil {
			// Left pending (and expiring): its offset stays unmarked.
			d.fail(fmt.Errorf("command %s/%d@%d: %w", d.cmdTopic, pc.part, pc.offset, err))
			return
		}
		// Resolved only now that COMMAND_TIMED_OUT is in Kafka: until
		// then the command keeps its offset unmarked.
		d.mu.Lock()
		if d.pending[pc.cmd.CommandId] == pc {
			delete(d.pending, pc.cmd.CommandId)
			d.c.m.commandsOpen.Dec()
		}
		d.mu.Unlock()
	}
}

// emit produces cmd's state s and waits for Kafka; it returns (and logs)
// the error of a state Kafka refused for good.
func (d *dispatcher) emit(ctx context.Context, cmd *pb.DeviceCommand, s pb.CommandState, now time.Time, errText string) error {
	st := &pb.DeviceCommand{
		Meta:      &pb.Meta{Tenant: d.c.shared.Tenant, EventId: cmd.CommandId + "/" + s.String(), EventTimeMs: now.UnixMilli(), IngestTimeMs: now.UnixMilli(), Source: payload.Stage},
		CommandId: cmd.CommandId, DeviceId: cmd.DeviceId, CommandType: cmd.CommandType, PayloadJson: cmd.PayloadJson,
		IssuedBy: cmd.IssuedBy, State: s, TimeoutMs: cmd.TimeoutMs, SentTimeMs: cmd.SentTimeMs, Error: errText, Version: int64(s),
	}
	if cmd.Meta != nil && cmd.Meta.Tenant != "" {
		st.Meta.Tenant = cmd.Meta.Tenant
	}
	if s != pb.CommandState_COMMAND_ACKED {
		d.c.m.commands.WithLabelValues(s.String()).Inc()
	}
	if err := d.c.produceSync(context.WithoutCancel(ctx), payload.Out{Topic: topics.CommandStates, Key: cmd.DeviceId, Msg: st}); err != nil {
		d.c.log.Error("producing command state failed", "state", s.String(), "err", err)
		return fmt.Errorf("producing %s: %w", s, err)
	}
	return nil
}
