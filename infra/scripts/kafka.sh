#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) on 127.0.0.1,
# built from the jars Maven resolves for infra/kafka/pom.xml (no tarball, no Docker).
#
#   kafka.sh install   resolve the jars into $LLMOPS_HOME/kafka/libs (only if missing/outdated)
#   kafka.sh start     install if needed, format storage once, start, wait until healthy
#   kafka.sh stop      SIGTERM, wait up to 30 s, then SIGKILL (no-op if not running)
#   kafka.sh status    "kafka: running pid N port P" (exit 0) or "kafka: stopped" (exit 3)
#   kafka.sh health    exit 0 if the broker is up and serving
#   kafka.sh reset     stop and delete all Kafka data (topics, offsets, metadata)
#   kafka.sh render    write the broker config only and print its path (no start)
#
# Environment: LLMOPS_HOME, KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# LLMOPS_KAFKA_MAX_RECORD_BYTES (16777216, the kit's KafkaSettings.max_record_bytes),
# KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), KAFKA_START_TIMEOUT (90 s of an idle, silent broker),
# KAFKA_START_MAX_TIMEOUT (900 s in all),
# KAFKA_STOP_TIMEOUT (30 s), JAVA_HOME, MVN (mvn).
#
# KAFKA_SASL=1: clients must authenticate with SASL/SCRAM-SHA-512 (SASL_PLAINTEXT listener),
# and the StandardAuthorizer checks ACLs. Users, each with a password generated once into
# $LLMOPS_HOME/secrets/kafka/<user>.password (mode 600):
#   admin            the broker itself and the admin tools (super user)
#   llmops-platform  the platform's services (super user; LLMOPS_KAFKA_SECURITY_PROTOCOL=
#                    SASL_PLAINTEXT makes the kit's settings use it)
#   KAFKA_SASL_USERS the others (default: llmops-submitter); no rights but their ACLs
# KAFKA_SUBMITTERS (default: llmops-submitter) may write (and describe)
# llmops.ingestion.document-submitted.v1; nobody else but the super users may.
# Users are created when the data dir is formatted (kafka-storage format --add-scram), or
# later with kafka-configs when KAFKA_SASL_USERS grows. A data dir formatted without
# KAFKA_SASL must be reset (kafka.sh reset) before SASL can be turned on.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LLMOPS_HOME=${LLMOPS_HOME:-$REPO/.llmops}
# Port defaults: the one definition every part of the platform reads (compose via .env too).
PORTS_FILE="$REPO/libs/llmops-kit/src/llmops_kit/ports.env"
port_default() {
  local v
  v=$(sed -n "s/^$1=\([0-9][0-9]*\)\$/\1/p" "$PORTS_FILE")
  [[ -n $v ]] || { echo "$1 is not defined in $PORTS_FILE" >&2; exit 1; }
  echo "$v"
}

KAFKA_PORT=${KAFKA_PORT:-$(port_default KAFKA_PORT)}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$(port_default KAFKA_CONTROLLER_PORT)}
for v in KAFKA_PORT KAFKA_CONTROLLER_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "kafka: $v='${!v}' is not a port number" >&2; exit 1; }
done
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_START_MAX_TIMEOUT=${KAFKA_START_MAX_TIMEOUT:-900}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
MVN=${MVN:-mvn}
# The broker's size limit derives from the platform's record limit exactly as the kit's
# KafkaSettings.broker_max_message_bytes does: + 64 KiB dead-letter headroom + 64 KiB framing.
LLMOPS_KAFKA_MAX_RECORD_BYTES=${LLMOPS_KAFKA_MAX_RECORD_BYTES:-16777216}
KAFKA_MESSAGE_MAX_BYTES=$((LLMOPS_KAFKA_MAX_RECORD_BYTES + 65536 + 65536))
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

