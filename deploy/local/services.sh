#!/usr/bin/env bash
# Local services for wardstream: a real Apache Kafka 4.1.0 broker (KRaft,
# combined broker+controller), ClickHouse (Debian's 18.16) and Mosquitto 2.0,
# all on 127.0.0.1 only, with every config, data file, log and pid file under
# the git-ignored .local/ folder of the repository root. No systemd, no Docker.
#
#   bash deploy/local/services.sh up      install what is missing, start what is not running, wait until healthy
#   bash deploy/local/services.sh down    stop exactly what `up` started (pid files in .local/run/)
#   bash deploy/local/services.sh status  show each service; exit 0 when all three answer, 3 otherwise
#   bash deploy/local/services.sh env     print the KEY=value lines of .local/services.env
#
# Environment knobs: WARDSTREAM_SERVICES_TIMEOUT (seconds to wait per service, default 90),
# KAFKA_HEAP_OPTS (default "-Xmx1g -Xms512m"), WARDSTREAM_KAFKA=embedded (instead of Apache
# Kafka, `bin/wardstream embedded-kafka`: franz-go's kfake, for machines without Java; not
# Apache Kafka, and not what the tests use; build bin/wardstream first),
# WARDSTREAM_CLICKHOUSE_MERGE_NICE (nice value of ClickHouse's background merge threads,
# default 19; 0 leaves them at the server's priority: see clickhouse_nice_merges),
# WARDSTREAM_CLICKHOUSE_FS (auto, journaled or plain: where ClickHouse keeps its data, see
# clickhouse_storage; WARDSTREAM_CLICKHOUSE_FS_SIZE, default 32G, the image's size).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/deploy/local"
LOCAL="$ROOT/.local"
RUN="$LOCAL/run"
ENV_FILE="$LOCAL/services.env"
TIMEOUT="${WARDSTREAM_SERVICES_TIMEOUT:-90}"
CH_MERGE_NICE="${WARDSTREAM_CLICKHOUSE_MERGE_NICE:-19}"
CH_FS="${WARDSTREAM_CLICKHOUSE_FS:-auto}"
CH_FS_SIZE="${WARDSTREAM_CLICKHOUSE_FS_SIZE:-32G}"

KAFKA_MODE="${WARDSTREAM_KAFKA:-apache}"
case "$KAFKA_MODE" in
apache | embedded) ;;
*)
  printf 'services: ERROR: WARDSTREAM_KAFKA=%s is not apache or embedded\n' "$KAFKA_MODE" >&2
  exit 2
  ;;
esac

HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
CH_TCP_PORT=9000
CH_HTTP_PORT=8123
MQTT_PORT=1883

KAFKA_DIR="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_POM="$HERE/kafka/pom.xml"
KAFKA_LOG4J="$HERE/kafka/log4j2.properties"
CH_DIR="$LOCAL/clickhouse"
CH_FS_IMG="$LOCAL/clickhouse.img"
MQ_DIR="$LOCAL/mosquitto"

APT_PACKAGES=(clickhouse-server clickhouse-client mosquitto mosquitto-clients
  ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev pkg-config
  protobuf-compiler libprotobuf-dev curl ca-certificates)

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: ERROR: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

# ---------------------------------------------------------------- installing

