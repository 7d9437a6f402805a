package deploy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/deploy"
	"github.com/wardstream/wardstream/schemas/topics"
)

const doc = `# comment
tenant: a
kafka:
  brokers:
    - k1:9092
    - k2:9092
connectors:
  mqtt:
    mappings:
      "medical/+/status":
        topic: wardstream.device-status
  rtsp:
    cameras:
      - id: cam-1
        tenant: a
`

func parse(t testing.TB, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func TestLocate(t *testing.T) {
	n := parse(t, doc)
	cases := []struct {
		path  string
		line  int
		exact bool
	}{
		{"tenant", 2, true},
		{"kafka.brokers", 4, true},
		{"kafka.brokers[1]", 6, true},
		{"kafka.brokers[7]", 4, false},
		{"kafka.linger", 3, false},
		{`connectors.mqtt.mappings["medical/+/status"].topic`, 11, true},
		{"connectors.rtsp.cameras[0].tenant", 15, true},
		{"connectors.rtsp.cameras[0].zone", 14, false},
		{"nope.x", 0, false},
		{"", 0, false},
		{"kafka.brokers[", 0, false},
	}
	for _, c := range cases {
		line, exact := deploy.Locate(n, c.path)
		if line != c.line || exact != c.exact {
			t.Errorf("Locate(%q) = %d,%v want %d,%v", c.path, line, exact, c.line, c.exact)
		}
	}
}

func TestProblems(t *testing.T) {
	n := parse(t, doc)
	err := errors.Join(
		errors.New("kafka.brokers[1]: bad port"),
		errors.New("line 9: unknown field x; line 12: unknown field y"),
		errors.New("connectors.mqtt: line 10: unknown field z"),
		errors.New("no path here"),
	)
	got := deploy.Problems(err, n, "")
	want := []string{
		"line 6: kafka.brokers[1]: bad port",
		"line 9: unknown field x",
		"line 10: connectors.mqtt: unknown field z",
		"line 12: unknown field y",
		"no path here",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("problem %d = %q want %q", i, got[i], want[i])
		}
	}
	// A role that reports paths relative to its section gets the prefix.
	rel := deploy.Problems(errors.New("cameras[0].tenant: bad"), n, "connectors.rtsp")
	if len(rel) != 1 || rel[0].Line != 15 || rel[0].Path != "connectors.rtsp.cameras[0].tenant" {
		t.Fatalf("relative path: %+v", rel)
	}
	// A role that wraps its field errors in its section name.
	wrapped := deploy.Problems(fmt.Errorf("connectors.rtsp: %w", errors.Join(errors.New("cameras[0].zone: required"), errors.New("cameras[0].tenant: bad"))), n, "connectors.rtsp")
	if len(wrapped) != 2 || wrapped[0].String() != "line 14: connectors.rtsp.cameras[0].zone: required" || wrapped[1].String() != "line 15: connectors.rtsp.cameras[0].tenant: bad" {
		t.Fatalf("wrapped: %v", wrapped)
	}
	if deploy.Problems(nil, n, "") != nil {
		t.Fatal("nil error must give no problems")
	}
}