POM="$REPO/infra/kafka/pom.xml"
TEMPLATE="$REPO/infra/kafka/server.properties.tmpl"
KAFKA_HOME="$LLMOPS_HOME/kafka"          # jars + rendered config (disposable)
LIBS="$KAFKA_HOME/libs"
LIBS_STAMP="$LIBS/.pom.sha256"           # hash of the pom the jars were resolved from
CONFIG="$KAFKA_HOME/server.properties"
LOG4J_CONFIG="$KAFKA_HOME/log4j2.properties"
DATA="$LLMOPS_HOME/data/kafka"           # topic data + KRaft metadata (persistent)
LOG_DIR="$LLMOPS_HOME/logs"
LOG="$LOG_DIR/kafka.log"
RUN="$LLMOPS_HOME/run"
PIDFILE="$RUN/kafka.pid"
LOG_OFFSET="$RUN/kafka.log-offset"       # size of kafka.log when this process started
STARTED="$RUN/kafka.started"             # holds the pid once it has logged "started"
LOCK="$RUN/kafka.lock"
KAFKA_SASL=${KAFKA_SASL:-0}
KAFKA_SASL_USERS=${KAFKA_SASL_USERS:-llmops-submitter}
KAFKA_SUBMITTERS=${KAFKA_SUBMITTERS:-llmops-submitter}
SUBMIT_TOPIC=llmops.ingestion.document-submitted.v1
SECRETS="$LLMOPS_HOME/secrets/kafka"     # one <user>.password per SCRAM user (KAFKA_SASL=1)
ADMIN_CONFIG="$KAFKA_HOME/admin.properties"  # the admin's client config for the tools
SASL_USERS_FILE="$DATA/.llmops-sasl-users"   # the SCRAM users this data dir has

# The line KafkaRaftServer logs once the broker and controller are both serving.
STARTED_LINE='Kafka Server started'

log() { echo "kafka: $*" >&2; }
die() { log "$*"; exit 1; }

# Serialise start/stop/reset/install: two concurrent starts would both format or
# both launch a JVM. fd 9 stays open (and the lock held) until the script exits.
lock() {
  mkdir -p "$RUN"
  exec 9>"$LOCK"
  flock 9
}

pid() { [[ -s $PIDFILE ]] && cat "$PIDFILE" || true; }

# True if the pid file names a live process that is really our broker (the pid
# could have been recycled after a crash or reboot).
running() {
  local p
  p=$(pid)
  [[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *" kafka.Kafka "* ]]
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# The port a running broker really listens on is the one in its rendered config,
# not whatever KAFKA_PORT the caller of status/health happens to have set.
broker_port() {
  local p=""
  [[ -f $CONFIG ]] && p=$(sed -n 's|^listeners=[A-Z_]*://[^:]*:\([0-9]*\).*|\1|p' "$CONFIG")
  echo "${p:-$KAFKA_PORT}"
}

# Healthy = our JVM is alive, the client port accepts connections, and this
# process (not an earlier one: the log is appended to) has logged STARTED_LINE.
# The listener socket is bound well before the broker serves requests, so the
# TCP check alone would pass too early.
healthy() {
  running || return 1
  port_open "$(broker_port)" || return 1
  local p
  p=$(pid)
  [[ -s $STARTED && $(cat "$STARTED") == "$p" ]] && return 0
  [[ -f $LOG ]] || return 1
  # grep reads from a process substitution, not a pipe: under pipefail, grep -q
  # exiting on the first match would SIGPIPE tail and fail the whole check.
  grep -q "$STARTED_LINE" < <(tail -c +"$(($(cat "$LOG_OFFSET" 2>/dev/null || echo 0) + 1))" "$LOG") ||
    return 1
  echo "$p" >"$STARTED"   # cache it, so health keeps working if the log is rotated by hand
}

installed() {
  [[ -s $LIBS_STAMP ]] && [[ $(cat "$LIBS_STAMP") == "$(sha256sum "$POM" | cut -d' ' -f1)" ]] &&
    compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null
}

cmd_install() {
  if installed; then
    log "jars up to date in $LIBS"
    return 0
  fi
  command -v "$MVN" >/dev/null || die "maven ($MVN) not found"
  log "resolving broker jars with maven into $LIBS (cache: ~/.m2) ..."
  local tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_HOME"
  # Resolve into a temp dir and swap, so a failed or interrupted download never
  # leaves a half-filled libs/ that looks installed.
  # The sed strips the stray ESC[0m codes Debian's Maven 3.8 prints even with -B.
  if ! "$MVN" -B -q -f "$POM" dependency:copy-dependencies -Dkafka.libs.dir="$tmp" 2>&1 |
    sed -e $'s/\x1b\\[[0-9;]*m//g' >&2; then
    rm -rf "$tmp"
    die "maven failed to resolve $POM"
  fi
  sha256sum "$POM" | cut -d' ' -f1 >"$tmp/.pom.sha256"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  local jars=("$LIBS"/*.jar) broker=("$LIBS"/kafka_2.13-*.jar)
  log "installed ${#jars[@]} jars (${broker[0]##*/})"
  if running; then log "broker is running on the old jars; restart it to pick these up"; fi
}