apt_install() {
  (($#)) || return 0
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages ($*) and not root; install them: apt-get install $*"
    local sudo=(sudo)
  else
    local sudo=()
  fi
  log "installing: $*"
  # Keep the packages' init scripts from starting the system-wide clickhouse-server
  # and mosquitto on our ports: a policy-rc.d that refuses every start, if none exists.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    created_policy=1
    # Interrupted, still take it away: left behind it refuses every
    # service start on the machine.
    trap "${sudo[*]} rm -f $policy; exit 130" INT TERM
  fi
  local rc=0
  "${sudo[@]}" apt-get update -qq || rc=$?
  if [ "$rc" -eq 0 ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || rc=$?
  fi
  if [ "$created_policy" -eq 1 ]; then
    "${sudo[@]}" rm -f "$policy"
    trap - INT TERM
  fi
  [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc) installing: $*"
}

install_missing() {
  local need=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  if [ "$KAFKA_MODE" = embedded ]; then
    apt_install "${need[@]}"
    [ -x "$ROOT/bin/wardstream" ] || die "WARDSTREAM_KAFKA=embedded runs bin/wardstream embedded-kafka: build it first (make build)"
    return 0
  fi
  command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || need+=(maven)
  apt_install "${need[@]}"

  local javav
  javav="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  if [ -z "$javav" ] || [ "$javav" -lt 17 ]; then
    die "Kafka 4.1 needs Java 17 or newer; found: $(java -version 2>&1 | head -n1)"
  fi

  # Kafka jars, re-resolved only when the pom changes.
  local want have=""
  want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
  [ -f "$KAFKA_LIBS/.pom.sha256" ] && have="$(cat "$KAFKA_LIBS/.pom.sha256")"
  if [ "$want" != "$have" ] || ! compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    log "resolving Kafka jars with Maven into ${KAFKA_LIBS#"$ROOT"/}"
    rm -rf "$KAFKA_LIBS"
    mkdir -p "$KAFKA_LIBS"
    if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
      -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >"$KAFKA_DIR/mvn.log" 2>&1; then
      tail -n 30 "$KAFKA_DIR/mvn.log" >&2
      die "mvn could not resolve the Kafka jars (is Maven Central reachable?); see .local/kafka/mvn.log"
    fi
    echo "$want" >"$KAFKA_LIBS/.pom.sha256"
  fi
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$RUN/$1.pid"; }

# The pid recorded for a service, if that process is alive and is still the
# one we started (its command line mentions our .local folder).
service_pid() {
  local f pid
  f="$(pidfile "$1")"
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$LOCAL/" || return 1
  echo "$pid"
}

# spawn NAME LOGFILE CMD...: start CMD detached (own session, stdin closed),
# recording its pid (the pid of CMD itself, via exec) in .local/run/NAME.pid.
spawn() {
  local name="$1" out="$2" f
  shift 2
  f="$(pidfile "$name")"
  rm -f "$f"
  # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' spawn "$f" "$@" </dev/null >>"$out" 2>&1 9>&- &
  local i
  for i in $(seq 50); do
    [ -s "$f" ] && return 0
    sleep 0.1
  done
  die "$name did not start (no pid file)"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# Refuse to start over a port that something else already holds.
check_port_free() {
  local name="$1" port="$2"
  if port_open "$port"; then
    local who=""
    command -v ss >/dev/null 2>&1 && who="$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n3)"
    die "$name: port $HOST:$port is already in use by a process this script did not start${who:+:
$who}
stop it (e.g. 'service ${3:-$name} stop' for a system service) and run 'up' again"
  fi
}

stop_service() {
  local name="$1" pid f i
  f="$(pidfile "$name")"
  if ! pid="$(service_pid "$name")"; then
    [ -f "$f" ] && log "$name: not running (stale pid file removed)"
    rm -f "$f"
    return 0
  fi
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still running after 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$f"
}

# Tail of a service's log and of the stdout/stderr file next to it.
show_logs() {
  local f
  for f in "$1" "$(dirname "$1")/stdout.log"; do
    [ -s "$f" ] || continue
    log "last lines of ${f#"$ROOT"/}:"
    tail -n 40 "$f" >&2 || true
  done
}

# wait_healthy NAME LOGFILE CHECK-FUNCTION: poll CHECK until it succeeds, the
# process dies, or $TIMEOUT seconds pass; on failure show the log and stop it.
wait_healthy() {
  local name="$1" logf="$2" check="$3" start=$SECONDS
  while :; do
    if "$check"; then
      log "$name: up after $((SECONDS - start)) s (pid $(cat "$(pidfile "$name")"))"
      return 0
    fi
    if ! service_pid "$name" >/dev/null; then
      log "$name: process exited during startup"
      show_logs "$logf"
      rm -f "$(pidfile "$name")"
      return 1
    fi
    if ((SECONDS - start >= TIMEOUT)); then
      log "$name: not healthy after $TIMEOUT s"
      show_logs "$logf"
      stop_service "$name"
      return 1
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- Kafka

# The JVM command line shared by the broker and StorageTool.
KAFKA_JAVA=()
kafka_java_cmd() {
  local heap
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xmx1g -Xms512m}"
  KAFKA_JAVA=(java "${heap[@]}" -server -XX:ErrorFile="$KAFKA_DIR/hs_err_pid%p.log" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dkafka.logs.dir="$KAFKA_DIR" -Dlog4j2.configurationFile="$KAFKA_LOG4J"
    -cp "$KAFKA_LIBS/*")
}

kafka_config() {
  kafka_java_cmd
  mkdir -p "$KAFKA_DATA"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by deploy/local/services.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
  # Format the storage once; the cluster id is kept in .local/kafka/cluster.id.
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    local id
    if [ -s "$KAFKA_DIR/cluster.id" ]; then
      id="$(cat "$KAFKA_DIR/cluster.id")"
    else
      id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/format.log" | tail -n1)"
      [ -n "$id" ] || die "kafka: StorageTool random-uuid failed; see .local/kafka/format.log"
      echo "$id" >"$KAFKA_DIR/cluster.id"
    fi
    log "kafka: formatting storage (cluster id $id)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$id" -c "$KAFKA_DIR/server.properties" \
      --ignore-formatted >>"$KAFKA_DIR/format.log" 2>&1 ||
      {
        tail -n 20 "$KAFKA_DIR/format.log" >&2
        die "kafka: storage format failed; see .local/kafka/format.log"
      }
  fi
}

# A Kafka ApiVersions v0 request (correlation id 1, client id "hc"); healthy
# when the broker answers with correlation id 1 and error code 0.
kafka_answers() {
  local reply
  reply="$(timeout 3 bash -c "
    exec 3<>/dev/tcp/$HOST/$KAFKA_PORT || exit 1
    printf '\\x00\\x00\\x00\\x0c\\x00\\x12\\x00\\x00\\x00\\x00\\x00\\x01\\x00\\x02hc' >&3
    head -c 10 <&3 | od -An -tx1
  " 2>/dev/null | tr -d ' \n')" || return 1
  [ "${reply:8:12}" = "000000010000" ]
}

# Right after a start, also wait for the broker's own "started" line.
kafka_started() {
  if [ "$KAFKA_MODE" = embedded ]; then
    kafka_answers && grep -q 'embedded kafka .* listening' "$KAFKA_DIR/kafka.log" 2>/dev/null
    return
  fi
  kafka_answers && grep -q 'Kafka Server started' "$KAFKA_DIR/kafka.log" 2>/dev/null
}

start_kafka() {
  if [ "$KAFKA_MODE" = embedded ]; then
    [ -f "$KAFKA_DIR/kafka.log" ] && mv -f "$KAFKA_DIR/kafka.log" "$KAFKA_DIR/kafka.log.prev"
    log "kafka: starting the EMBEDDED broker (franz-go kfake, not Apache Kafka) on $HOST:$KAFKA_PORT"
    spawn kafka "$KAFKA_DIR/kafka.log" "$ROOT/bin/wardstream" embedded-kafka \
      --listen "$HOST:$KAFKA_PORT" --data-dir "$KAFKA_DIR/kfake"
    return
  fi
  kafka_config
  # A fresh log per start, so the readiness check cannot match an older run.
  if [ -f "$KAFKA_DIR/kafka.log" ]; then
    mv -f "$KAFKA_DIR/kafka.log" "$KAFKA_DIR/kafka.log.prev"
  fi
  log "kafka: starting broker+controller on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)"
  spawn kafka "$KAFKA_DIR/stdout.log" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
}

# ---------------------------------------------------------------- ClickHouse

clickhouse_config() {
  mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas}
  cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by deploy/local/services.sh; edits are overwritten on the next start. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$CH_DIR/clickhouse-server.log</log>
        <errorlog>$CH_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>$HOST</listen_host>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <http_port>$CH_HTTP_PORT</http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
  # ClickHouse 18.16 has no SQL access management: users live here.
  cat >"$CH_DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Generated by deploy/local/services.sh; edits are overwritten on the next start. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
        <readonly>
            <readonly>1</readonly>
        </readonly>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <readonly>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>readonly</profile>
            <quota>default</quota>
        </readonly>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

clickhouse_healthy() {
  [ "$(curl -fsS --max-time 3 "http://$HOST:$CH_HTTP_PORT/?query=SELECT%201" 2>/dev/null)" = 1 ] &&
    [ "$(timeout 5 clickhouse-client --host "$HOST" --port "$CH_TCP_PORT" --query 'SELECT 1' 2>/dev/null)" = 1 ]
}

# unjournaled_ext DIR: DIR lies on an ext2/3/4 file system without a
# journal (fails when that cannot be told, e.g. the device is unreadable).
unjournaled_ext() {
  local src fstype features jt
  read -r src fstype < <(findmnt -n -o SOURCE,FSTYPE --target "$1" 2>/dev/null) || return 1
  case "$fstype" in ext2 | ext3 | ext4) ;; *) return 1 ;; esac
  # The kernel says (the device itself may be unreadable, even to root, in
  # a VM sandbox); dumpe2fs on older kernels.
  jt="/sys/fs/ext4/${src##*/}/journal_task"
  if [ -r "$jt" ]; then
    [ "$(cat "$jt")" = "<none>" ]
    return
  fi
  features="$(dumpe2fs -h "$src" 2>/dev/null | grep '^Filesystem features:')" || return 1
  [[ "$features" != *has_journal* ]]
}

# clickhouse_storage puts ClickHouse's data directory on a journaled ext4
# file system held in a sparse image file (.local/clickhouse.img, loop
# mounted with discard) when the directory itself is on ext4 without a
# journal, as this project's 2-core VMs are. There, ext4 skips every inode
# deleted in the last minutes when it allocates one (recently_deleted(),
# checked only without a journal), and ClickHouse deletes and creates
# dozens of files per merge: in a microbenchmark (60 s of hospital vitals in
# 500 ms inserts) the inode scan was 30% of the server's CPU, and the same
# work took 13.3 then 20.3 s of CPU on the root file system against 10.0
# and 9.8 s on the image, alternating (bench/README.md, "ext4 without a
# journal"). WARDSTREAM_CLICKHOUSE_FS=journaled insists (fails without
# root or loop devices), plain never mounts, auto (the default) mounts
# where it helps and can, and otherwise says why it did not.
clickhouse_storage() {
  local data="$CH_DIR/data" fresh=0 tmp
  case "$CH_FS" in
  auto | journaled | plain) ;;
  *) die "WARDSTREAM_CLICKHOUSE_FS=$CH_FS is not auto, journaled or plain" ;;
  esac
  mkdir -p "$data"
  if mountpoint -q "$data"; then
    log "clickhouse: data on $(findmnt -n -o SOURCE --target "$data") ($(findmnt -n -o FSTYPE --target "$data"))"
    return 0
  fi
  [ "$CH_FS" != plain ] || return 0
  if [ "$CH_FS" = auto ] && ! unjournaled_ext "$data"; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v mkfs.ext4 >/dev/null; then
    [ "$CH_FS" = auto ] || die "clickhouse: WARDSTREAM_CLICKHOUSE_FS=journaled needs root and mkfs.ext4"
    log "clickhouse: WARNING: data on ext4 without a journal (inode allocation slows under merges); not root, so no journaled image"
    return 0
  fi
  if [ ! -s "$CH_FS_IMG" ]; then
    if ! { truncate -s "$CH_FS_SIZE" "$CH_FS_IMG" && mkfs.ext4 -q -F -L wardstream-ch "$CH_FS_IMG"; }; then
      rm -f "$CH_FS_IMG"
      [ "$CH_FS" = auto ] || die "clickhouse: could not create $CH_FS_IMG"
      log "clickhouse: WARNING: could not create a journaled image; data stays on ext4 without a journal"
      return 0
    fi
    fresh=1
  fi
  if [ -n "$(ls -A "$data")" ]; then
    if ((!fresh)); then
      # The image holds data already and so does the directory (the
      # image was not mounted when the server last ran): use neither's
      # copy over the other.
      [ "$CH_FS" = auto ] || die "clickhouse: both $data and $CH_FS_IMG hold data; move one aside"
      log "clickhouse: WARNING: $data holds data and so does ${CH_FS_IMG#"$ROOT"/}; using the directory (remove the image to move it there)"
      return 0
    fi
    # Data from before the image: moved in once.
    tmp="$(mktemp -d)"
    if mount -o loop "$CH_FS_IMG" "$tmp" && cp -a "$data/." "$tmp/" && umount "$tmp"; then
      mv "$data" "$data.before-image" && mkdir "$data"
      log "clickhouse: existing data copied into ${CH_FS_IMG#"$ROOT"/}; the old copy is in ${data#"$ROOT"/}.before-image"
    else
      umount "$tmp" 2>/dev/null || true
      rm -f "$CH_FS_IMG"
      rmdir "$tmp"
      [ "$CH_FS" = auto ] || die "clickhouse: could not move $data into $CH_FS_IMG"
      log "clickhouse: WARNING: could not move the data into a journaled image; it stays on ext4 without a journal"
      return 0
    fi
    rmdir "$tmp"
  fi
  if ! mount -o loop,discard,noatime "$CH_FS_IMG" "$data"; then
    if ((fresh)); then rm -f "$CH_FS_IMG"; fi
    [ "$CH_FS" = auto ] || die "clickhouse: could not loop-mount $CH_FS_IMG"
    log "clickhouse: WARNING: could not loop-mount ${CH_FS_IMG#"$ROOT"/}; data stays on ext4 without a journal"
    return 0
  fi
  log "clickhouse: data on a journaled ext4 image (${CH_FS_IMG#"$ROOT"/}, $CH_FS_SIZE sparse): ${CH_DIR#"$ROOT"/} is on ext4 without a journal"
}

# clickhouse_unmount releases the image after the server stopped.
# Only ours: a loop device backed by the image.
clickhouse_unmount() {
  local dev
  mountpoint -q "$CH_DIR/data" || return 0
  dev="$(findmnt -n -o SOURCE --target "$CH_DIR/data")"
  [[ "$dev" == /dev/loop* ]] && [ "$(losetup -n -O BACK-FILE "$dev" 2>/dev/null)" = "$CH_FS_IMG" ] || return 0
  umount "$CH_DIR/data" && log "clickhouse: data image unmounted"
}

start_clickhouse() {
  clickhouse_storage
  clickhouse_config
  log "clickhouse: starting on $HOST:$CH_TCP_PORT (native) and $HOST:$CH_HTTP_PORT (http)"
  # Run as the invoking user (root included): 18.16 does not drop privileges itself.
  spawn clickhouse "$CH_DIR/stdout.log" clickhouse-server --config-file="$CH_DIR/config.xml"
}

# clickhouse_nice_merges lowers the CPU priority of the server's background
# merge threads (18.16 names them BackgrProcPool) to CH_MERGE_NICE. On a box
# where every server and role shares two cores, a merge running beside an
# INSERT had tripled its duration (vitals inserts 0.8-1.5 s during merges,
# 0.15-0.4 s without), and the sink's insert cycle is most of the event ->
# queryable latency; niced, merges use the CPU the pipeline leaves and still
# keep up (bench/README.md, "p99 at 1M msgs/min"). Modern servers do the same
# with the server setting os_threads_nice_value_merge_mutate. Raising one's
# own threads' nice value needs no privilege.
clickhouse_nice_merges() {
  local pid t n=0
  [ "$CH_MERGE_NICE" != 0 ] || return 0
  pid="$(service_pid clickhouse)" || return 0
  for t in /proc/"$pid"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = BackgrProcPool ] || continue
    renice -n "$CH_MERGE_NICE" -p "${t##*/}" >/dev/null 2>&1 && n=$((n + 1))
  done
  log "clickhouse: $n background merge threads at nice $CH_MERGE_NICE"
}

