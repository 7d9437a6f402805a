package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// shippedTopologies are every topology file the repository ships.
func shippedTopologies(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{
		"../../deploy/local/topology.yaml",
		"../../deploy/topologies/*.yaml",
		"../../deploy/compose/topology.yaml",
		"../../deploy/k8s/base/topology.yaml",
		"../../deploy/k8s/overlays/*/topology.yaml",
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func TestShippedTopologiesValidate(t *testing.T) {
	files := shippedTopologies(t)
	if len(files) < 7 {
		t.Fatalf("found only %d shipped topologies: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "../../"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res := validateTopology(data)
			for _, p := range res.problems {
				t.Errorf("%s:%s", f, p)
			}
			// As `validate --require-all`: every role section is checked by
			// its role, and every role can start on what the file says.
			if res.unchecked != 0 {
				t.Errorf("%s: %d role section(s) not checked or incomplete: %v", f, res.unchecked, res.sections)
			}
			for _, s := range res.sections {
				t.Log(strings.ReplaceAll(s, "\t", ": "))
			}
		})
	}
}

func TestValidateProblemsCarryLines(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // "line N: ..." substrings in order
	}{
		{"clean", "tenant: a\ntenants:\n  - id: a\n", nil},
		{"empty file", "", nil},
		{"not yaml", "a: [\n", []string{"line 1: did not find expected node content"}},
		{"unknown key and bad field in one run", "tenant: a\nkafka:\n  brokerz: [x:1]\n  compression: rar\n",
			[]string{"line 3: unknown field brokerz", `line 4: kafka.compression: "rar" is not one of`}},
		{"bad duration", "drain_timeout: soon\n", []string{`line 1: bad duration "soon"`}},
		{"missing field points at its parent", "clickhouse:\n  database: ''\n  addr: []\n",
			[]string{"line 2: clickhouse.database: must not be empty", "line 3: clickhouse.addr: must list"}},
		{"cross reference", "tenant: a\nconnectors:\n  rtsp:\n    cameras:\n      - id: c1\n        tenant: nope\n        url: rtsp://cam/x\n",
			[]string{`line 6: connectors.rtsp.cameras[0].tenant: tenant "nope" is not declared`}},
		{"rtsp section is checked by the rtsp role", "connectors:\n  rtsp:\n    cameras:\n      - id: c1\n        url: http://cam/x\n",
			[]string{`line 5: connectors.rtsp.cameras[0].url: scheme "http" (want rtsp or rtsps)`}},
		{"mqtt section is checked by the mqtt role", "connectors:\n  mqtt:\n    qos: 2\n",
			[]string{"line 3: connectors.mqtt.qos"}},
		{"pipelines section is checked by the processors", "pipelines:\n  groups: [adherence, billing]\n",
			[]string{`line 2: pipelines.groups[1]: "billing" is not adherence, anomaly or alerts`}},
		{"sink section is checked by the sink", "sinks:\n  clickhouse:\n    topics: [wardstream.nope]\n",
			[]string{`line 3: sinks.clickhouse.topics[0]: "wardstream.nope" is not a catalog topic`, `line 3: sinks.clickhouse.topics[0]: "wardstream.nope" is not a topic of the catalog`}},
		{"scaling", "scaling:\n  processors:\n    replicas: 2\n    max_replicas: 40\n",
			[]string{"line 4: scaling.processors.max_replicas: 40 instances exceed the 12 partitions"}},
		{"api section is checked by the api role", "api:\n  listen: nope\n  auth: {demo_key_file: k.pem}\n",
			[]string{`line 2: api.listen: "nope" is not host:port`}},
		{"api section strict", "api:\n  auth: {demo_key_file: k.pem}\n  lisen: x\n", []string{"line 3: api: unknown field lisen"}},
		{"bench section is checked by bench", "bench:\n  poll_interval: 1ms\n", []string{"line 2: bench.poll_interval: must be >= 10ms"}},
		{"scaling unknown key", "scaling:\n  sinks: {replicas: 2}\n", []string{"line 2: scaling: unknown field sinks"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := validateTopology([]byte(c.yaml))
			if len(res.problems) != len(c.want) {
				t.Fatalf("got %v, want %v", res.problems, c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(res.problems[i].String(), w) {
					t.Errorf("problem %d %q lacks %q", i, res.problems[i], w)
				}
			}
		})
	}
}

func TestValidateAbsentSectionIsANote(t *testing.T) {
	res := validateTopology([]byte("tenant: a\n"))
	if len(res.problems) != 0 {
		t.Fatalf("an absent section is not a problem: %v", res.problems)
	}
	if res.unchecked == 0 {
		t.Fatal("the api role cannot start without auth settings; --require-all must see that")
	}
	res = validateTopology([]byte("tenant: a\napi:\n  auth: {jwks_url: https://idp/certs, issuer: https://idp, audience: wardstream}\n"))
	for _, s := range res.sections {
		if strings.HasPrefix(s, "api\t") && s != "api\tok" {
			t.Fatalf("api section: %q", s)
		}
	}
}

func TestValidateReportsUncheckedSections(t *testing.T) {
	// Every present section is either checked by its role's Config or
	// reported as "not checked", never silently passed.
	tree := map[string]any{"tenant": "a"}
	for _, sc := range sectionChecks() {
		m := tree
		parts := strings.Split(sc.path, ".")
		for _, p := range parts[:len(parts)-1] {
			if _, ok := m[p]; !ok {
				m[p] = map[string]any{}
			}
			m = m[p].(map[string]any)
		}
		m[parts[len(parts)-1]] = map[string]any{"zz_unknown_key": 1}
	}
	doc, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	res := validateTopology(doc)
	unknown := 0
	for _, p := range res.problems {
		if strings.Contains(p.Msg, "unknown field zz_unknown_key") {
			unknown++
		}
	}
	notChecked := 0
	for _, s := range res.sections {
		if strings.Contains(s, "\tnot checked") {
			notChecked++
		}
	}
	if unknown+notChecked != len(sectionChecks()) || res.unchecked != notChecked {
		t.Fatalf("%d sections: %d rejected the unknown key, %d not checked (unchecked=%d)\n%v\n%v",
			len(sectionChecks()), unknown, notChecked, res.unchecked, res.problems, res.sections)
	}
}

func FuzzValidateTopology(f *testing.F) {
	for _, s := range []string{"", "tenant: a\n", "scaling:\n  cameras_per_rtsp_instance: 0\nconnectors:\n  rtsp:\n    cameras: [{id: x}]\n",
		"a: [", "kafka: {brokers: [':0']}\n", "tenants: [{id: a, wards: [x, x]}]\npipelines: {ward: y, camera: [1]}\n", "*a\n", "&a [*a]\n"} {
		f.Add([]byte(s))
	}
	if files, err := filepath.Glob("../../deploy/topologies/*.yaml"); err == nil {
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := validateTopology(data)
		for _, p := range res.problems {
			if p.Line < 0 || p.Msg == "" {
				t.Fatalf("bad problem %+v", p)
			}
		}
	})
}

