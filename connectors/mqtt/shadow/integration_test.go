package shadow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/wardstream/wardstream/connectors/mqtt/shadow"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// TestIntegrationCoPartitionedAcrossRestart runs the group on the real
// broker with 12 partitions: devices' desired states, produced by franz-go
// as the API and the connector do, must be stored in the table partition
// of their input partition, and so survive a restart of the group (table
// recovery reads a partition's table into that partition's processor). A
// group hashing keys differently from Kafka's default partitioner stores
// most devices in another partition and forgets them on restart.
func TestIntegrationCoPartitionedAcrossRestart(t *testing.T) {
	svc := testutil.Integration(t)
	prefix := strings.ReplaceAll(testutil.Unique(t, "shadowit"), "-", "_") + "."
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kc, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	adm := kadm.NewClient(kc)
	names := []string{prefix + topics.ShadowDesired, prefix + topics.DeviceStatus, prefix + topics.Shadows}
	if _, err := adm.CreateTopics(ctx, 12, 1, nil, names...); err != nil {
		t.Fatal(err)
	}
	table := prefix + topics.GroupShadows + "-table"
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		_, _ = adm.DeleteTopics(dctx, append(names, table)...)
	})
	kcfg := config.Default().Kafka
	kcfg.Brokers = svc.KafkaBrokers
	run := func() (stop func()) {
		p, err := shadow.New(shadow.Config{TopicPrefix: prefix, OfflineAfter: time.Hour, CheckInterval: time.Second, Tenant: "it"}, nil, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(rctx, kcfg) }()
		return func() {
			rcancel()
			if err := <-done; err != nil {
				t.Errorf("shadow group: %v", err)
			}
		}
	}
	const devices = 40
	dev := func(i int) string { return fmt.Sprintf("pump-%d", i) }
	produce := func(topic string, m func(d string) proto.Message) map[string]int32 {
		parts := map[string]int32{}
		for i := 0; i < devices; i++ {
			b, err := codec.Marshal(m(dev(i)))
			if err != nil {
				t.Fatal(err)
			}
			r := &kgo.Record{Topic: prefix + topic, Key: []byte(dev(i)), Value: b}
			if err := kc.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			parts[dev(i)] = r.Partition
		}
		return parts
	}
	// await reads the shadows and table topics until every device has a
	// shadow with at least version minVersion and a table record.
	cons, err := kgo.NewClient(kgo.SeedBrokers(svc.KafkaBrokers...), kgo.ConsumeTopics(prefix+topics.Shadows, table),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	latest := map[string]*pb.DeviceShadow{}
	tablePart := map[string]int32{}
	await := func(minVersion int64) {
		t.Helper()
		for {
			n := 0
			for i := 0; i < devices; i++ {
				// The table record is written with the shadow but arrives
				// on its own topic: wait for both.
				_, stored := tablePart[dev(i)]
				if sh := latest[dev(i)]; sh != nil && sh.Version >= minVersion && stored {
					n++
				}
			}
			if n == devices {
				return
			}
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%d of %d devices have a shadow of version >= %d and a table record", n, devices, minVersion)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if r.Topic == table {
					tablePart[string(r.Key)] = r.Partition
					return
				}
				sh := &pb.DeviceShadow{}
				if err := codec.Unmarshal(r.Value, sh); err != nil {
					t.Fatalf("shadow record: %v", err)
				}
				latest[sh.DeviceId] = sh
			})
		}
	}

	stop := run()
	desired, err := shadow.ParseDesired([]string{"dose_ml=2.5", "mode=night"})
	if err != nil {
		t.Fatal(err)
	}
	in := produce(topics.ShadowDesired, func(d string) proto.Message {
		return &pb.DeviceShadow{Meta: &pb.Meta{Tenant: "it", EventTimeMs: time.Now().UnixMilli()}, DeviceId: d, Desired: desired}
	})
	await(1)
	stop()
	for d, p := range in {
		if tp, ok := tablePart[d]; !ok || tp != p {
			t.Errorf("device %s: input in partition %d, table entry in partition %d (present %v)", d, p, tp, ok)
		}
	}

	// A fresh group instance restores the table and continues each shadow.
	stop = run()
	defer stop()
	produce(topics.DeviceStatus, func(d string) proto.Message {
		return &pb.DeviceStatus{Meta: &pb.Meta{Tenant: "it", EventTimeMs: time.Now().UnixMilli(), IngestTimeMs: time.Now().UnixMilli()}, DeviceId: d, Online: true}
	})
	await(2)
	for i := 0; i < devices; i++ {
		sh := latest[dev(i)]
		if got := sh.GetDesired().GetFields()["mode"].GetStringValue(); got != "night" || sh.Version != 2 || !sh.Online {
			t.Errorf("device %s after restart: version %d, online %v, desired mode %q; want version 2, online, desired kept", dev(i), sh.Version, sh.Online, got)
		}
	}
}