# ---------------------------------------------------------------- Mosquitto

mosquitto_config() {
  mkdir -p "$MQ_DIR/data"
  cat >"$MQ_DIR/mosquitto.conf" <<EOF
# Generated by deploy/local/services.sh; edits are overwritten on the next start.
# Run as the invoking user (mosquitto would otherwise drop root to user "mosquitto",
# which cannot write .local/).
user $(id -un)
per_listener_settings false
listener $MQTT_PORT $HOST
allow_anonymous true

persistence true
persistence_location $MQ_DIR/data/
persistence_file mosquitto.db
autosave_interval 30

# QoS 1/2 messages for slow or offline persistent sessions are never dropped:
# no limit on the queue, by count or bytes.
max_queued_messages 0
max_queued_bytes 0
queue_qos0_messages false
max_inflight_messages 100
max_inflight_bytes 0
max_packet_size 16777216
persistent_client_expiration 1d
retain_available true
# Nagle's algorithm on (Mosquitto's default): a PUBACK or forwarded PUBLISH
# written while earlier bytes are unacknowledged joins them in one segment,
# so the devices and the connector wake and read less often. With nodelay on,
# every packet went out alone: Mosquitto, the MQTT connector and the bench
# harness used 5-7, 2-4 and 3-4 us more CPU per reading, for no lower latency
# (bench/README.md, "2026-12-03, 10:30").
set_tcp_nodelay false

log_dest file $MQ_DIR/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
log_timestamp_format %Y-%m-%dT%H:%M:%S
EOF
}

