package mqtt_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wardstream/wardstream/connectors/mqtt"
	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/testutil"
)

func TestConfigValidate(t *testing.T) {
	if err := mqtt.DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name string
		mod  func(c *mqtt.Config)
		want []string
	}{
		{"qos", func(c *mqtt.Config) { c.QoS = 2 }, []string{"connectors.mqtt.qos: 2 must be 0 or 1"}},
		{"session", func(c *mqtt.Config) { c.SessionExpiry = 0 }, []string{"connectors.mqtt.session_expiry"}},
		{"several", func(c *mqtt.Config) { c.Connections = 0; c.ReceiveMaximum = 0; c.ClientID = "a/b" },
			[]string{"connectors.mqtt.connections", "connectors.mqtt.receive_maximum", "connectors.mqtt.client_id"}},
		{"route placeholder", func(c *mqtt.Config) { c.Routes = []mqtt.Route{{Topic: "medical/{patient}/x", Type: "intake"}} },
			[]string{"connectors.mqtt.routes[0].topic", "{patient}"}},
		{"route wildcard", func(c *mqtt.Config) { c.Routes = []mqtt.Route{{Topic: "medical/#", Type: "telemetry"}} },
			[]string{"connectors.mqtt.routes[0].topic"}},
		{"route type", func(c *mqtt.Config) { c.Routes = append(c.Routes, mqtt.Route{Topic: "a/b", Type: "video"}) },
			[]string{"connectors.mqtt.routes[6].type"}},
		{"command topic needs device", func(c *mqtt.Config) { c.Commands.Topic = "medical/commands" },
			[]string{"connectors.mqtt.commands.topic", "{deviceId}"}},
		{"shadow", func(c *mqtt.Config) { c.Shadow.OfflineAfter = 0 }, []string{"connectors.mqtt.shadow.offline_after"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := mqtt.DefaultConfig()
			c.mod(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	for name, c := range map[string]struct {
		yaml, err string
		check     func(t *testing.T, cfg mqtt.Config)
	}{
		"absent": {yaml: "tenant: t\n", check: func(t *testing.T, cfg mqtt.Config) {
			if !reflect.DeepEqual(cfg, mqtt.DefaultConfig()) {
				t.Errorf("absent section = %+v, want defaults", cfg)
			}
		}},
		"override": {yaml: "connectors:\n  mqtt:\n    qos: 0\n    routes:\n      - {topic: \"x/{deviceId}/v\", type: telemetry}\n    shadow:\n      offline_after: 2m\n",
			check: func(t *testing.T, cfg mqtt.Config) {
				if cfg.QoS != 0 || len(cfg.Routes) != 1 || cfg.Shadow.OfflineAfter.D().Minutes() != 2 || !cfg.Shadow.Enabled || cfg.Connections != 16 {
					t.Errorf("cfg = %+v", cfg)
				}
			}},
		"unknown key":   {yaml: "connectors:\n  mqtt:\n    qso: 1\n", err: "connectors.mqtt: line 3: unknown field qso"},
		"invalid value": {yaml: "connectors:\n  mqtt:\n    qos: 5\n", err: "connectors.mqtt.qos"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := config.Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := mqtt.LoadConfig(r)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
		})
	}
}

// TestTopologySection keeps deploy/local/topology.yaml's documented section
// equal to the defaults.
func TestTopologySection(t *testing.T) {
	root := testutil.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "local", "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := mqtt.LoadConfig(r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, mqtt.DefaultConfig()) {
		t.Errorf("deploy/local/topology.yaml connectors.mqtt = %+v\nwant the defaults %+v", cfg, mqtt.DefaultConfig())
	}
}

func TestFilters(t *testing.T) {
	c, err := mqtt.New(mqtt.DefaultConfig(), mqtt.Shared{Tenant: "t"})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Filters()
	want := []string{"medical/devices/+/medication_intake", "medical/devices/+/medication_schedule", "medical/devices/+/status",
		"medical/devices/batch/telemetry", "medical/+/+/+/+"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("filters %v, want %v (the ack route is covered by the telemetry filter)", got, want)
	}
}
