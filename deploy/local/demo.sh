#!/usr/bin/env bash
# make demo: run wardstream end to end on this machine with a simulated ward.
#
# `make demo` has already built bin/wardstream and started Kafka, ClickHouse
# and Mosquitto (make services). This script then
#   1. applies the Kafka topics and the ClickHouse migrations,
#   2. starts every role of this build as its own process (`wardstream run
#      --roles X`), skipping, and saying so, any role not part of the build yet,
#   3. prints the dashboard URL (the api role, with a demo token),
#   4. runs a simulated ward (`wardstream bench --forever` with
#      bench/scenarios/ward.yaml: 500 patients with schedules and behaviour
#      profiles, vitals monitors, infusion pumps) whose live status line shows
#      rate, lag and errors,
# until Ctrl-C, which stops exactly the processes this script started.
#
# Kafka is whatever `make services` started: Apache Kafka, or with
# `make demo-embedded` (WARDSTREAM_KAFKA=embedded) the embedded kfake broker.
#
# Environment: WARDSTREAM_CONFIG (topology, default deploy/local/topology.yaml),
# DEMO_SCENARIO (default bench/scenarios/ward.yaml), DEMO_ROLES (default
# "sink processors mqtt rtsp api"), DEMO_LOGS (role logs, default .local/demo).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1
BIN="$ROOT/bin/wardstream"
CFG="${WARDSTREAM_CONFIG:-deploy/local/topology.yaml}"
SCENARIO="${DEMO_SCENARIO:-bench/scenarios/ward.yaml}"
ROLES="${DEMO_ROLES:-sink processors mqtt rtsp api}"
LOGS="${DEMO_LOGS:-$ROOT/.local/demo}"

say() { printf 'demo: %s\n' "$*" >&2; }
die() {
  printf 'demo: ERROR: %s\n' "$*" >&2
  exit 1
}

[ -x "$BIN" ] || die "$BIN is missing: run 'make demo' (it builds first) or 'make build'"
if [ -f .local/services.env ]; then
  set -a
  # shellcheck disable=SC1091
  . .local/services.env
  set +a
else
  die ".local/services.env is missing: start the services with 'make services'"
fi
mkdir -p "$LOGS"

