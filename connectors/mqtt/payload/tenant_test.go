package payload_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardstream/wardstream/connectors/mqtt/payload"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

// tenantsOf returns the Meta tenant of every record among outs (readings
// inside batches one by one) and the reasons of the dead letters.
func tenantsOf(t *testing.T, outs []payload.Out) (tenants []string, reasons []payload.Reason) {
	t.Helper()
	for _, o := range outs {
		if o.Reason != "" {
			reasons = append(reasons, o.Reason)
			continue
		}
		m, err := o.Message()
		if err != nil {
			t.Fatal(err)
		}
		if b, ok := m.(*pb.VitalsBatch); ok {
			for _, r := range b.Readings {
				tenants = append(tenants, r.Meta.Tenant)
			}
			continue
		}
		tenants = append(tenants, m.(interface{ GetMeta() *pb.Meta }).GetMeta().GetTenant())
	}
	return tenants, reasons
}

// On medical/devices/... topics (no tenant level) a payload's tenant field
// replaced the connector's default tenant, whatever it named: a device
// could write into any hospital's tenant. A payload tenant is taken only
// when it is the default or one of the configured tenants (Options.Tenants);
// any other is dead-lettered as unknown_tenant. With no tenants configured
// only the default is known.
func TestPayloadTenantMustBeConfigured(t *testing.T) {
	ms := now.Add(-time.Hour).UnixMilli()
	intake := payload.Source{Topic: "medical/devices/pc-1/medication_intake", DeviceID: "pc-1"}
	in := func(tenant string) []byte {
		return []byte(fmt.Sprintf(`{"deviceId":"pc-1","tenant":%q,"patientId":"p1","medicationId":"m1","intakeTime":%d,"status":"taken"}`, tenant, ms))
	}
	configured := func(o payload.Options) payload.Options { o.Tenants = []string{"h1", "h2"}; return o }
	noList := func(o payload.Options) payload.Options { o.Tenants = nil; return o }
	for _, c := range []struct {
		name   string
		o      payload.Options
		tenant string
		want   string // "" : dead-lettered unknown_tenant
	}{
		{"configured", configured(opts()), "h2", "h2"},
		{"default", configured(opts()), "t0", "t0"},
		{"none named", configured(opts()), "", "t0"},
		{"other hospital", configured(opts()), "h9", ""},
		{"no list: default", noList(opts()), "t0", "t0"},
		{"no list: none named", noList(opts()), "", "t0"},
		{"no list: other", noList(opts()), "h9", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tenants, reasons := tenantsOf(t, payload.Decode(payload.Intake, intake, in(c.tenant), c.o))
			if c.want == "" {
				if len(reasons) != 1 || reasons[0] != payload.ReasonUnknownTenant || len(tenants) != 0 {
					t.Errorf("tenants %v reasons %v; want one unknown_tenant dead letter", tenants, reasons)
				}
				return
			}
			if len(reasons) != 0 || len(tenants) != 1 || tenants[0] != c.want {
				t.Errorf("tenants %v reasons %v; want one record of tenant %s", tenants, reasons, c.want)
			}
		})
	}
	t.Run("topic tenant wins, payload tenant unchecked", func(t *testing.T) {
		src := payload.Source{Topic: "medical/h1/monitor/d1/vitals", Tenant: "h1", DeviceType: "monitor", DeviceID: "d1", Kind: "vitals"}
		raw := fmt.Sprintf(`{"deviceId":"d1","tenant":"h9","heartRate":70,"timestamp":%d}`, ms)
		tenants, reasons := tenantsOf(t, payload.Decode(payload.Telemetry, src, []byte(raw), configured(opts())))
		if len(reasons) != 0 || len(tenants) != 1 || tenants[0] != "h1" {
			t.Errorf("tenants %v reasons %v; want one record of the topic's tenant h1", tenants, reasons)
		}
	})
	for _, mode := range []struct {
		name string
		o    payload.Options
	}{{"encoder", configured(batchOpts())}, {"general path", payload.GeneralPath(configured(batchOpts()))},
		{"single records", func() payload.Options { o := configured(batchOpts()); o.BatchRecords = false; return o }()}} {
		t.Run("batch envelope, "+mode.name, func(t *testing.T) {
			raw := fmt.Sprintf(`{"batchId":"b","deviceId":"d1","tenant":"h9","messages":[{"heartRate":70,"timestamp":%d}]}`, ms)
			tenants, reasons := tenantsOf(t, payload.Decode(payload.Batch, batchSrc, []byte(raw), mode.o))
			if len(reasons) != 1 || reasons[0] != payload.ReasonUnknownTenant || len(tenants) != 0 {
				t.Errorf("tenants %v reasons %v; want the batch dead-lettered as unknown_tenant", tenants, reasons)
			}
			raw = fmt.Sprintf(`{"batchId":"b","deviceId":"d1","tenant":"h1","messages":[{"heartRate":70,"timestamp":%d}]}`, ms)
			if tenants, reasons := tenantsOf(t, payload.Decode(payload.Batch, batchSrc, []byte(raw), mode.o)); len(reasons) != 0 || len(tenants) != 1 || tenants[0] != "h1" {
				t.Errorf("configured envelope tenant: tenants %v reasons %v; want one reading of h1", tenants, reasons)
			}
		})
		t.Run("batch message, "+mode.name, func(t *testing.T) {
			raw := fmt.Sprintf(`{"batchId":"b","deviceId":"d1","messages":[{"tenant":"h2","heartRate":70,"timestamp":%d},{"tenant":"h9","heartRate":71,"timestamp":%d},{"heartRate":72,"timestamp":%d}]}`, ms, ms, ms)
			tenants, reasons := tenantsOf(t, payload.Decode(payload.Batch, batchSrc, []byte(raw), mode.o))
			if fmt.Sprint(tenants) != "[h2 t0]" || len(reasons) != 1 || reasons[0] != payload.ReasonUnknownTenant {
				t.Errorf("tenants %v reasons %v; want [h2 t0] and one unknown_tenant dead letter", tenants, reasons)
			}
		})
	}
	if !containsReason(payload.Reasons(), payload.ReasonUnknownTenant) {
		t.Error("Reasons() lacks unknown_tenant (metric pre-registration)")
	}
}
