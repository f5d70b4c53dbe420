#!/usr/bin/env bash
# Private PostgreSQL cluster for development and tests (Debian's postgresql, no Docker).
#
#   postgres.sh install  apt-get install postgresql if no initdb is found (root only)
#   postgres.sh start    install if needed, initdb once, start, wait for pg_isready, ensure the
#                        `llmops` role (LOGIN CREATEDB) and `llmops` database exist (idempotent)
#   postgres.sh stop     fast shutdown, wait (no-op if not running)
#   postgres.sh status   "postgres: running pid N port P" (exit 0) or "postgres: stopped" (exit 3)
#   postgres.sh health   exit 0 iff pg_isready answers on 127.0.0.1:PORT
#   postgres.sh reset    stop and delete the cluster's data
#   postgres.sh url      print the SQLAlchemy URL of the llmops database
#
# The cluster lives in $LLMOPS_HOME/data/postgres, listens on 127.0.0.1:$POSTGRES_PORT only (no
# unix socket), trusts connections from 127.0.0.1 (a local development database: production uses
# its own server and credentials in the URL), logs to $LLMOPS_HOME/logs/postgres.log and records
# the postmaster's pid in $LLMOPS_HOME/run/postgres.pid. PostgreSQL refuses to run as root, so
# as root the server runs as $POSTGRES_OS_USER (created as a system user if missing); when that
# user cannot traverse LLMOPS_HOME (a checkout in /root, in a mode-700 home or `mktemp -d`
# folder), the cluster and its log live in $POSTGRES_SERVER_ROOT/postgres-<hash of LLMOPS_HOME>
# instead, recorded in $LLMOPS_HOME/data/postgres.location so every later call finds it (the log
# is linked from $LLMOPS_HOME/logs/postgres.log). As any other user the server runs as that user.
#
# Environment: LLMOPS_HOME (<repo>/.llmops), POSTGRES_PORT (ports.env: 15432), POSTGRES_OS_USER (postgres),
# POSTGRES_START_TIMEOUT (60 s), POSTGRES_BIN (newest /usr/lib/postgresql/*/bin),
# POSTGRES_SERVER_ROOT (/var/lib/llmops).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LLMOPS_HOME=${LLMOPS_HOME:-$REPO/.llmops}
mkdir -p "$LLMOPS_HOME"
LLMOPS_HOME=$(cd "$LLMOPS_HOME" && pwd)   # absolute: the server must not depend on our cwd

PORTS_FILE="$REPO/libs/llmops-kit/src/llmops_kit/ports.env"
if [[ -z ${POSTGRES_PORT:-} ]]; then
  POSTGRES_PORT=$(sed -n 's/^POSTGRES_PORT=\([0-9][0-9]*\)$/\1/p' "$PORTS_FILE")
  [[ -n $POSTGRES_PORT ]] || { echo "postgres: POSTGRES_PORT is not defined in $PORTS_FILE" >&2; exit 1; }
fi
POSTGRES_OS_USER=${POSTGRES_OS_USER:-postgres}
POSTGRES_START_TIMEOUT=${POSTGRES_START_TIMEOUT:-60}
DB_ROLE=llmops
DB_NAME=llmops

POSTGRES_SERVER_ROOT=${POSTGRES_SERVER_ROOT:-/var/lib/llmops}
HOME_DATA=$LLMOPS_HOME/data/postgres
LOCATION=$LLMOPS_HOME/data/postgres.location
LOG_DIR=$LLMOPS_HOME/logs
HOME_LOG=$LOG_DIR/postgres.log
# Where an earlier start put the cluster (set again by place_cluster on a first start).
if [[ -f $LOCATION ]]; then DATA=$(<"$LOCATION"); LOG=$(dirname "$DATA")/postgres.log
else DATA=$HOME_DATA; LOG=$HOME_LOG; fi
RUN=$LLMOPS_HOME/run
PIDFILE=$RUN/postgres.pid
LOCK=$RUN/postgres.lock

log() { echo "postgres: $*" >&2; }
die() { log "$*"; exit 1; }

