package manifests_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	yamlv3 "gopkg.in/yaml.v3"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/deploy"
)

const composeDir = "../../../deploy/compose"

func parseNode(t *testing.T, s string) *yamlv3.Node {
	t.Helper()
	var n yamlv3.Node
	if err := yamlv3.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(composeDir)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "compose.yaml")},
		cli.WithWorkingDirectory(abs),
		cli.WithName("wardstream"),
		// No environment: every ${VAR:-default} must have a usable default.
		cli.WithEnv(nil),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

func TestComposeParses(t *testing.T) {
	p := loadCompose(t)
	want := []string{"kafka-1", "kafka-2", "kafka-3", "clickhouse-keeper", "clickhouse-1", "clickhouse-2",
		"mosquitto", "mediamtx", "prometheus", "grafana", "topics", "migrate",
		"mqtt-1", "mqtt-2", "processors-1", "processors-2", "sink-1", "sink-2", "rtsp", "api"}
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("compose has no service %s", name)
		}
	}
	roleCount := map[string]int{}
	builds := 0
	for name, s := range p.Services {
		if s.Image == "" {
			t.Errorf("service %s has no pinned image", name)
		} else if strings.HasSuffix(s.Image, ":latest") || (!strings.Contains(s.Image, ":") && !strings.HasPrefix(s.Image, "wardstream")) {
			t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s, which does not exist: %v", name, v.Source, err)
				}
			}
		}
		if s.Image != "wardstream:dev" {
			continue
		}
		// A wardstream service: the image built from deploy/docker.
		if s.Build != nil {
			builds++
			if !strings.HasSuffix(s.Build.Dockerfile, "deploy/docker/Dockerfile") {
				t.Errorf("service %s builds %s, want deploy/docker/Dockerfile", name, s.Build.Dockerfile)
			}
		}
		cmd := []string(s.Command)
		script := ""
		if slices.Equal([]string(s.Entrypoint), []string{"/bin/bash", "-ec"}) && len(cmd) == 1 {
			// A start script (the MQTT connectors render their client ids):
			// its words stand for the command line.
			script = cmd[0]
			cmd = strings.Fields(script)
		}
		role := ""
		if i := slices.Index(cmd, "--roles"); i >= 0 && i+1 < len(cmd) {
			role = cmd[i+1]
			roleCount[role]++
			if s.HealthCheck == nil || s.HealthCheck.Disable || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "/readyz") {
				t.Errorf("service %s: want a healthcheck on /readyz", name)
			}
		}
		cfg := ""
		if i := slices.Index(cmd, "--config"); i >= 0 && i+1 < len(cmd) {
			cfg = cmd[i+1]
		}
		rendered := script != "" && strings.Contains(script, "> "+cfg) && strings.Contains(script, " /etc/wardstream/topology.yaml ")
		if cfg == "" || !(mountsFile(s, cfg) || rendered && mountsFile(s, "/etc/wardstream/topology.yaml")) {
			t.Errorf("service %s: command %v must name a mounted (or rendered from mounted) --config", name, cmd)
		}
		if role == "mqtt" && (!rendered || !strings.Contains(script, `id="wardstream-$HOSTNAME"`)) {
			t.Errorf("service %s: MQTT connectors must render their own client ids (shared client ids steal each other's sessions)", name)
		}
	}
	if builds != 1 {
		t.Errorf("%d services build the wardstream image; want exactly one (the others reuse it)", builds)
	}
	wantRoles := map[string]int{"mqtt": 2, "processors": 2, "sink": 2, "rtsp": 1, "api": 1}
	for r, n := range wantRoles {
		if roleCount[r] != n {
			t.Errorf("compose runs %d %s instances, want %d", roleCount[r], r, n)
		}
	}

	// Kafka: three KRaft voters, one per broker, node ids matching.
	voters := ""
	for i, name := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		env := p.Services[name].Environment
		if env["KAFKA_NODE_ID"] == nil || *env["KAFKA_NODE_ID"] != string(rune('1'+i)) {
			t.Errorf("%s: KAFKA_NODE_ID %v", name, env["KAFKA_NODE_ID"])
		}
		if voters == "" && env["KAFKA_CONTROLLER_QUORUM_VOTERS"] != nil {
			voters = *env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
		}
	}
	if voters != "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093" {
		t.Errorf("controller quorum voters %q", voters)
	}

	// The stack's topology validates and points at the stack's services.
	data, err := os.ReadFile(filepath.Join(composeDir, "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := config.Parse(data)
	if err != nil {
		t.Fatalf("compose topology: %v", err)
	}
	if ps := deploy.CrossCheck(parseNode(t, string(data))); len(ps) > 0 {
		t.Errorf("compose topology: %v", ps)
	}
	for _, a := range append(append(slices.Clone(root.Kafka.Brokers), root.ClickHouse.Addr...), strings.TrimPrefix(root.MQTT.URL, "tcp://")) {
		host, _, _ := strings.Cut(a, ":")
		if _, ok := p.Services[host]; !ok {
			t.Errorf("topology address %s names no compose service", a)
		}
	}
	var mq struct {
		ClientID string `yaml:"client_id"`
	}
	_ = root.Connectors.MQTT.Decode(&mq)
	if mq.ClientID != "wardstream-mqtt" {
		t.Errorf("connectors.mqtt.client_id %q: the mqtt services render per-instance ids from \"wardstream-mqtt\"", mq.ClientID)
	}
	hosts := map[string]bool{}
	for name, s := range p.Services {
		if slices.Contains(strings.Fields(strings.Join(s.Command, " ")), "mqtt") {
			if hosts[s.Hostname] {
				t.Errorf("service %s: hostname %q is not unique; it names the MQTT client ids", name, s.Hostname)
			}
			hosts[s.Hostname] = true
		}
	}
	if int(root.Kafka.ReplicationFactor) > 3 {
		t.Errorf("replication factor %d on 3 brokers", root.Kafka.ReplicationFactor)
	}
	if root.ClickHouse.Cluster == "" {
		t.Error("the compose ClickHouse is a cluster; the topology must name it")
	}
	cluster, err := os.ReadFile(filepath.Join(composeDir, "clickhouse", "cluster.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cluster), "<"+root.ClickHouse.Cluster+">") {
		t.Errorf("clickhouse/cluster.xml defines no cluster %q", root.ClickHouse.Cluster)
	}

	// Prometheus scrapes every wardstream role service on telemetry.listen.
	prom, err := os.ReadFile(filepath.Join(composeDir, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(root.Telemetry.Listen, ":")
	for name, s := range p.Services {
		if slices.Contains([]string(s.Command), "--roles") && !strings.Contains(string(prom), name+":"+port) {
			t.Errorf("prometheus.yml does not scrape %s:%s", name, port)
		}
	}
}

// TestGrafanaDataSources checks that every data source the dashboards of
// deploy/grafana use is provisioned in the compose stack, with its type.
func TestGrafanaDataSources(t *testing.T) {
	var prov struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	data, err := os.ReadFile(filepath.Join(composeDir, "grafana", "provisioning", "datasources", "wardstream.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yamlv3.Unmarshal(data, &prov); err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, d := range prov.Datasources {
		have[d.UID] = d.Type
	}
	dashboards, err := filepath.Glob("../../../deploy/grafana/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(dashboards) == 0 {
		t.Skip("no dashboards in deploy/grafana yet")
	}
	used := 0
	for _, f := range dashboards {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if ds, ok := x["datasource"].(map[string]any); ok {
					uid, _ := ds["uid"].(string)
					typ, _ := ds["type"].(string)
					if uid != "" && !strings.HasPrefix(uid, "$") {
						used++
						if got, ok := have[uid]; !ok || (typ != "" && got != typ) {
							t.Errorf("%s: data source %s (%s) is not provisioned (have %v)", filepath.Base(f), uid, typ, have)
						}
					}
				}
				for _, c := range x {
					walk(c)
				}
			case []any:
				for _, c := range x {
					walk(c)
				}
			}
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(doc)
	}
	if used == 0 {
		t.Fatal("the dashboards reference no data source uid; the check would prove nothing")
	}
}

func mountsFile(s types.ServiceConfig, file string) bool {
	for _, v := range s.Volumes {
		if v.Target == file || strings.HasPrefix(file, strings.TrimSuffix(v.Target, "/")+"/") {
			return true
		}
	}
	return false
}

// dockerInstructions splits a Dockerfile into instructions (continuation
// lines joined, comments dropped).
func dockerInstructions(t *testing.T, file string) [][2]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cont := strings.HasSuffix(line, "\\")
		cur.WriteString(strings.TrimSuffix(line, "\\"))
		cur.WriteString(" ")
		if cont {
			continue
		}
		ins, rest, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, [2]string{strings.ToUpper(ins), strings.TrimSpace(rest)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	const repo = "../../.."
	ins := dockerInstructions(t, filepath.Join(repo, "deploy/docker/Dockerfile"))
	var froms []string
	joined := ""
	for _, in := range ins {
		joined += in[0] + " " + in[1] + "\n"
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "COPY":
			if strings.Contains(in[1], "--from=") {
				continue
			}
			fields := strings.Fields(in[1])
			for _, src := range fields[:len(fields)-1] {
				if src == "." || strings.HasPrefix(src, "--") {
					continue
				}
				if _, err := os.Stat(filepath.Join(repo, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	if !strings.HasPrefix(froms[0], "golang:") || !strings.Contains(froms[0], " AS build") {
		t.Errorf("first stage %q should be the golang build stage", froms[0])
	}
	if last := froms[len(froms)-1]; strings.HasPrefix(last, "golang") || !strings.Contains(last, "slim") {
		t.Errorf("runtime stage %q should be a slim base, not the toolchain", last)
	}
	for _, want := range []string{"CGO_ENABLED=1", "libavcodec-dev", "bash deploy/local/onnxruntime.sh", "COPY --from=build /out/wardstream", "USER 65532"} {
		if !strings.Contains(joined, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// Every C library the cgo code links (#cgo pkg-config) is in the build
	// stage (-dev) and in the runtime stage (its shared-library package).
	libs := map[string]bool{}
	err := filepath.WalkDir(repo, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".local" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*//\s*#cgo(?:\s+\S+)?\s+pkg-config:\s*(.+)$`).FindAllStringSubmatch(string(src), -1) {
			for _, l := range strings.Fields(m[1]) {
				libs[l] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtimeStage := joined[strings.LastIndex(joined, "FROM "):]
	for l := range libs {
		if !strings.Contains(joined, l+"-dev") {
			t.Errorf("cgo links %s but the build stage installs no %s-dev", l, l)
		}
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(l) + `\d+\b`).MatchString(runtimeStage) {
			t.Errorf("cgo links %s but the runtime stage installs no %sNN package", l, l)
		}
	}
	t.Logf("cgo pkg-config libraries: %v", libs)
	// ONNX Runtime is pinned in one place: the script the Dockerfile runs.
	script, err := os.ReadFile(filepath.Join(repo, "deploy/local/onnxruntime.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ORT_VERSION=\d+\.\d+\.\d+$`).Match(script) {
		t.Error("deploy/local/onnxruntime.sh no longer pins ORT_VERSION")
	}
	if regexp.MustCompile(`(?i)onnxruntime[^\n]*\d+\.\d+\.\d+`).MatchString(joined) {
		t.Error("the Dockerfile names an ONNX Runtime version itself; the pin belongs to deploy/local/onnxruntime.sh")
	}
}