mosquitto_healthy() {
  timeout 5 mosquitto_pub -h "$HOST" -p "$MQTT_PORT" -q 1 -i "wardstream-services-health-$$" \
    -t wardstream/health -m ok >/dev/null 2>&1
}

start_mosquitto() {
  mosquitto_config
  log "mosquitto: starting on $HOST:$MQTT_PORT"
  spawn mosquitto "$MQ_DIR/stdout.log" mosquitto -c "$MQ_DIR/mosquitto.conf"
}

# ---------------------------------------------------------------- commands

write_env() {
  mkdir -p "$LOCAL"
  cat >"$ENV_FILE.tmp" <<EOF
WARDSTREAM_KAFKA_BROKERS=$HOST:$KAFKA_PORT
WARDSTREAM_CLICKHOUSE_ADDR=$HOST:$CH_TCP_PORT
WARDSTREAM_MQTT_URL=tcp://$HOST:$MQTT_PORT
EOF
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

SERVICES=(kafka clickhouse mosquitto)

healthy() {
  case "$1" in
  kafka) kafka_answers ;;
  clickhouse) clickhouse_healthy ;;
  mosquitto) mosquitto_healthy ;;
  esac
}

startcheck() {
  case "$1" in
  kafka) echo kafka_started ;;
  *) echo "${1}_healthy" ;;
  esac
}

