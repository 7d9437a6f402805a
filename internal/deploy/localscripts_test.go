package deploy_test

// Review tests of deploy/local/*.sh. They run the scripts' own functions in
// a throw-away root (a copy of the script under <tmp>/deploy/local, so its
// .local/ is <tmp>/.local) with the parts that would install packages or
// touch the real services replaced by stubs. No port is bound or probed.

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// scratchCopy copies deploy/local/NAME into <tmp>/deploy/local/NAME without
// its last line (the `main "$@"` call), so it can be sourced.
func scratchCopy(t *testing.T, name string, dropLast bool) (root, script string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "local", name))
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	if dropLast {
		lines := strings.Split(strings.TrimRight(src, "\n"), "\n")
		if last := lines[len(lines)-1]; last != `main "$@"` {
			t.Fatalf("last line of %s is %q, not the main call", name, last)
		}
		src = strings.Join(lines[:len(lines)-1], "\n") + "\n"
	}
	root = t.TempDir()
	script = filepath.Join(root, "deploy", "local", name)
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, script
}

// `make demo-embedded` leaves the kfake broker running (demo.sh never stops
// the services). A later `make test` (or `make services`) runs services.sh up
// in apache mode: service_pid only checks that the pid's command line
// mentions .local/, so the embedded broker is taken as "already up" and the
// integration tests run against kfake, while the README says "`make test`
// always uses the real broker".
func TestServicesUpApacheModeReusesEmbeddedKafka(t *testing.T) {
	root, script := scratchCopy(t, "services.sh", true)
	local := filepath.Join(root, ".local")
	harness := `
set -euo pipefail
unset WARDSTREAM_KAFKA
source "$1"
mkdir -p "$RUN"
# Stand-ins for the three running services; kafka is the embedded broker
# exactly as start_kafka spawns it in embedded mode.
fake() { # NAME ARGS...: a process whose command line is ARGS, pid in .local/run/NAME.pid
  local name=$1; shift
  # one process (no child left behind) whose argv[0] carries the command line
  bash -c 'exec -a "$*" sleep 30' "$@" </dev/null >/dev/null 2>&1 &
  echo $! >"$(pidfile "$name")"
}
fake kafka "$ROOT/bin/wardstream" embedded-kafka --listen "$HOST:$KAFKA_PORT" --data-dir "$KAFKA_DIR/kfake"
fake clickhouse clickhouse-server --config-file="$CH_DIR/config.xml"
fake mosquitto mosquitto -c "$MQ_DIR/mosquitto.conf"
# No installs, no network: the broker answers (kfake does answer ApiVersions,
# that is how embedded mode's own readiness check passes).
install_missing() { :; }
check_port_free() { :; } # the stand-in broker holds no port (a real one may run here)
kafka_answers() { return 0; }
clickhouse_healthy() { return 0; }
mosquitto_healthy() { return 0; }
start_kafka() { log "kafka: START (apache)"; fake kafka java kafka.Kafka "$KAFKA_DIR/server.properties"; }
kafka_started() { return 0; }
echo "mode=$KAFKA_MODE" >&2
cmd_up
for s in kafka clickhouse mosquitto; do kill "$(cat "$(pidfile $s)")" 2>/dev/null || true; done
`
	cmd := exec.Command("bash", "-c", harness, "harness", script)
	cmd.Env = append(os.Environ(), "WARDSTREAM_SERVICES_TIMEOUT=2")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("harness hung")
	}
	s := string(out)
	t.Logf("services.sh up (apache mode) with .local=%s:\n%s", local, s)
	if err != nil {
		t.Fatalf("harness failed: %v", err)
	}
	if !strings.Contains(s, "mode=apache") {
		t.Fatalf("harness did not run in apache mode")
	}
	if strings.Contains(s, "kafka: already up") {
		t.Errorf("BUG: apache-mode `up` accepted the running embedded kfake broker as Apache Kafka (\"kafka: already up\"); make test would run its integration tests on kfake")
	}
}