func TestValidateFilesOutput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("tenant: a\napi:\n  auth: {jwks_url: https://idp/certs, issuer: https://idp, audience: wardstream}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("tenant: a\nkafka:\n  brokers: [nohost]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := validateFiles(&out, []string{good}, false, false); err != nil {
		t.Fatalf("good file: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "connectors.rtsp") {
		t.Fatalf("summary lacks sections: %s", out.String())
	}
	out.Reset()
	err := validateFiles(&out, []string{good, bad}, false, true)
	if err == nil || err.Error() != "1 of 2 topology file(s) failed validation (1 problem(s))" {
		t.Fatalf("error %v", err)
	}
	if want := bad + `:3: kafka.brokers[0]: "nohost" is not host:port` + "\n"; out.String() != want {
		t.Fatalf("output %q, want %q (FILE:LINE: form, quiet)", out.String(), want)
	}
	// --require-all fails a file whose role sections are not all checked.
	out.Reset()
	if err := validateFiles(&out, []string{good}, true, true); (err == nil) != (validateTopology([]byte("tenant: a\napi:\n  auth: {jwks_url: https://idp/certs, issuer: https://idp, audience: wardstream}\n")).unchecked == 0) {
		t.Fatalf("require-all: %v", err)
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"validate"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "want a topology FILE") {
		t.Fatalf("no file: exit %d %q", code, stderr.String())
	}
	if code := run(t.Context(), []string{"validate", filepath.Join(dir, "missing.yaml")}, &stderr); code != 1 {
		t.Fatalf("missing file: exit %d", code)
	}
}