runcheck() {
  case "$1" in
  kafka) echo kafka_answers ;;
  *) echo "${1}_healthy" ;;
  esac
}

# kafka_mode_is PID MODE: whether the broker process PID is of MODE
# (embedded: bin/wardstream embedded-kafka; apache: the Java broker).
kafka_mode_is() {
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)"
  case "$2" in
  embedded) [[ "$cmd" == *embedded-kafka* ]] ;;
  *) [[ "$cmd" != *embedded-kafka* ]] ;;
  esac
}

logfile() {
  case "$1" in
  kafka) echo "$KAFKA_DIR/kafka.log" ;;
  clickhouse) echo "$CH_DIR/clickhouse-server.log" ;;
  mosquitto) echo "$MQ_DIR/mosquitto.log" ;;
  esac
}

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$RUN" "$KAFKA_DIR" "$CH_DIR" "$MQ_DIR"
  install_missing

  # Which services must be started; check all their ports before starting any.
  local tostart=() started=() running=() s pid
  for s in "${SERVICES[@]}"; do
    if pid="$(service_pid "$s")" && [ "$s" = kafka ] && ! kafka_mode_is "$pid" "$KAFKA_MODE"; then
      # A broker of the other kind (kfake where Apache Kafka is wanted, or
      # the reverse) is not the one asked for: `make test` must never run
      # against kfake.
      log "kafka: the running broker (pid $pid) is not WARDSTREAM_KAFKA=$KAFKA_MODE; restarting it"
      stop_service kafka
    fi
    if pid="$(service_pid "$s")"; then
      if healthy "$s"; then
        log "$s: already up (pid $pid)"
      else
        # Ours but not answering (e.g. still starting, or busy): wait for
        # it to answer below.
        running+=("$s")
      fi
      continue
    fi
    rm -f "$(pidfile "$s")"
    case "$s" in
    kafka)
      check_port_free kafka "$KAFKA_PORT"
      [ "$KAFKA_MODE" = embedded ] || check_port_free kafka "$KAFKA_CONTROLLER_PORT"
      ;;
    clickhouse)
      check_port_free clickhouse "$CH_TCP_PORT" clickhouse-server
      check_port_free clickhouse "$CH_HTTP_PORT" clickhouse-server
      ;;
    mosquitto) check_port_free mosquitto "$MQTT_PORT" ;;
    *) die "unknown service $s" ;;
    esac
    tostart+=("$s")
  done
  for s in "${tostart[@]}"; do
    "start_$s"
    started+=("$s")
  done

  local failed=()
  for s in "${started[@]}"; do
    wait_healthy "$s" "$(logfile "$s")" "$(startcheck "$s")" || failed+=("$s")
  done
  # A service that was already running only has to answer: its start line
  # may be in a rolled log file by now.
  for s in "${running[@]}"; do
    wait_healthy "$s" "$(logfile "$s")" "$(runcheck "$s")" || failed+=("$s")
  done
  started+=("${running[@]}")
  ((${#failed[@]} == 0)) || die "not healthy: ${failed[*]} (logs under .local/)"

  clickhouse_nice_merges
  write_env
  if ((${#started[@]})); then
    log "all services up in $((SECONDS - t0)) s; environment in ${ENV_FILE#"$ROOT"/}"
  fi
}

cmd_down() {
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    stop_service "${SERVICES[i]}"
  done
  clickhouse_unmount
}

cmd_status() {
  local s pid all=0 state
  for s in "${SERVICES[@]}"; do
    if pid="$(service_pid "$s")"; then
      if healthy "$s"; then state="up (pid $pid)"; else
        state="running (pid $pid) but not answering"
        all=3
      fi
    else
      state="down"
      all=3
    fi
    printf '%-11s %s\n' "$s" "$state"
  done
  return "$all"
}

cmd_env() {
  [ -f "$ENV_FILE" ] || write_env
  cat "$ENV_FILE"
}

# Serialise concurrent up/down calls (e.g. from parallel make targets).
lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/services.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "another services.sh is still running (lock $RUN/services.lock)"
  fi
}

main() {
  (($# == 1)) || usage
  case "$1" in
  up)
    lock
    cmd_up
    ;;
  down)
    lock
    cmd_down
    ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
  esac
}

main "$@"
