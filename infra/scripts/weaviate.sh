#!/usr/bin/env bash
# Local, single-node Weaviate for development — no Docker, no internet beyond
# the Go module proxy. The server is built from source with `go install`.
#
# Usage: infra/scripts/weaviate.sh {install|start|stop|restart|status|health|reset|logs}
#
#   install  build (once) github.com/weaviate/weaviate/cmd/weaviate-server into
#            $LLMOPS_CACHE/weaviate/<version>/ and link it to
#            $LLMOPS_HOME/weaviate/bin/weaviate-server. A cold build takes
#            ~3 minutes on 2 cores; Go's build cache (~/.cache/go-build,
#            ~/go/pkg/mod) makes later builds of the same version take ~10 s.
#   start    install if needed, run in the background, wait for readiness; a running
#            server that stays unready for WEAVIATE_READY_GRACE seconds is restarted
#   stop     SIGTERM, wait up to 30 s, then SIGKILL (idempotent)
#   status   "weaviate: running pid N port P" (exit 0) or "weaviate: stopped" (exit 3)
#   health   exit 0 iff GET /v1/.well-known/ready answers 200
#   reset    stop and delete all data
#   logs     print the last lines of the server log (N=${WEAVIATE_LOG_LINES:-50})
#
# Environment (all optional):
#   LLMOPS_HOME              runtime root (default: <repo>/.llmops)
#   LLMOPS_CACHE             build cache root (default: ~/.cache/llmops)
#   WEAVIATE_VERSION         module version to build (default: v1.35.2)
#   WEAVIATE_PORT            REST port        } defaults: libs/llmops-kit/src/llmops_kit/
#   WEAVIATE_GRPC_PORT       gRPC port        } ports.env (8080, 8081, 7100, 7102)
#   WEAVIATE_GOSSIP_PORT     memberlist port (data port = +1)
#   WEAVIATE_RAFT_PORT       raft port (raft internal RPC = +1)
#   WEAVIATE_GOMAXPROCS      CPU cap (default: cores-1, at least 1)
#   WEAVIATE_GOMEMLIMIT      Go soft memory limit, e.g. 2GiB (default: unset)
#   WEAVIATE_START_TIMEOUT   seconds to wait for readiness (default: 90)
#   WEAVIATE_READY_GRACE     seconds a running but unready server gets before a restart (30)
#   WEAVIATE_ENABLE_MODULES  ENABLE_MODULES passed to the server (default: empty)
#   WEAVIATE_LOG_LEVEL       server LOG_LEVEL (default: info)
#   WEAVIATE_RAFT_TIMEOUTS_MULTIPLIER  (default: 1; Weaviate's own default is 5)
#
#   WEAVIATE_NETNS           auto|1|0: run in a private network namespace (default auto:
#                            whenever `unshare` allows it); 1 fails if it cannot
#   WEAVIATE_API_KEY_FILE    the API key (default: $LLMOPS_HOME/secrets/weaviate.key)
#
# Security: anonymous access is off. Every request needs the API key, generated once per
# LLMOPS_HOME into WEAVIATE_API_KEY_FILE (mode 600, user "llmops-platform"); the vector-store
# settings read the same file. REST, memberlist and raft bind to 127.0.0.1, but Weaviate's
# gRPC API and internal cluster data port always listen on every interface (":port" is
# hard-coded in v1.35: adapters/handlers/grpc/server.go, clusterapi/grpc/server.go). So the
# server runs in a network namespace of its own whose only interface is loopback
# (infra/scripts/netns-run.py), and REST and gRPC are relayed into it from the host's
# 127.0.0.1. Where no namespace can be made (WEAVIATE_NETNS=0, or a container without the
# privilege), start says so: gRPC (API key still required) and the data port are then
# reachable from other hosts unless a firewall closes them.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
LLMOPS_HOME=${LLMOPS_HOME:-$REPO/.llmops}
mkdir -p "$LLMOPS_HOME"
LLMOPS_HOME=$(cd "$LLMOPS_HOME" && pwd)   # absolute, so cwd never matters
LLMOPS_CACHE=${LLMOPS_CACHE:-$HOME/.cache/llmops}