func TestCrossCheck(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings, in line order; empty: no problems
	}{
		{"clean", "tenant: a\ntenants:\n  - id: a\n    wards: [w1]\nconnectors:\n  rtsp:\n    cameras:\n      - id: c1\n        tenant: a\n        ward: w1\npipelines:\n  x:\n    camera: c1\n", nil},
		{"no tenants declares only the default", "tenant: a\nsinks:\n  clickhouse:\n    tenant: b\n", []string{`line 4: sinks.clickhouse.tenant: tenant "b" is not declared`}},
		{"default tenant missing", "tenant: z\ntenants:\n  - id: a\n", []string{`line 1: tenant: default tenant "z"`}},
		{"duplicate tenant", "tenant: a\ntenants:\n  - id: a\n  - id: a\n", []string{`line 4: tenants[1].id: tenant "a" is declared twice`}},
		{"tenant list", "tenant: a\ntenants:\n  - id: a\napi:\n  tenants: [a, q]\n", []string{`line 5: api.tenants[1]: tenant "q"`}},
		{"ward of enclosing tenant", "tenant: a\ntenants:\n  - id: a\n    wards: [w1]\n  - id: b\n    wards: [w2]\nbench:\n  sites:\n    - tenant: b\n      beds:\n        - ward: w1\n", []string{`line 11: bench.sites[0].beds[0].ward: ward "w1" is not a ward of tenant "b"`}},
		{"tenant without wards accepts any", "tenant: a\ntenants:\n  - id: a\npipelines:\n  ward: anything\n", nil},
		{"camera without camera list", "pipelines:\n  zones:\n    - camera: c9\n", []string{`line 3: pipelines.zones[0].camera: camera "c9" is referenced but connectors.rtsp.cameras declares no cameras`}},
		{"duplicate camera", "connectors:\n  rtsp:\n    cameras:\n      - id: c1\n      - id: c1\n", []string{`line 5: connectors.rtsp.cameras[1].id: camera "c1" is declared twice`}},
		{"camera list by name", "connectors:\n  rtsp:\n    cameras:\n      - name: c1\npipelines:\n  cameras: [c1, c2]\n", []string{`line 6: pipelines.cameras[1]: camera "c2"`}},
		{"unknown catalog topic", "connectors:\n  mqtt:\n    mappings:\n      - topic: wardstream.vitalz\n      - topic: medical/+/x\n      - topic: " + topics.Vitals + "\n", []string{`line 4: connectors.mqtt.mappings[0].topic: "wardstream.vitalz" is not a topic`}},
		{"shared sections are not role sections", "tenant: a\nkafka:\n  tenant: zz\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := deploy.CrossCheck(parse(t, c.yaml))
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems %v, want %v", len(got), got, c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
	if deploy.CrossCheck(nil) != nil || deploy.CrossCheck(&yaml.Node{}) != nil {
		t.Fatal("empty documents have no references")
	}
}

func TestScaling(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		cameras int
		parts   int32
		want    string
	}{
		{"defaults", "", 0, 0, ""},
		{"good", "scaling:\n  processors: {replicas: 2, max_replicas: 12, lag_threshold: 5000}\n  sink: {replicas: 2, max_replicas: 6, lag_threshold: 100000}\n", 10, 0, ""},
		{"unknown key", "scaling:\n  processors: {replica: 2}\n", 0, 0, "line 2: unknown field replica"},
		{"max below replicas", "scaling:\n  mqtt: {replicas: 3, max_replicas: 2}\n", 0, 0, "scaling.mqtt.max_replicas: 2 is below replicas 3"},
		{"lag on mqtt", "scaling:\n  mqtt: {lag_threshold: 10}\n", 0, 0, "only processors and sink scale on consumer lag"},
		{"negative", "scaling:\n  api: {replicas: -1}\n", 0, 0, "scaling.api.replicas: must be >= 0"},
		{"beyond partitions", "scaling:\n  processors: {replicas: 2, max_replicas: 13}\n", 0, 0, "exceed the 12 partitions"},
		{"beyond overridden partitions", "scaling:\n  processors: {replicas: 2, max_replicas: 7}\n", 0, 6, "exceed the 6 partitions"},
		{"too many cameras", "scaling:\n  rtsp: {replicas: 1}\n", 17, 0, "17 cameras at 16 per instance need 2 rtsp instances"},
		{"enough rtsp", "scaling:\n  rtsp: {replicas: 1, max_replicas: 2}\n", 17, 0, ""},
		{"zero per instance", "scaling:\n  cameras_per_rtsp_instance: 0\n", 5, 0, "must be >= 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, err := config.Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			root.Kafka.Partitions = c.parts
			s, err := deploy.DecodeScaling(root)
			if err == nil {
				err = errors.Join(s.Validate(), s.Check(root.Kafka, c.cameras))
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

type topicDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec struct {
		TopicName  string            `yaml:"topicName"`
		Partitions int32             `yaml:"partitions"`
		Replicas   int16             `yaml:"replicas"`
		Config     map[string]string `yaml:"config"`
	} `yaml:"spec"`
}

func decodeTopics(t *testing.T, data []byte) []topicDoc {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	var out []topicDoc
	for {
		var d topicDoc
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatal(err)
		}
		out = append(out, d)
	}
}

func TestKafkaTopics(t *testing.T) {
	k := config.Default().Kafka
	k.ReplicationFactor = 3
	data, err := deploy.KafkaTopics(k, deploy.TopicManifestOptions{Cluster: "wardstream", Namespace: "ws"})
	if err != nil {
		t.Fatal(err)
	}
	docs := decodeTopics(t, data)
	all := topics.All()
	if len(docs) != len(all) {
		t.Fatalf("%d KafkaTopics for %d catalog topics", len(docs), len(all))
	}
	for i, d := range docs {
		ct := all[i]
		if d.APIVersion != deploy.StrimziAPIVersion || d.Kind != "KafkaTopic" || d.Metadata.Name != ct.Name ||
			d.Spec.TopicName != ct.Name || d.Metadata.Namespace != "ws" || d.Metadata.Labels["strimzi.io/cluster"] != "wardstream" {
			t.Errorf("bad resource %+v", d)
		}
		if d.Spec.Partitions != ct.Partitions || d.Spec.Replicas != 3 || d.Spec.Config["min.insync.replicas"] != "2" {
			t.Errorf("%s: partitions %d replicas %d minISR %s", ct.Name, d.Spec.Partitions, d.Spec.Replicas, d.Spec.Config["min.insync.replicas"])
		}
		if d.Spec.Config["cleanup.policy"] != string(ct.Policy) {
			t.Errorf("%s: cleanup.policy %q want %q", ct.Name, d.Spec.Config["cleanup.policy"], ct.Policy)
		}
		if ct.Policy == topics.Delete && d.Spec.Config["retention.ms"] != fmt.Sprint(retentionMS(ct)) {
			t.Errorf("%s: retention.ms %q", ct.Name, d.Spec.Config["retention.ms"])
		}
	}
	again, _ := deploy.KafkaTopics(k, deploy.TopicManifestOptions{Cluster: "wardstream", Namespace: "ws"})
	if string(again) != string(data) {
		t.Fatal("output is not deterministic")
	}

	k.Partitions = 48
	data, err = deploy.KafkaTopics(k, deploy.TopicManifestOptions{Cluster: "c", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range decodeTopics(t, data) {
		if d.Spec.Partitions != 48 || d.Spec.Replicas != 1 || d.Spec.Config["min.insync.replicas"] != "1" || d.Metadata.Namespace != "" {
			t.Fatalf("override not applied: %+v", d)
		}
	}

	bad := []struct {
		opts deploy.TopicManifestOptions
		want string
	}{
		{deploy.TopicManifestOptions{}, "cluster name is required"},
		{deploy.TopicManifestOptions{Cluster: "Bad_Name"}, "not a valid Kubernetes name"},
		{deploy.TopicManifestOptions{Cluster: "c", Replicas: 2, MinInSync: 3}, "exceeds replicas"},
	}
	for _, b := range bad {
		if _, err := deploy.KafkaTopics(k, b.opts); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: error %v want %q", b.opts, err, b.want)
		}
	}
}

func retentionMS(t topics.Topic) int64 {
	if t.Retention == 0 {
		return -1
	}
	return t.Retention.Milliseconds()
}
