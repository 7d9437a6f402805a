package processors_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/pipelines/processors"
	"github.com/wardstream/wardstream/schemas/codec"
	pb "github.com/wardstream/wardstream/schemas/proto/wardstreamv1"
)

func load(t *testing.T, section string) (processors.Config, error) {
	t.Helper()
	root, err := config.Parse([]byte("pipelines:\n" + section))
	if err != nil {
		t.Fatal(err)
	}
	return processors.Load(root)
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name, yaml string
		errs       []string
	}{
		{"defaults", "  groups: [adherence, anomaly, alerts]\n", nil},
		{"tuned", "  tick_interval: 5s\n  correction_horizon: 48h\n  alert_sla: {critical: 2m, high: 10m, medium: 20m, low: 40m}\n  baseline: {alpha: 0.1}\n", nil},
		{"unknown key", "  tick: 5s\n", []string{"unknown field tick"}},
		{"bad values", "  groups: [adherence, video]\n  tick_interval: 45s\n  correction_horizon: 2h\n  low_adherence_threshold: 1.5\n  baseline: {alpha: 0}\n  alert_sla: {high: 0s}\n",
			[]string{"groups[1]", "tick_interval", "correction_horizon", "low_adherence_threshold", "baseline_alpha", "sla.HIGH"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := load(t, c.yaml)
			root := config.Default()
			if len(c.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := processors.New(&root, cfg); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("want errors")
			}
			for _, e := range c.errs {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q lacks %q", err, e)
				}
			}
		})
	}
}

func TestTopologyFileSectionIsValid(t *testing.T) {
	root, err := config.Load("../../deploy/local/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := processors.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if d := processors.DefaultConfig(); cfg.TickInterval != d.TickInterval || cfg.AlertRequestsTopic != d.AlertRequestsTopic || len(cfg.Groups) != 3 {
		t.Fatalf("topology.yaml documents values other than the defaults: %+v", cfg)
	}
}

func TestScheduleRecord(t *testing.T) {
	s := &pb.DoseSchedule{PatientId: "p1", MedicationId: "m1", Version: 3}
	r, err := processors.ScheduleRecord("x.sched", "hospital-a", s, time.UnixMilli(5000))
	if err != nil {
		t.Fatal(err)
	}
	var back pb.DoseSchedule
	if err := codec.Unmarshal(r.Value, &back); err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "p1|m1" || r.Topic != "x.sched" || back.Meta.Tenant != "hospital-a" || back.Meta.EventId != "schedule|p1|m1|v3" || back.Meta.EventTimeMs != 5000 {
		t.Fatalf("record %s %s %v", r.Topic, r.Key, back.Meta)
	}
}

// TestShippedTopologies checks the pipelines section of every topology the
// repository ships (deploy/) against this role's Config.
func TestShippedTopologies(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/*/topology.yaml")
	more, _ := filepath.Glob("../../deploy/topologies/*.yaml")
	k8s, _ := filepath.Glob("../../deploy/k8s/*/topology.yaml")
	overlays, _ := filepath.Glob("../../deploy/k8s/overlays/*/topology.yaml")
	files = append(append(append(files, more...), k8s...), overlays...)
	if len(files) == 0 {
		t.Fatal("no topologies found")
	}
	for _, f := range files {
		root, err := config.Load(f)
		if err != nil {
			t.Logf("%s: shared sections do not load here (%v); pipelines not checked", f, err)
			continue
		}
		if _, err := processors.Load(root); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