# Port defaults: the one definition every part of the platform reads (compose via .env too).
PORTS_FILE="$REPO/libs/llmops-kit/src/llmops_kit/ports.env"
port_default() {
  local v
  v=$(sed -n "s/^$1=\([0-9][0-9]*\)\$/\1/p" "$PORTS_FILE")
  [[ -n $v ]] || { echo "$1 is not defined in $PORTS_FILE" >&2; exit 1; }
  echo "$v"
}

WEAVIATE_VERSION=${WEAVIATE_VERSION:-v1.35.2}
WEAVIATE_MODULE=github.com/weaviate/weaviate/cmd/weaviate-server
WEAVIATE_PORT=${WEAVIATE_PORT:-$(port_default WEAVIATE_PORT)}
WEAVIATE_GRPC_PORT=${WEAVIATE_GRPC_PORT:-$(port_default WEAVIATE_GRPC_PORT)}
WEAVIATE_GOSSIP_PORT=${WEAVIATE_GOSSIP_PORT:-$(port_default WEAVIATE_GOSSIP_PORT)}
WEAVIATE_DATA_PORT=$((WEAVIATE_GOSSIP_PORT + 1))   # Weaviate convention: gossip + 1
WEAVIATE_RAFT_PORT=${WEAVIATE_RAFT_PORT:-$(port_default WEAVIATE_RAFT_PORT)}
for v in WEAVIATE_PORT WEAVIATE_GRPC_PORT WEAVIATE_GOSSIP_PORT WEAVIATE_RAFT_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "[weaviate] $v='${!v}' is not a port number" >&2; exit 1; }
done
# With CLUSTER_IN_LOCALHOST=true the server dials raft port + 1 for the internal
# RPC regardless of RAFT_INTERNAL_RPC_PORT (cluster/resolver/rpc.go), so keep them adjacent.
WEAVIATE_RAFT_RPC_PORT=$((WEAVIATE_RAFT_PORT + 1))
WEAVIATE_START_TIMEOUT=${WEAVIATE_START_TIMEOUT:-90}
WEAVIATE_NETNS=${WEAVIATE_NETNS:-auto}
WEAVIATE_API_KEY_FILE=${WEAVIATE_API_KEY_FILE:-$LLMOPS_HOME/secrets/weaviate.key}
WEAVIATE_API_USER=llmops-platform
PYTHON=${PYTHON:-python3}

BUILD_DIR=$LLMOPS_CACHE/weaviate/$WEAVIATE_VERSION
BUILD_BIN=$BUILD_DIR/weaviate-server
BIN_DIR=$LLMOPS_HOME/weaviate/bin
BIN=$BIN_DIR/weaviate-server
DATA_DIR=$LLMOPS_HOME/data/weaviate
LOG_DIR=$LLMOPS_HOME/logs
LOG_FILE=$LOG_DIR/weaviate.log
BUILD_LOG=$LOG_DIR/weaviate-build.log
RUN_DIR=$LLMOPS_HOME/run
PID_FILE=$RUN_DIR/weaviate.pid

log() { echo "[weaviate] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --------------------------------------------------------------------------- install

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  local g
  for g in /usr/local/go/bin/go "$HOME/go/bin/go" "$HOME/sdk/go/bin/go"; do
    [[ -x $g ]] && { echo "$g"; return; }
  done
  return 1
}

link_binary() {
  mkdir -p "$BIN_DIR"
  # Symlink (cheap); fall back to a copy on filesystems without symlinks.
  ln -sfn "$BUILD_BIN" "$BIN" 2>/dev/null || cp -f "$BUILD_BIN" "$BIN"
}

