package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/mqtt"
	"github.com/wardstream/wardstream/connectors/mqtt/shadow"
	"github.com/wardstream/wardstream/internal/kafka"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// cmdShadow is `wardstream shadow set DEVICE key=value...`: it publishes a
// desired-state update to the shadow-desired topic; the mqtt role's shadow
// group merges it, versions the shadow and pushes the delta to the device.
// Values parse as JSON when they can (numbers, true/false, objects); null
// removes a key; anything else is a string.
func cmdShadow(ctx context.Context, args []string) error {
	if len(args) < 1 || args[0] != "set" {
		return fmt.Errorf("%w: wardstream shadow set DEVICE key=value... [--config FILE] [--tenant T]", errUsage)
	}
	args = args[1:]
	var device string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		device, args = args[0], args[1:]
	}
	var kv []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		kv, args = append(kv, args[0]), args[1:]
	}
	fs := newFlags("shadow")
	cfgPath := configFlag(fs)
	tenant := fs.String("tenant", "", "tenant of the update (default: the topology's tenant)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kv = append(kv, fs.Args()...)
	if device == "" || len(kv) == 0 {
		return fmt.Errorf("%w: want a DEVICE and at least one key=value", errUsage)
	}
	desired, err := shadow.ParseDesired(kv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	e, err := loadEnv(*cfgPath)
	if err != nil {
		return err
	}
	mcfg, err := mqtt.LoadConfig(e.cfg)
	if err != nil {
		return err
	}
	if *tenant == "" {
		*tenant = e.cfg.Tenant
	}
	now := time.Now().UnixMilli()
	sh := &pb.DeviceShadow{
		Meta:     &pb.Meta{Tenant: *tenant, EventId: fmt.Sprintf("%s/desired/%d", device, time.Now().UnixNano()), EventTimeMs: now, IngestTimeMs: now, Source: "cli"},
		DeviceId: device, Desired: desired, DesiredUpdatedMs: now,
	}
	b, err := codec.Marshal(sh)
	if err != nil {
		return err
	}
	cl, err := kafka.NewClient(e.cfg.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	topic := mcfg.TopicPrefix + topics.ShadowDesired
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Key: []byte(device), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("publishing the desired state of %s to %s: %w", device, topic, err)
	}
	fmt.Printf("desired state of %s sent to %s: %s\n", device, topic, desired)
	return nil
}