pg_bin() {
  if [[ -n ${POSTGRES_BIN:-} ]]; then echo "$POSTGRES_BIN"; return; fi
  local dirs
  dirs=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n1) || return 1
  [[ -n $dirs ]] || return 1
  dirname "$dirs"
}

# Runs a server-side command as the cluster's owner (as ourselves when we are not root).
as_owner() {
  # from /: the caller's working directory (the checkout) may be one the owner cannot enter
  if ((EUID == 0)); then (cd / && runuser -u "$POSTGRES_OS_USER" -- "$@"); else "$@"; fi
}

# Serialise start/stop/reset: two concurrent starts would both initdb or both launch.
lock() {
  mkdir -p "$RUN"
  exec 9>"$LOCK"
  flock 9
}

cmd_install() {
  if pg_bin >/dev/null; then
    log "installed: $(pg_bin)"
    return 0
  fi
  ((EUID == 0)) || die "PostgreSQL is not installed; as root run: apt-get install -y postgresql"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available"
  log "installing Debian's postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # Package lists may be missing (fresh image) or stale: update once, then retry.
  apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
  pg_bin >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
}

ensure_os_user() {
  ((EUID == 0)) || return 0
  id -u "$POSTGRES_OS_USER" >/dev/null 2>&1 && return 0
  log "creating system user $POSTGRES_OS_USER"
  useradd --system --no-create-home --shell /usr/sbin/nologin "$POSTGRES_OS_USER"
}

# The owner must reach its data dir through every parent. Under a folder it cannot traverse
# (the checkout in /root, a mode-700 home, `mktemp -d`), the cluster moves to a directory of its
# own outside the checkout, one per LLMOPS_HOME. An existing cluster never moves.
place_cluster() {
  [[ -f $LOCATION || -f $HOME_DATA/PG_VERSION ]] && return 0
  ((EUID == 0)) || return 0
  as_owner test -x "$LLMOPS_HOME/data" && return 0
  local hash dir
  hash=$(printf '%s' "$LLMOPS_HOME" | sha256sum | cut -c1-16)
  dir=$POSTGRES_SERVER_ROOT/postgres-$hash
  log "user $POSTGRES_OS_USER cannot traverse $LLMOPS_HOME; keeping the cluster in $dir"
  mkdir -p "$POSTGRES_SERVER_ROOT" "$dir"
  chmod 755 "$POSTGRES_SERVER_ROOT"
  chown "$POSTGRES_OS_USER:" "$dir"
  chmod 700 "$dir"
  DATA=$dir/data
  LOG=$dir/postgres.log
  printf '%s\n' "$DATA" >"$LOCATION"
}

check_reachable() {
  ((EUID == 0)) || return 0
  as_owner test -x "$(dirname "$DATA")" ||
    die "user $POSTGRES_OS_USER cannot traverse $(dirname "$DATA")"
}

# The log where a user looks for it, when the server writes it elsewhere.
link_log() {
  [[ $LOG == "$HOME_LOG" ]] && return 0
  [[ -L $HOME_LOG || ! -e $HOME_LOG ]] && ln -sfn "$LOG" "$HOME_LOG"
  return 0
}

init_cluster() {
  [[ -f $DATA/PG_VERSION ]] && return 0
  local bin=$1
  mkdir -p "$DATA"
  ((EUID == 0)) && chown "$POSTGRES_OS_USER:" "$DATA"
  chmod 700 "$DATA"
  log "initdb $DATA"
  as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >>"$LOG" 2>&1 ||
    { tail -n 20 "$LOG" >&2; die "initdb failed"; }
  # Listening address and port are passed on every start (-o), so only the rest lives here.
  cat >>"$DATA/postgresql.conf" <<'EOF'

# --- llmops (infra/scripts/postgres.sh) ---
unix_socket_directories = ''    # TCP on 127.0.0.1 only: no socket path length or permission issues
logging_collector = off         # pg_ctl appends stderr to the log file
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  cat >"$DATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
EOF
}