cmd_install() {
  if [[ -x $BUILD_BIN ]]; then
    link_binary
    log "weaviate-server $WEAVIATE_VERSION already built: $BUILD_BIN"
    return 0
  fi
  local go
  go=$(find_go) || die "Go toolchain not found (need Go >= 1.25 to build Weaviate $WEAVIATE_VERSION)"
  mkdir -p "$BUILD_DIR" "$LOG_DIR"
  log "building $WEAVIATE_MODULE@$WEAVIATE_VERSION with $($go version | cut -d' ' -f3)"
  log "cold build: ~220 modules to download, ~1750 packages to compile, about 3 minutes on 2 cores"
  log "build log: $BUILD_LOG"
  local start=$SECONDS rc=0 pid
  # -v prints each package as it is compiled, which we use as a progress counter.
  GOBIN=$BUILD_DIR "$go" install -v "$WEAVIATE_MODULE@$WEAVIATE_VERSION" >"$BUILD_LOG" 2>&1 &
  pid=$!
  local tick=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ((++tick % 15 == 0)) || continue
    kill -0 "$pid" 2>/dev/null || break
    local dl compiled last
    dl=$(grep -c '^go: downloading' "$BUILD_LOG" 2>/dev/null || true)
    compiled=$(grep -vc '^go: ' "$BUILD_LOG" 2>/dev/null || true)
    last=$(tail -n 1 "$BUILD_LOG" 2>/dev/null | cut -c1-80)
    log "  ... $((SECONDS - start))s: ${dl:-0} modules downloaded, ${compiled:-0} packages compiled (${last})"
  done
  wait "$pid" || rc=$?
  if [[ $rc -ne 0 || ! -x $BUILD_BIN ]]; then
    tail -n 30 "$BUILD_LOG" >&2 || true
    die "go install failed (exit $rc); see $BUILD_LOG"
  fi
  link_binary
  log "built in $((SECONDS - start))s: $BUILD_BIN -> $BIN"
}

# --------------------------------------------------------------------------- process helpers

# Echo the pid recorded in the pid file iff that process is alive and is weaviate-server.
running_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(tr -dc '0-9' <"$PID_FILE")
  [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ $(cmdline "$pid") == *weaviate-server* ]] || return 1
  echo "$pid"
}

# A process's full command line (ps truncates it to $COLUMNS, which pytest sets).
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# REST port of the running process (parsed from its command line), else the configured one.
running_port() {
  local pid=$1 port
  port=$(cmdline "$pid" | sed -n 's/.*--port[= ]\([0-9][0-9]*\).*/\1/p')
  echo "${port:-$WEAVIATE_PORT}"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ready_code() {
  curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$1/v1/.well-known/ready" 2>/dev/null || true
}

# wait_ready PID PORT [TIMEOUT]: 0 once ready; 1 if the process exits or the time runs out.
# The verdict is printed after the log tail too, so callers that keep only the end see it.
wait_ready() {
  local pid=$1 port=$2 timeout=${3:-$WEAVIATE_START_TIMEOUT} code=""
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    code=$(ready_code "$port")
    [[ $code == 200 ]] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log "process $pid exited during startup; last log lines ($LOG_FILE):"
      tail -n 40 "$LOG_FILE" >&2 || true
      log "process $pid exited during startup (see above)"
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 1
  done
  log "last log lines ($LOG_FILE):"
  tail -n 40 "$LOG_FILE" >&2 || true
  # What a hung server looked like: its state, memory and CPU, and the machine's memory.
  ps -o pid,stat,rss,pcpu,etime -p "$pid" >&2 2>/dev/null || true
  free -m >&2 2>/dev/null || true
  log "pid $pid not ready after ${timeout}s (last /v1/.well-known/ready answer: ${code:-none})"
  return 1
}

# The API key, made once per LLMOPS_HOME: 32 random bytes, readable by this user only.
ensure_api_key() {
  [[ -s $WEAVIATE_API_KEY_FILE ]] && { chmod 600 "$WEAVIATE_API_KEY_FILE"; return 0; }
  mkdir -p "$(dirname "$WEAVIATE_API_KEY_FILE")"
  chmod 700 "$(dirname "$WEAVIATE_API_KEY_FILE")" 2>/dev/null || true
  (
    umask 077
    head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$WEAVIATE_API_KEY_FILE.tmp"
    mv "$WEAVIATE_API_KEY_FILE.tmp" "$WEAVIATE_API_KEY_FILE"
  )
  log "generated the API key: $WEAVIATE_API_KEY_FILE (mode 600)"
}

# Whether a private network namespace can be made here (root, or user namespaces allowed).
use_netns() {
  case $WEAVIATE_NETNS in
    0 | false | no) return 1 ;;
  esac
  if unshare -n true 2>/dev/null || unshare -rn true 2>/dev/null; then return 0; fi
  [[ $WEAVIATE_NETNS == auto ]] || die "WEAVIATE_NETNS=$WEAVIATE_NETNS but no network namespace can be made here"
  return 1
}