// demo.sh adds a role's pid to PIDS only once the role is ready (or after
// its 60 s wait). A TERM (make being stopped, a supervisor, `kill`) while a
// role is still starting runs stop_all, which does not know that pid: the
// role is left running after "stopped everything this demo started".
func TestDemoTermDuringRoleStartLeavesRole(t *testing.T) {
	root, script := scratchCopy(t, "demo.sh", false)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, ".local"), 0o755))
	must(os.WriteFile(filepath.Join(root, ".local", "services.env"), []byte("WARDSTREAM_MQTT_URL=tcp://127.0.0.1:1\n"), 0o644))
	rolePID := filepath.Join(root, "role.pid")
	// A stand-in binary: topics/migrate succeed, `run` never becomes ready.
	fake := "#!/usr/bin/env bash\ncase \"$1\" in\nrun) echo $$ >" + rolePID + "; exec sleep 120 ;;\n*) exit 0 ;;\nesac\n"
	must(os.WriteFile(filepath.Join(root, "bin", "wardstream"), []byte(fake), 0o755))

	cmd := exec.Command("setsid", "bash", script)
	cmd.Env = append(os.Environ(), "DEMO_ROLES=sink", "DEMO_LOGS="+filepath.Join(root, "logs"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	must(cmd.Start())
	var pid string
	for i := 0; i < 100 && pid == ""; i++ {
		time.Sleep(100 * time.Millisecond)
		if b, err := os.ReadFile(rolePID); err == nil {
			pid = strings.TrimSpace(string(b))
		}
	}
	if pid == "" {
		_ = cmd.Process.Kill()
		t.Fatalf("role never started:\n%s", out.String())
	}
	defer exec.Command("kill", pid).Run()
	time.Sleep(500 * time.Millisecond)
	must(cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	t.Logf("demo.sh output:\n%s", out.String())
	if exec.Command("kill", "-0", pid).Run() == nil {
		t.Errorf("BUG: role process %s (started by demo.sh) still runs after demo.sh handled TERM and exited", pid)
	}
}

// cmd_up treats a broker of ours that misses one 3 s ApiVersions probe as
// "still starting" and then waits for kafka_started, which also needs the
// "Kafka Server started" line in .local/kafka/kafka.log. A broker that has
// run long enough for log4j2 to roll kafka.log (50MB, log4j2.properties) no
// longer has that line there: `up` waits WARDSTREAM_SERVICES_TIMEOUT and
// then stops the running, answering broker and fails.
func TestServicesUpKillsAnsweringBrokerAfterLogRoll(t *testing.T) {
	root, script := scratchCopy(t, "services.sh", true)
	_ = root
	harness := `
unset WARDSTREAM_KAFKA
source "$1"
set +e # the script sets -e; the harness reports cmd_up's exit itself
mkdir -p "$RUN" "$KAFKA_DIR"
fake() { local name=$1; shift; bash -c 'exec -a "$*" sleep 60' "$@" </dev/null >/dev/null 2>&1 & echo $! >"$(pidfile "$name")"; }
fake kafka java -Dkafka.logs.dir="$KAFKA_DIR" kafka.Kafka "$KAFKA_DIR/server.properties"
fake clickhouse clickhouse-server --config-file="$CH_DIR/config.xml"
fake mosquitto mosquitto -c "$MQ_DIR/mosquitto.conf"
# kafka.log after a roll: recent lines only; the start line is in kafka.log.1.
echo '[2026-12-02 10:00:00,000] INFO [Partition ...] something (kafka.cluster.Partition)' >"$KAFKA_DIR/kafka.log"
echo '[2026-12-01 08:00:00,000] INFO [KafkaRaftServer nodeId=1] Kafka Server started (kafka.server.KafkaRaftServer)' >"$KAFKA_DIR/kafka.log.1"
install_missing() { :; }
n=0
kafka_answers() { n=$((n+1)); [ "$n" -gt 1 ]; }   # one slow probe (busy broker), then answers
clickhouse_healthy() { return 0; }
mosquitto_healthy() { return 0; }
kpid=$(cat "$(pidfile kafka)")
( cmd_up ) ; echo "up rc=$?" >&2
if kill -0 "$kpid" 2>/dev/null; then echo "broker alive" >&2; else echo "broker STOPPED by up" >&2; fi
for s in kafka clickhouse mosquitto; do kill "$(cat "$(pidfile $s)" 2>/dev/null)" 2>/dev/null || true; done
kill "$kpid" 2>/dev/null || true
`
	cmd := exec.Command("bash", "-c", harness, "harness", script)
	cmd.Env = append(os.Environ(), "WARDSTREAM_SERVICES_TIMEOUT=3")
	out, err := cmd.CombinedOutput()
	s := string(out)
	t.Logf("output:\n%s", s)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if strings.Contains(s, "broker STOPPED by up") {
		t.Errorf("BUG: services.sh up stopped a running broker that answers ApiVersions, because kafka.log had rolled")
	}
}

// demo.sh ends its connector's persistent sessions when it stops: every
// client_id-0..connections-1 of connectors.mqtt in the demo's topology
// (the role's defaults where unset). A fixed 0..7 once left 8 of 16
// sessions queueing every later device message in Mosquitto. The test
// runs the awk program demo.sh ships against topologies.
func TestDemoEndsEveryConnectorSession(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "local", "demo.sh"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	start := strings.Index(src, "read -r mq_id mq_n < <(awk '")
	if start < 0 {
		t.Fatal("demo.sh no longer reads the sessions with awk: update this test")
	}
	start += len("read -r mq_id mq_n < <(awk '")
	end := strings.Index(src[start:], `' "$CFG")`)
	if end < 0 {
		t.Fatal("end of demo.sh's awk program not found")
	}
	prog := src[start : start+end]
	local, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "local", "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"the local topology", string(local), "wardstream-mqtt 16"},
		{"set", "connectors:\n  mqtt:\n    client_id: \"ward-7\"   # quoted\n    connections: 4\n  rtsp:\n    connections: 99\n", "ward-7 4"},
		{"defaults", "tenant: x\nconnectors:\n  rtsp: {}\n", "wardstream-mqtt 16"},
		{"other sections ignored", "mqtt:\n  client_id: shared\n  connections: 2\nbench:\n  connections: 3\nconnectors:\n  mqtt:\n    qos: 1\n", "wardstream-mqtt 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "topology.yaml")
			if err := os.WriteFile(cfg, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("awk", prog, cfg).CombinedOutput()
			if err != nil {
				t.Fatalf("awk: %v: %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Errorf("sessions %q, want %q", got, c.want)
			}
		})
	}
}
