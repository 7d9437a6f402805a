package config_test

import (
	"strings"
	"testing"

	"github.com/wardstream/wardstream/internal/config"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"empty uses defaults", ``, ""},
		{"good", "tenant: hospital-a\nkafka:\n  brokers: [k1:9092, k2:9092]\n", ""},
		{"unknown key", "kafka:\n  brokerz: [x:1]\n", "line 2: unknown field brokerz"},
		{"bad broker", "kafka:\n  brokers: [nohost]\n", "kafka.brokers[0]"},
		{"bad duration", "drain_timeout: soon\n", "bad duration \"soon\""},
		{"bad compression", "kafka:\n  compression: rar\n", "kafka.compression"},
		{"old sarama", "kafka:\n  sarama_version: 0.11.0\n", "kafka.sarama_version"},
		{"bad mqtt url", "mqtt:\n  url: 127.0.0.1:1883\n", "mqtt.url"},
		{"sharded without cluster", "clickhouse:\n  sharded: true\n", "clickhouse.sharded: needs clickhouse.cluster"},
		{"sharded cluster", "clickhouse:\n  cluster: ws\n  sharded: true\n", ""},
		{"gomaxprocs", "process:\n  gomaxprocs: 1\n", ""},
		{"negative gomaxprocs", "process:\n  gomaxprocs: -1\n", "process.gomaxprocs: -1 is negative"},
		{"gogc", "process:\n  gogc: 400\n", ""},
		{"keep_sysmon_awake", "process:\n  keep_sysmon_awake: true\n", ""},
		{"negative gogc", "process:\n  gogc: -1\n", "process.gogc: -1 is negative"},
		{"many errors joined", "tenant: ''\nclickhouse:\n  database: ''\n", "clickhouse.database"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv(config.EnvKafkaBrokers, "a:1, b:2")
	t.Setenv(config.EnvClickHouseAddr, "ch:9000")
	t.Setenv(config.EnvMQTTURL, "tcp://m:1883")
	r, err := config.Parse([]byte("kafka:\n  brokers: [x:9]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Kafka.Brokers, ",") != "a:1,b:2" || r.ClickHouse.Addr[0] != "ch:9000" || r.MQTT.URL != "tcp://m:1883" {
		t.Fatalf("env not applied: %+v %+v %+v", r.Kafka.Brokers, r.ClickHouse.Addr, r.MQTT.URL)
	}
}

func TestSectionStrictWithFileLines(t *testing.T) {
	doc := "tenant: t\nconnectors:\n  mqtt:\n    qos: 1\n    tpoics: x\n"
	r, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		QoS    int    `yaml:"qos"`
		Topics string `yaml:"topics"`
	}
	err = config.Section(&r.Connectors.MQTT, "connectors.mqtt", &out)
	if err == nil || !strings.Contains(err.Error(), "connectors.mqtt: line 5: unknown field tpoics") {
		t.Fatalf("got %v", err)
	}
}