default_gomaxprocs() {
  local n
  n=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 2)
  ((n > 1)) && echo $((n - 1)) || echo 1
}

# --------------------------------------------------------------------------- commands

cmd_start() {
  local pid port
  if pid=$(running_pid); then
    port=$(running_port "$pid")
    log "already running (pid $pid, port $port)"
    # A server that stopped answering (e.g. starved of CPU until raft lost its leader) is
    # restarted rather than reported broken: its data is on disk.
    wait_ready "$pid" "$port" "${WEAVIATE_READY_GRACE:-30}" && return 0
    log "pid $pid is running but not ready: restarting it"
    cmd_stop
  fi
  rm -f "$PID_FILE"
  command -v curl >/dev/null || die "curl is required"

  local netns=0 ports=("$WEAVIATE_PORT" "$WEAVIATE_GRPC_PORT")
  use_netns && netns=1
  # In a namespace of its own only the relayed ports are taken on the host.
  ((netns)) || ports+=("$WEAVIATE_GOSSIP_PORT" "$WEAVIATE_DATA_PORT" "$WEAVIATE_RAFT_PORT"
    "$WEAVIATE_RAFT_RPC_PORT")
  for port in "${ports[@]}"; do
    port_in_use "$port" && die "port $port is already in use (another Weaviate? see 'ss -tlnp')"
  done

  cmd_install   # no-op (just re-links) when this version is already built
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$RUN_DIR"
  ensure_api_key

  local gomaxprocs=${WEAVIATE_GOMAXPROCS:-$(default_gomaxprocs)}
  # RAFT_TIMEOUTS_MULTIPLIER: Weaviate defaults to 5 (tuned for multi-node clusters); a
  # lone node only waits out the heartbeat timeout before electing itself, so 1 makes
  # startup ~5 s faster and cannot cause leader flapping with a single voter.
  log "starting $WEAVIATE_VERSION on http://127.0.0.1:$WEAVIATE_PORT (grpc $WEAVIATE_GRPC_PORT), data $DATA_DIR"
  {
    echo "===== $(date -u +%FT%TZ) start $WEAVIATE_VERSION port=$WEAVIATE_PORT grpc=$WEAVIATE_GRPC_PORT ====="
  } >>"$LOG_FILE"

  # setsid: own session, so Ctrl-C / hang-up of the calling shell does not reach it.
  # (In a non-interactive shell the background child is not a group leader, so
  # setsid execs in place and $! is the server's pid.)
  local -a server_env=(
    PERSISTENCE_DATA_PATH="$DATA_DIR"
    AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED=false
    AUTHENTICATION_APIKEY_ENABLED=true
    AUTHENTICATION_APIKEY_ALLOWED_KEYS="$(cat "$WEAVIATE_API_KEY_FILE")"
    AUTHENTICATION_APIKEY_USERS="$WEAVIATE_API_USER"
    AUTHORIZATION_RBAC_ENABLED=false
    DEFAULT_VECTORIZER_MODULE=none
    ENABLE_MODULES="${WEAVIATE_ENABLE_MODULES:-}"
    QUERY_DEFAULTS_LIMIT=25
    QUERY_MAXIMUM_RESULTS=10000
    # Korean morphological tokenizer for BM25 (a collection asks for it per property;
    # the vector-store's LLMOPS_VECTORSTORE_TEXT_TOKENIZATION=kagome_kr).
    ENABLE_TOKENIZER_KAGOME_KR=true
    DISABLE_TELEMETRY=true          # no internet here; also avoids phoning home
    GO_PROFILING_DISABLE=true       # otherwise pprof listens on :6060 (all interfaces)
    PROMETHEUS_MONITORING_ENABLED=false
    GRPC_PORT="$WEAVIATE_GRPC_PORT"
    CLUSTER_HOSTNAME=node1          # stable raft node id: data dir is bound to it
    CLUSTER_IN_LOCALHOST=true
    CLUSTER_BIND_ADDR=127.0.0.1     # memberlist + raft + raft RPC on loopback
    CLUSTER_GOSSIP_BIND_PORT="$WEAVIATE_GOSSIP_PORT"
    CLUSTER_DATA_BIND_PORT="$WEAVIATE_DATA_PORT"
    RAFT_PORT="$WEAVIATE_RAFT_PORT"
    RAFT_INTERNAL_RPC_PORT="$WEAVIATE_RAFT_RPC_PORT"
    RAFT_JOIN="node1:$WEAVIATE_RAFT_PORT"
    RAFT_BOOTSTRAP_EXPECT=1
    RAFT_TIMEOUTS_MULTIPLIER="${WEAVIATE_RAFT_TIMEOUTS_MULTIPLIER:-1}"
    LIMIT_RESOURCES=true            # cores-1 unless GOMAXPROCS; 80% of a cgroup memory limit
    GOMAXPROCS="$gomaxprocs"
    LOG_LEVEL="${WEAVIATE_LOG_LEVEL:-info}"
    LOG_FORMAT=text
  )
  # Outside a memory-limited cgroup LIMIT_RESOURCES finds no limit (logs limit=0), so
  # offer an explicit soft limit; automemlimit leaves an explicit GOMEMLIMIT alone.
  if [[ -n ${WEAVIATE_GOMEMLIMIT:-} ]]; then server_env+=(GOMEMLIMIT="$WEAVIATE_GOMEMLIMIT"); fi

  local -a launch=()
  if ((netns)); then
    launch=("$PYTHON" "$REPO/infra/scripts/netns-run.py"
      --forward "$WEAVIATE_PORT" --forward "$WEAVIATE_GRPC_PORT" --)
    log "private network namespace: only 127.0.0.1:$WEAVIATE_PORT and :$WEAVIATE_GRPC_PORT are reachable, relayed"
  else
    log "WARNING: no network namespace: gRPC (:$WEAVIATE_GRPC_PORT, API key required) and the" \
      "cluster data port (:$WEAVIATE_DATA_PORT) listen on every interface; firewall them"
  fi
  # Exported in a subshell, not passed as `env K=V` arguments: the API key must not show
  # up in any process's command line.
  (
    export "${server_env[@]}"
    exec nohup setsid "${launch[@]}" "$BIN" \
      --host 127.0.0.1 --port "$WEAVIATE_PORT" --scheme http \
      --read-timeout=600s --write-timeout=600s \
      </dev/null >>"$LOG_FILE" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PID_FILE"

  local t0=$SECONDS
  if wait_ready "$pid" "$WEAVIATE_PORT"; then
    log "ready in $((SECONDS - t0))s (pid $pid, log $LOG_FILE)"
  else
    exit 1
  fi
}

cmd_stop() {
  local pid i
  if ! pid=$(running_pid); then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    echo "weaviate: running pid $pid port $(running_port "$pid")"
    return 0
  fi
  echo "weaviate: stopped"
  return 3
}

cmd_health() {
  local pid port=$WEAVIATE_PORT
  pid=$(running_pid) && port=$(running_port "$pid")
  [[ $(ready_code "$port") == 200 ]]
}

cmd_reset() {
  cmd_stop
  log "deleting $DATA_DIR"
  rm -rf "$DATA_DIR"
}

cmd_logs() { tail -n "${WEAVIATE_LOG_LINES:-50}" "$LOG_FILE"; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  health) cmd_health ;;
  reset) cmd_reset ;;
  logs) cmd_logs ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
