package mqtt

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
	"github.com/wardstream/wardstream/schemas/topics"
)

// The connector takes the tenants a payload may name from the topology
// (tenant and tenants[].id): an intake naming a configured tenant lands in
// it, one naming another tenant is dead-lettered as unknown_tenant and
// counted; it used to land in whatever tenant the device named.
func TestPayloadTenantFromTopology(t *testing.T) {
	root := &config.Root{Tenant: "hospital-a", Tenants: []config.TenantConfig{{ID: "hospital-a"}, {ID: "hospital-b"}}}
	c, err := FromRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Intake, topics.DeadLetters))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	c.kcl, err = kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.kcl.Close()
	ms := time.Now().Add(-time.Minute).UnixMilli()
	for i, tenant := range []string{"hospital-b", "hospital-z"} {
		raw := fmt.Sprintf(`{"messageId":"m%d","deviceId":"pc-1","tenant":%q,"patientId":"p1","medicationId":"m1","intakeTime":%d,"status":"taken"}`, i, tenant, ms)
		c.onPublish(paho.PublishReceived{Packet: &paho.Publish{Topic: "medical/devices/pc-1/medication_intake", Payload: []byte(raw)}})
	}
	if err := c.kcl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range readTopic(t, kc, topics.Intake) {
		var m pb.MedicationIntake
		if err := codec.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Meta.Tenant)
	}
	if fmt.Sprint(got) != "[hospital-b]" {
		t.Errorf("intake tenants %v; want [hospital-b]", got)
	}
	var reasons []string
	for _, r := range readTopic(t, kc, topics.DeadLetters) {
		var dl pb.DeadLetter
		if err := codec.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, dl.Reason)
	}
	if fmt.Sprint(reasons) != "[unknown_tenant]" {
		t.Errorf("dead letters %v; want [unknown_tenant]", reasons)
	}
	if n := counterValue(c.m.rejected.WithLabelValues(string(payload.ReasonUnknownTenant))); n != 1 {
		t.Errorf("rejected{unknown_tenant} = %v; want 1", n)
	}
}