pid() { [[ -f $DATA/postmaster.pid ]] && head -n1 "$DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9' || true; }

# The port of the running postmaster (line 4 of postmaster.pid), not the caller's POSTGRES_PORT.
running_port() {
  local p=""
  [[ -f $DATA/postmaster.pid ]] && p=$(sed -n '4p' "$DATA/postmaster.pid" | tr -dc '0-9')
  echo "${p:-$POSTGRES_PORT}"
}

running() {
  local p
  p=$(pid)
  [[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 1
  [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == *postgres* ]]
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

ready() { pg_isready -q -h 127.0.0.1 -p "$1" -d postgres -U postgres -t 2 >/dev/null 2>&1; }

wait_ready() {
  local port=$1 deadline=$((SECONDS + POSTGRES_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    ready "$port" && return 0
    running || { tail -n 30 "$LOG" >&2; die "server exited during startup"; }
    sleep 0.3
  done
  tail -n 30 "$LOG" >&2
  die "not ready after ${POSTGRES_START_TIMEOUT}s"
}

sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAc "$2"; }

ensure_role_and_db() {
  local port=$1
  [[ $(sql "$port" "SELECT 1 FROM pg_roles WHERE rolname = '$DB_ROLE'") == 1 ]] ||
    sql "$port" "CREATE ROLE $DB_ROLE LOGIN CREATEDB"
  [[ $(sql "$port" "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") == 1 ]] ||
    sql "$port" "CREATE DATABASE $DB_NAME OWNER $DB_ROLE"
}

print_status() {
  if running; then echo "postgres: running pid $(pid) port $(running_port)"; else echo "postgres: stopped"; fi
}

cmd_start() {
  lock
  local bin port
  if running; then
    port=$(running_port)
    wait_ready "$port"
    ensure_role_and_db "$port"
    pid >"$PIDFILE"
    print_status
    return 0
  fi
  cmd_install
  bin=$(pg_bin)
  ensure_os_user
  mkdir -p "$LOG_DIR" "$RUN" "$LLMOPS_HOME/data"
  place_cluster
  check_reachable
  touch "$LOG"
  link_log
  ((EUID == 0)) && chown "$POSTGRES_OS_USER:" "$LOG"
  port_open "$POSTGRES_PORT" && die "port $POSTGRES_PORT on 127.0.0.1 is already in use by another process"
  init_cluster "$bin"
  # A crash leaves postmaster.pid behind; postgres itself checks whether that pid is alive and
  # refuses only then, so a stale file needs no cleanup here.
  log "starting PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$POSTGRES_PORT, data $DATA"
  # setsid: its own session, so a Ctrl-C aimed at whoever started it (pytest) never reaches it.
  # 9>&-: the server must not inherit (and hold forever) the lock of this script.
  as_owner setsid -w "$bin/pg_ctl" start -D "$DATA" -l "$LOG" -w -t "$POSTGRES_START_TIMEOUT" \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT" </dev/null >/dev/null 9>&- ||
    { tail -n 30 "$LOG" >&2; die "pg_ctl start failed"; }
  wait_ready "$POSTGRES_PORT"
  ensure_role_and_db "$POSTGRES_PORT"
  pid >"$PIDFILE"
  print_status
}

cmd_stop() {
  lock
  if ! running; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  log "stopping pid $(pid)"
  as_owner "$(pg_bin)/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null ||
    die "pg_ctl stop failed"
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_status() {
  print_status
  running
}

cmd_health() {
  running && ready "$(running_port)"
}

cmd_reset() {
  cmd_stop
  log "deleting $DATA"
  rm -rf "$DATA"
  if [[ -f $LOCATION ]]; then  # a cluster kept outside the checkout: its directory too
    rm -rf "$(dirname "$DATA")" "$LOCATION"
    [[ -L $HOME_LOG ]] && rm -f "$HOME_LOG"
  fi
  return 0
}

cmd_url() { echo "postgresql+psycopg://$DB_ROLE@127.0.0.1:$(running_port)/$DB_NAME"; }

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) if cmd_status; then exit 0; else exit 3; fi ;;
  health) cmd_health ;;
  reset) cmd_reset ;;
  url) cmd_url ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