# sed replacement text: escape \, & and the | delimiter.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

sasl_on() { [[ $KAFKA_SASL == 1 || $KAFKA_SASL == true ]]; }

# A user's password: generated once (32 random bytes, base64 without /+=), mode 600.
password() {
  local file="$SECRETS/$1.password"
  if [[ ! -s $file ]]; then
    mkdir -p "$SECRETS"
    chmod 700 "$SECRETS" "$(dirname "$SECRETS")" 2>/dev/null || true
    (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$file.tmp" && mv "$file.tmp" "$file")
  fi
  cat "$file"
}

# shellcheck disable=SC2086  # KAFKA_SASL_USERS is a space-separated list
sasl_users() { echo admin llmops-platform $KAFKA_SASL_USERS | tr ' ' '\n' | awk 'NF && !seen[$0]++'; }

# KAFKA_SASL=1: the protocol of both listeners becomes SASL_PLAINTEXT, and the SASL, authorizer
# and super-user settings are appended to the rendered config FILE (then mode 600: it holds the
# admin's password), with the admin's client config for the tools next to it.
render_security() {
  local file=$1 protocol=PLAINTEXT admin
  sasl_on && protocol=SASL_PLAINTEXT
  sed -i -e "s|@CLIENT_PROTOCOL@|$protocol|g" -e "s|@CONTROLLER_PROTOCOL@|$protocol|g" "$file"
  sasl_on || return 0
  chmod 600 "$file"
  admin=$(password admin)
  # SCRAM credentials live in the metadata log, which the controller cannot read before it
  # serves, so the broker authenticates to its controller with PLAIN (one static admin entry);
  # clients use SCRAM on the SASL_PLAINTEXT listener.
  cat >>"$file" <<EOF

############################# SASL/SCRAM and ACLs (KAFKA_SASL=1) #############################
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:llmops-platform
EOF
  (
    umask 077
    cat >"$ADMIN_CONFIG.tmp" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
EOF
  )
  mv "$ADMIN_CONFIG.tmp" "$ADMIN_CONFIG"
}

render_config() {
  mkdir -p "$KAFKA_HOME"
  sed -e "s|@KAFKA_PORT@|$(sed_escape "$KAFKA_PORT")|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$(sed_escape "$KAFKA_CONTROLLER_PORT")|g" \
      -e "s|@KAFKA_DATA_DIR@|$(sed_escape "$DATA")|g" \
      -e "s|@KAFKA_MESSAGE_MAX_BYTES@|$KAFKA_MESSAGE_MAX_BYTES|g" \
      "$TEMPLATE" >"$CONFIG.tmp"
  render_security "$CONFIG.tmp"
  mv "$CONFIG.tmp" "$CONFIG"

  # Kafka 4.x logs through log4j2. With no config log4j2 prints only ERRORs, so
  # point it at this one: everything to stdout at INFO (stdout is appended to
  # kafka.log by cmd_start, which also catches JVM crash output there).
  # shutdownHook=disable: log4j2's own shutdown hook otherwise races Kafka's and
  # drops the last lines of a shutdown (exactly the ones you want after a stop).
  cat >"$LOG4J_CONFIG" <<'EOF'
status = warn
shutdownHook = disable
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# Per-request and partition state-change chatter: quiet unless something breaks.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
# Every KafkaConfig instance dumps all ~400 settings at INFO (6 times per start);
# the effective config is server.properties next to this file.
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = WARN
logger.abstractconfig.name = org.apache.kafka.common.config.AbstractConfig
logger.abstractconfig.level = WARN
EOF
}

# Format the data dir once. meta.properties is what StorageTool writes; its
# presence means the dir already belongs to a cluster and must be kept.
format_storage() {
  if [[ -f $DATA/meta.properties ]]; then
    if sasl_on && [[ ! -f $SASL_USERS_FILE ]]; then
      die "KAFKA_SASL=1, but $DATA was formatted without SASL users: 'kafka.sh reset' (deletes all topics) or use another LLMOPS_HOME"
    fi
    return 0
  fi
  mkdir -p "$DATA"
  local -a scram=()
  if sasl_on; then
    local user
    for user in $(sasl_users); do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(password "$user")]")
    done
  fi
  local cluster_id
  cluster_id=$("$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  [[ -n $cluster_id ]] || die "could not generate a cluster id"
  log "formatting $DATA (cluster id $cluster_id)"
  # No --standalone: that flag is for a dynamic quorum (controller.quorum.bootstrap.servers)
  # and StorageTool rejects it when controller.quorum.voters is set, as in our
  # template. --ignore-formatted: skip, rather than fail on, an already formatted dir.
  "$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIBS/*" kafka.tools.StorageTool \
    format --config "$CONFIG" --cluster-id "$cluster_id" --ignore-formatted "${scram[@]}" >>"$LOG" 2>&1 ||
    { tail -n 20 "$LOG" >&2; die "storage format failed"; }
  if sasl_on; then sasl_users >"$SASL_USERS_FILE"; fi
}

print_status() {
  if running; then
    echo "kafka: running pid $(pid) port $(broker_port)"
  else
    echo "kafka: stopped"
  fi
}

kafka_tool() {
  "$JAVA" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIBS/*" "$@" \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$ADMIN_CONFIG"
}

# Users added to KAFKA_SASL_USERS since the format (kafka-configs), and the writers' ACLs.
# Both are idempotent; ACLs and SCRAM credentials live in the metadata log.
apply_sasl_users_and_acls() {
  sasl_on || return 0
  local user
  for user in $(sasl_users); do
    grep -qxF "$user" "$SASL_USERS_FILE" && continue
    log "adding SCRAM user $user"
    # Its output can echo the credential: kept out of the log and the terminal.
    kafka_tool org.apache.kafka.tools.ConfigCommand --alter --entity-type users --entity-name "$user" \
      --add-config "SCRAM-SHA-512=[password=$(password "$user")]" >/dev/null 2>&1 ||
      die "could not add SCRAM user $user (kafka-configs failed; is the broker healthy?)"
    echo "$user" >>"$SASL_USERS_FILE"
  done
  local -a writers=()
  for user in $KAFKA_SUBMITTERS; do writers+=(--allow-principal "User:$user"); done
  ((${#writers[@]})) || return 0
  log "ACL: ${KAFKA_SUBMITTERS// /, } may write $SUBMIT_TOPIC"
  kafka_tool org.apache.kafka.tools.AclCommand --add "${writers[@]}" \
    --operation Write --operation Describe --topic "$SUBMIT_TOPIC" >>"$LOG" 2>&1 ||
    { tail -n 20 "$LOG" >&2; die "could not add the ACLs"; }
}

# CPU time (clock ticks) the broker has used, 0 when it is gone.
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$(pid)/stat" 2>/dev/null) || { echo 0; return; }
  # shellcheck disable=SC2086  # split the fields after "pid (comm) ": utime is 12th, stime 13th
  set -- ${stat##*) }
  echo $((${12} + ${13}))
}

# Wait for the broker (already launched) to become healthy, or give up. A broker that is busy
# is still starting (recovering a data directory with thousands of partitions takes minutes):
# a new log line, or a fifth of a core used since the last look (0.5 s before), restarts the
# KAFKA_START_TIMEOUT countdown, up to KAFKA_START_MAX_TIMEOUT in all. Only KAFKA_START_TIMEOUT
# seconds of an idle, silent broker give up.
wait_healthy() {
  local started=$SECONDS cap=$((SECONDS + KAFKA_START_MAX_TIMEOUT)) size last=-1 cpu last_cpu=0
  local busy=$(($(getconf CLK_TCK) / 10)) idle_polls=0  # polls are 0.5 s apart
  while ((idle_polls < 2 * KAFKA_START_TIMEOUT && SECONDS < cap)); do
    if healthy; then
      if ((SECONDS - started > KAFKA_START_TIMEOUT)); then
        log "healthy after $((SECONDS - started))s (still busy past KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT}s)"
      fi
      return 0
    fi
    if ! running; then
      log "broker exited during startup; last log lines:"
      tail -n 40 "$LOG" >&2 || true
      rm -f "$PIDFILE" "$STARTED"
      return 1
    fi
    size=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
    cpu=$(cpu_ticks)
    if ((size != last || cpu - last_cpu >= busy)); then idle_polls=0; else idle_polls=$((idle_polls + 1)); fi
    last=$size last_cpu=$cpu
    sleep 0.5
  done
  log "not healthy after $((SECONDS - started))s (KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT}s idle and" \
    "silent, or KAFKA_START_MAX_TIMEOUT=${KAFKA_START_MAX_TIMEOUT}s in all; pid $(pid) left running;" \
    "'kafka.sh stop' to abort); last log lines:"
  tail -n 40 "$LOG" >&2 || true
  return 1
}

# "Kafka Server started" comes a few hundred ms before the group coordinator has
# replayed __consumer_offsets; until then OffsetFetch answers
# COORDINATOR_LOAD_IN_PROGRESS. Consumers retry that, but some admin clients
# don't (aiokafka's list_consumer_group_offsets returns {}), which makes "offsets
# survived the restart" checks flaky. So start also waits (best effort, 15 s at
# most) until every existing offsets partition has logged that it is loaded.
wait_offsets_loaded() {
  local want loaded deadline=$((SECONDS + 15))
  want=$(compgen -G "$DATA/__consumer_offsets-*" | wc -l) || true
  ((want > 0)) || return 0
  while ((SECONDS < deadline)); do
    loaded=$(tail -c +"$(($(cat "$LOG_OFFSET") + 1))" "$LOG" |
      grep -c 'Finished loading of metadata from __consumer_offsets-') || true
    ((loaded >= want)) && return 0
    sleep 0.2
  done
  log "consumer offsets still loading after 15s (only $loaded of $want partitions); continuing"
}

cmd_start() {
  lock
  if running; then
    # Already up (or still coming up from another start): just confirm health.
    wait_healthy || exit 1
    print_status
    return 0
  fi
  rm -f "$PIDFILE" "$STARTED"

  "$JAVA" -version >/dev/null 2>&1 || die "java not found (Kafka 4.x needs Java 17+)"
  cmd_install
  mkdir -p "$LOG_DIR" "$RUN" "$DATA"
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then die "port $port on 127.0.0.1 is already in use by another process"; fi
  done
  render_config
  format_storage

  # The log is only appended to; rotate it here (never under a live broker) so it
  # can't grow forever across restarts.
  if [[ -f $LOG ]] && (($(stat -c %s "$LOG") > 64 * 1024 * 1024)); then
    mv -f "$LOG" "$LOG.1"
  fi
  touch "$LOG"
  stat -c %s "$LOG" >"$LOG_OFFSET"
  echo "===== kafka.sh start $(date -Is) =====" >>"$LOG"

  # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is deliberately word-split
  local jvm_opts=($KAFKA_HEAP_OPTS
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$LOG4J_CONFIG")

  # Launch from a throwaway subshell that exits at once, so the broker is
  # reparented to init and nothing of this script lingers. The subshell first
  # drops fd 9: whatever inherits the lock fd holds the lock for its whole life.
  # setsid gives the broker its own session, so a Ctrl-C or SIGHUP aimed at the
  # caller doesn't reach it. The inner bash writes its own pid and then execs
  # java, so the pid file holds the JVM's pid whether or not setsid forks.
  (
    exec 9>&- </dev/null >>"$LOG" 2>&1
    cd "$KAFKA_HOME"
    # shellcheck disable=SC2016  # $$ and $@ are for the inner bash
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
      "$JAVA" "${jvm_opts[@]}" -cp "$LIBS/*" kafka.Kafka "$CONFIG" &
  )
  for _ in $(seq 50); do [[ -s $PIDFILE ]] && break; sleep 0.1; done
  [[ -s $PIDFILE ]] || die "broker did not start (no pid file); see $LOG"

  log "started pid $(pid), waiting for it to be healthy (gives up after ${KAFKA_START_TIMEOUT}s idle and silent) ..."
  wait_healthy || exit 1
  wait_offsets_loaded
  apply_sasl_users_and_acls
  print_status
}

cmd_stop() {
  lock
  if ! running; then
    rm -f "$PIDFILE" "$STARTED"
    echo "kafka: stopped"
    return 0
  fi
  local p
  p=$(pid)
  log "stopping pid $p (SIGTERM: controlled shutdown, flushes logs)"
  kill -TERM "$p" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$p" 2>/dev/null; then
    # Data written before the kill is in the page cache and survives; the next
    # start runs log recovery on the unflushed segments.
    log "still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE" "$STARTED"
  echo "kafka: stopped"
}

cmd_status() {
  print_status
  running || exit 3
}

cmd_health() {
  if healthy; then
    echo "kafka: healthy (127.0.0.1:$(broker_port))"
  else
    echo "kafka: unhealthy" >&2
    exit 1
  fi
}

cmd_reset() {
  cmd_stop
  log "deleting $DATA"
  rm -rf "$DATA"
}

case "${1:-}" in
  install) lock; cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  health) cmd_health ;;
  reset) cmd_reset ;;
  render) render_config; echo "$CONFIG" ;;
  *)
    echo "usage: $(basename "$0") {install|start|stop|status|health|reset|render}" >&2
    exit 2
    ;;
esac