PIDS=()
NAMES=()
stopping=0
stop_all() {
  ((stopping)) && return
  stopping=1
  trap - INT TERM EXIT
  echo >&2
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      say "stopping ${NAMES[$i]} (pid ${PIDS[$i]})"
      kill -TERM "${PIDS[$i]}" 2>/dev/null
    fi
  done
  # Roles drain within their drain_timeout; then anything left is killed.
  local deadline=$((SECONDS + 30))
  for ((i = 0; i < ${#PIDS[@]}; i++)); do
    while kill -0 "${PIDS[$i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "${PIDS[$i]}" 2>/dev/null; then
      say "${NAMES[$i]} did not drain in time: killing"
      kill -KILL "${PIDS[$i]}" 2>/dev/null
    fi
    wait "${PIDS[$i]}" 2>/dev/null
  done
  # The connector's sessions are persistent (24 h): left alone, the broker
  # would queue every device message for them until then. The demo is
  # over, so end them (a clean-start connect with the same client ids).
  if command -v mosquitto_sub >/dev/null 2>&1 && [[ " ${STARTED[*]} " == *" mqtt "* ]]; then
    local hp="${WARDSTREAM_MQTT_URL:-tcp://127.0.0.1:1883}"
    hp="${hp#*://}"
    # Every session: connectors.mqtt.client_id-0..connections-1 of the
    # demo's topology (the role's defaults where unset). A fixed 0..7 once
    # left sessions 8..15 queueing every later device message (a bench run
    # after the demo found Mosquitto holding 2.5 GB for them).
    local mq_id mq_n
    read -r mq_id mq_n < <(awk '
      /^connectors:/ {c = 1; next}
      c && /^[^ #]/ {c = 0}
      c && /^  mqtt:/ {m = 1; next}
      m && /^  [^ #]/ {m = 0}
      m && $1 == "client_id:" {id = $2; gsub(/"/, "", id)}
      m && $1 == "connections:" {n = $2}
      END {print (id == "" ? "wardstream-mqtt" : id), (n == "" ? 16 : n)}' "$CFG")
    for ((i = 0; i < mq_n; i++)); do
      timeout 5 mosquitto_sub -V mqttv5 -h "${hp%:*}" -p "${hp##*:}" -i "$mq_id-$i" -t wardstream/demo/ended -E >/dev/null 2>&1 || true
    done
  fi
  say "stopped everything this demo started (the services keep running: 'make services-down' stops them)"
}
trap 'stop_all; exit 130' INT TERM
trap 'stop_all' EXIT

say "applying Kafka topics"
"$BIN" topics apply --config "$CFG" >"$LOGS/topics.log" 2>&1 || die "topics apply failed: $(tail -3 "$LOGS/topics.log")"
say "applying ClickHouse migrations"
if ! "$BIN" migrate --config "$CFG" >"$LOGS/migrate.log" 2>&1; then
  if grep -q "not part of this build" "$LOGS/migrate.log"; then
    say "migrate is not part of this build yet: ClickHouse tables are not created"
  else
    die "migrate failed: $(tail -3 "$LOGS/migrate.log")"
  fi
fi

# start_role NAME PORT: start one role and wait for /readyz (60 s).
STARTED=()
MISSING=()
start_role() {
  local name=$1 port=$2 log="$LOGS/role-$1.log"
  "$BIN" run --roles "$name" --config "$CFG" --listen "127.0.0.1:$port" >"$log" 2>&1 &
  local pid=$!
  # Known to stop_all from now on, not only once ready: a TERM while the
  # role starts must stop it too.
  PIDS+=("$pid")
  NAMES+=("role $name")
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      if grep -q "not part of this build" "$log"; then
        MISSING+=("$name")
        say "role $name: not part of this build yet ($(grep -o 'issue [0-9]*' "$log" | head -1)); skipped"
      else
        say "role $name exited at start: $(tail -2 "$log" | tr '\n' ' ')"
        MISSING+=("$name")
      fi
      return 0
    fi
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
      STARTED+=("$name")
      say "role $name ready (pid $pid, metrics http://127.0.0.1:$port/metrics, log $log)"
      return 0
    fi
    sleep 0.3
  done
  STARTED+=("$name")
  say "role $name started but not ready after 60 s (pid $pid); see $log"
}

port=9470
for r in $ROLES; do
  start_role "$r" "$port"
  port=$((port + 1))
done
((${#STARTED[@]})) || die "no role could start"

dashboard=""
for r in "${STARTED[@]}"; do
  if [ "$r" = api ]; then
    dashboard="$("$BIN" token --config "$CFG" --url --role medical_staff 2>/dev/null || true)"
  fi
done
echo >&2
say "running roles: ${STARTED[*]}"
if [ -f .local/run/kafka.pid ] && tr '\0' ' ' <"/proc/$(cat .local/run/kafka.pid)/cmdline" 2>/dev/null | grep -q embedded-kafka; then
  say "kafka: EMBEDDED broker (wardstream embedded-kafka: franz-go kfake, not Apache Kafka; for trying wardstream without Java)"
fi
((${#MISSING[@]})) && say "not running (not in this build yet or failed): ${MISSING[*]}"
if [ -n "$dashboard" ]; then
  say "dashboard: $dashboard"
else
  say "dashboard: none (the api role is not running)"
fi
stage=all
if [[ " ${MISSING[*]} " == *" mqtt "* ]]; then
  # Without the connector nothing would read the devices' MQTT traffic:
  # the simulated devices write their records straight to Kafka instead.
  stage=kafka
  say "simulated ward: $SCENARIO, written straight to Kafka (the mqtt connector is not running)"
else
  say "simulated ward: $SCENARIO over MQTT (QoS1) through the connector"
fi
say "cameras: the simulator serves synthetic RTSP streams for the topology's local cameras (connectors.rtsp.cameras on 127.0.0.1)"
say "Ctrl-C stops everything this demo started"
echo >&2

# The simulator runs in the foreground: its live line is the demo's status.
"$BIN" bench --config "$CFG" --scenario "$SCENARIO" --stage "$stage" --forever --roles none &
PIDS+=("$!")
NAMES+=("simulated ward")
wait "$!"
