#!/usr/bin/env bash
# services.sh - install, start and stop private PostgreSQL / Redis / Redis Cluster
# instances on 127.0.0.1 for development and tests. Every subcommand is idempotent.
# Nothing here touches the system PostgreSQL cluster or any system Redis.
#
# Usage: scripts/services.sh SUBCOMMAND [ARGS]
#
#   install                    apt-get install redis-server / postgresql, only if missing
#   up                         install, then start (if not running) PostgreSQL, Redis and
#                              a Redis Cluster under $SERVICES_DIR; print one URL per service
#   down                       stop all three and delete their folders under $SERVICES_DIR
#   status                     print up/down per service; exit 0 if all up, 1 otherwise
#   pg-start DIR PORT          private PostgreSQL cluster in DIR/data on 127.0.0.1:PORT
#                              (initdb on first use, plain start afterwards: data is kept)
#   pg-stop DIR                stop it (fast shutdown); no error if already stopped
#   redis-start DIR PORT       single Redis on 127.0.0.1:PORT, files in DIR
#   redis-stop DIR             stop it
#   cluster-start DIR BASEPORT Redis Cluster, 3 masters + 3 replicas on BASEPORT..BASEPORT+5
#                              (node folders DIR/nPORT are wiped and the cluster re-created
#                              unless all six nodes already answer with cluster_state:ok)
#   cluster-stop DIR           stop its six nodes
#   cluster-node-kill DIR PORT SIGKILL one node of that cluster (DIR/nPORT), as a crash would;
#                              refuses a port outside its BASEPORT..BASEPORT+5
#   cluster-node-start DIR PORT start that one node again with its own nodes.conf, so it
#                              rejoins the cluster (a master that was failed over comes back
#                              as a replica); waits until it reports cluster_state:ok
#
# Environment:
#   SERVICES_DIR=/tmp/movierec-services  folder used by up/down/status (subfolders pg, redis, cluster)
#   PG_PORT=54329  REDIS_PORT=6390  CLUSTER_BASE_PORT=7101 (+10000 is the cluster bus: keep < 55530)
#   PG_FAST=1           start PostgreSQL with fsync/synchronous_commit/full_page_writes off
#                       (throwaway test data only; never the default)
#   REDIS_MAXMEMORY=256mb  maxmemory of every Redis process (allkeys-lru)
#   REDIS_PERSIST=aof   Redis keeps its data across a restart in an append-only file in its
#                       folder (every acknowledged write survives a crash of the process);
#                       default: nothing kept, a restarted Redis is empty
#
# URLs printed by up/status:
#   postgres://origin@127.0.0.1:$PG_PORT/movies   (role "origin", trust auth, db created by up)
#   redis://127.0.0.1:$REDIS_PORT
#   redis://127.0.0.1:$CLUSTER_BASE_PORT,...      (comma-separated, all six nodes)
#
# As root, PostgreSQL binaries run as the "postgres" user (initdb refuses root), so a pg DIR
# must be somewhere that user can reach (e.g. under /tmp, not /root). Paths must not contain
# spaces.
set -euo pipefail

SERVICES_DIR=${SERVICES_DIR:-/tmp/movierec-services}
PG_PORT=${PG_PORT:-54329}
REDIS_PORT=${REDIS_PORT:-6390}
CLUSTER_BASE_PORT=${CLUSTER_BASE_PORT:-7101}
REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-256mb}
PG_DB=movies
PG_USER=origin
WAIT_SECS=30

die() { echo "services.sh: $*" >&2; exit 1; }
note() { echo "services.sh: $*" >&2; }

# Print the tail of a log file to stderr, then fail.
die_log() {
  local log=$1; shift
  echo "services.sh: $* (see $log)" >&2
  if [[ -f $log ]]; then
    echo "---- last lines of $log ----" >&2
    tail -n 20 "$log" >&2 || true
    echo "----" >&2
  fi
  exit 1
}

abs_dir() {
  local d=$1
  [[ -n $d ]] || die "missing DIR argument"
  [[ $d != *[[:space:]]* ]] || die "DIR must not contain spaces: '$d'"
  [[ $d == /* ]] || d="$PWD/$d"
  # normalise (drop trailing slash, ./ and ../) without requiring existence
  realpath -m -- "$d"
}

check_port() {
  local p=$1
  [[ $p =~ ^[0-9]+$ ]] && (( p > 0 && p < 65536 )) || die "bad port: '$p'"
}

# ---------------------------------------------------------------- install

cmd_install() {
  local log
  if ! command -v redis-server >/dev/null 2>&1; then
    note "installing redis-server ..."
    log=$(mktemp)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; } >"$log" 2>&1; then
      die_log "$log" "apt-get install redis-server failed"
    fi
    rm -f "$log"
  fi
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    note "installing postgresql ..."
    log=$(mktemp)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >"$log" 2>&1; then
      die_log "$log" "apt-get install postgresql failed"
    fi
    rm -f "$log"
  fi
}

# ---------------------------------------------------------------- PostgreSQL

pg_bin() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1) || true
  [[ -n $b && -x $b/initdb ]] || die "PostgreSQL binaries not found under /usr/lib/postgresql (run: $0 install)"
  echo "$b"
}

# Run a PostgreSQL server binary in DIR, as postgres when we are root.
pg_run() {
  local dir=$1; shift
  if (( EUID == 0 )); then
    (cd "$dir" && runuser -u postgres -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

pg_running() { # DIR
  local dir=$1
  [[ -f $dir/data/PG_VERSION ]] || return 1
  pg_run "$dir" "$(pg_bin)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

cmd_pg_start() { # DIR PORT
  local dir port bin opts
  dir=$(abs_dir "${1:-}"); port=${2:-}; check_port "$port"
  bin=$(pg_bin)
  if pg_running "$dir"; then
    return 0
  fi
  mkdir -p "$dir"
  if (( EUID == 0 )); then
    id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (run: $0 install)"
    chown postgres: "$dir"
    [[ -d $dir/data ]] && chown -R postgres: "$dir/data"
    runuser -u postgres -- test -w "$dir" -a -x "$dir" \
      || die "$dir is not reachable/writable by user postgres (every parent must be traversable; use /tmp)"
  fi
  echo "$port" >"$dir/port"; (( EUID == 0 )) && chown postgres: "$dir/port"
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    rm -rf "$dir/data"   # leftover of an interrupted initdb
    pg_run "$dir" "$bin/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust -E UTF8 \
      --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
      || die_log "$dir/initdb.log" "initdb failed for $dir/data"
  fi
  opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300"
  if [[ ${PG_FAST:-} == 1 ]]; then
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  pg_run "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t "$WAIT_SECS" -o "$opts" start \
    >/dev/null 2>"$dir/pg_ctl.err" 9>&- \
    || { cat "$dir/pg_ctl.err" >&2; die_log "$dir/pg.log" "PostgreSQL in $dir failed to start on 127.0.0.1:$port (or was not ready within ${WAIT_SECS}s)"; }
  rm -f "$dir/pg_ctl.err"
}

cmd_pg_stop() { # DIR
  local dir
  dir=$(abs_dir "${1:-}")
  pg_running "$dir" || return 0
  pg_run "$dir" "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w -t "$WAIT_SECS" stop >/dev/null \
    || die_log "$dir/pg.log" "PostgreSQL in $dir did not stop within ${WAIT_SECS}s"
}

pg_ensure_db() { # PORT DB
  local port=$1 db=$2 bin
  bin=$(pg_bin)
  if [[ -z $("$bin/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres -XtAq \
        -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$PG_USER" "$db"
  fi
}

# ---------------------------------------------------------------- Redis

rcli() { # PORT ARGS...
  local port=$1; shift
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

redis_ping() { [[ $(rcli "$1" ping) == PONG ]]; }

# A process that has exited but not been reaped yet (zombie) counts as gone: PID 1 here may
# reap orphans late, and kill -0 succeeds on zombies.
proc_alive() { # PID
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

pid_alive() { # PIDFILE
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid"
}

# Start one redis-server with its files in DIR. Extra args are passed to redis-server.
redis_launch() { # DIR PORT [ARGS...]
  local dir=$1 port=$2; shift 2
  command -v redis-server >/dev/null || die "redis-server not found (run: $0 install)"
  if redis_ping "$port"; then
    die "port $port already answers PING but is not the Redis of $dir: stop that process first"
  fi
  rm -f "$dir/redis.pid"
  local persist=()
  case ${REDIS_PERSIST:-} in
    '') ;;
    aof) persist=(--appendonly yes --appendfsync everysec) ;;
    *) die "REDIS_PERSIST=$REDIS_PERSIST: only aof is known" ;;
  esac
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy allkeys-lru "${persist[@]}" "$@" >/dev/null 9>&- \
    || die_log "$dir/redis.log" "redis-server on port $port failed to start"
  echo "$port" >"$dir/port"
}

redis_wait_ping() { # DIR PORT
  local dir=$1 port=$2 i
  for ((i = 0; i < WAIT_SECS * 20; i++)); do
    redis_ping "$port" && return 0
    if (( i >= 40 )) && ! pid_alive "$dir/redis.pid"; then
      die_log "$dir/redis.log" "Redis on 127.0.0.1:$port exited during startup"
    fi
    sleep 0.05
  done
  die_log "$dir/redis.log" "Redis on 127.0.0.1:$port did not answer PING within ${WAIT_SECS}s"
}

# Stop the redis whose files are in DIR (pidfile + port file). Quiet, idempotent.
redis_kill() { # DIR
  local dir=$1 pid port i
  pid_alive "$dir/redis.pid" || { rm -f "$dir/redis.pid"; return 0; }
  pid=$(<"$dir/redis.pid")
  port=$(cat "$dir/port" 2>/dev/null || true)
  if [[ -n $port ]]; then
    rcli "$port" shutdown nosave >/dev/null || true
  fi
  for ((i = 0; i < 200; i++)); do
    proc_alive "$pid" || break
    (( i == 100 )) && kill -TERM "$pid" 2>/dev/null || true
    sleep 0.05
  done
  if proc_alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  proc_alive "$pid" && die_log "$dir/redis.log" "Redis pid $pid (port ${port:-?}) did not exit within 10s"
  rm -f "$dir/redis.pid"
}

cmd_redis_start() { # DIR PORT
  local dir port
  dir=$(abs_dir "${1:-}"); port=${2:-}; check_port "$port"
  if pid_alive "$dir/redis.pid" && [[ $(cat "$dir/port" 2>/dev/null) == "$port" ]] && redis_ping "$port"; then
    return 0
  fi
  redis_kill "$dir"   # a half-dead or differently-ported leftover
  mkdir -p "$dir"
  redis_launch "$dir" "$port"
  redis_wait_ping "$dir" "$port"
}

cmd_redis_stop() { # DIR
  local dir
  dir=$(abs_dir "${1:-}")
  redis_kill "$dir"
}

# ---------------------------------------------------------------- Redis Cluster

cluster_ports() { # BASEPORT
  local b=$1 i
  for ((i = 0; i < 6; i++)); do echo $((b + i)); done
}

cluster_urls() { # BASEPORT
  local p out=""
  for p in $(cluster_ports "$1"); do out+="${out:+,}redis://127.0.0.1:$p"; done
  echo "$out"
}

# Why the cluster on BASEPORT is not (yet) fully ready; empty output when it is.
cluster_not_ready() { # BASEPORT
  local p info repl slaves=0
  for p in $(cluster_ports "$1"); do
    info=$(rcli "$p" cluster info | tr -d '\r') || { echo "$p: no answer"; return; }
    [[ $info == *cluster_state:ok* ]] || { echo "$p: cluster_state not ok"; return; }
    [[ $info == *cluster_known_nodes:6* ]] || { echo "$p: does not know all 6 nodes"; return; }
    repl=$(rcli "$p" info replication | tr -d '\r') || { echo "$p: no answer"; return; }
    if [[ $repl == *role:slave* ]]; then
      slaves=$((slaves + 1))
      [[ $repl == *master_link_status:up* ]] || { echo "$p: replica link to master not up"; return; }
    fi
  done
  (( slaves == 3 )) || echo "expected 3 replicas, found $slaves"
}

cluster_stop_nodes() { # DIR
  local dir=$1 n
  for n in "$dir"/n[0-9]*; do
    [[ -d $n ]] && redis_kill "$n"
  done
  return 0
}

# One cluster node with its files in N (DIR/nPORT). A node that finds its nodes.conf rejoins
# the cluster it describes. The node timeout is how long a master must be unreachable before
# its replica takes over: at 1.5 s a killed master's slots are served again about 3 s later
# (at 3 s, the earlier value, it took 5.5 s; loadgen --fault cluster-master measures it).
cluster_node_launch() { # N PORT
  local n=$1 port=$2
  redis_launch "$n" "$port" --cluster-enabled yes --cluster-config-file "$n/nodes.conf" \
    --cluster-node-timeout 1500 --repl-diskless-sync-delay 0
}

# The node folder of PORT in the cluster in DIR, after checking PORT is one of its six.
cluster_node_dir() { # DIR PORT
  local dir=$1 port=$2 base
  base=$(cat "$dir/baseport" 2>/dev/null) || die "no Redis Cluster in $dir (no $dir/baseport)"
  (( port >= base && port <= base + 5 )) || die "port $port is not a node of the cluster in $dir ($base..$((base + 5)))"
  [[ -d $dir/n$port ]] || die "no node folder $dir/n$port"
  echo "$dir/n$port"
}

cmd_cluster_node_kill() { # DIR PORT
  local dir port n pid i
  dir=$(abs_dir "${1:-}"); port=${2:-}; check_port "$port"
  n=$(cluster_node_dir "$dir" "$port")
  pid_alive "$n/redis.pid" || die "the node on port $port is not running (no live pid in $n/redis.pid)"
  pid=$(<"$n/redis.pid")
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do
    proc_alive "$pid" || break
    sleep 0.05
  done
  proc_alive "$pid" && die "node pid $pid (port $port) did not exit after SIGKILL"
  rm -f "$n/redis.pid"
}

cmd_cluster_node_start() { # DIR PORT
  local dir port n i
  dir=$(abs_dir "${1:-}"); port=${2:-}; check_port "$port"
  n=$(cluster_node_dir "$dir" "$port")
  [[ -f $n/nodes.conf ]] || die "$n has no nodes.conf to rejoin with (create the cluster with cluster-start)"
  if ! { pid_alive "$n/redis.pid" && redis_ping "$port"; }; then
    redis_kill "$n"   # a half-dead leftover
    cluster_node_launch "$n" "$port"
    redis_wait_ping "$n" "$port"
  fi
  for ((i = 0; i < WAIT_SECS * 10; i++)); do
    [[ $(rcli "$port" cluster info | tr -d '\r') == *cluster_state:ok* ]] && return 0
    sleep 0.1
  done
  die_log "$n/redis.log" "the node on port $port did not rejoin the cluster within ${WAIT_SECS}s"
}

cmd_cluster_start() { # DIR BASEPORT
  local dir base p n nodes=() why i
  dir=$(abs_dir "${1:-}"); base=${2:-}; check_port "$base"
  (( base + 5 + 10000 < 65536 )) || die "cluster base port $base too high (bus uses port+10000; keep < 55530)"
  if [[ $(cat "$dir/baseport" 2>/dev/null) == "$base" && -z $(cluster_not_ready "$base") ]]; then
    return 0
  fi
  cluster_stop_nodes "$dir"
  mkdir -p "$dir"
  rm -rf "$dir"/n[0-9]*
  echo "$base" >"$dir/baseport"
  for p in $(cluster_ports "$base"); do
    mkdir -p "$dir/n$p"
    cluster_node_launch "$dir/n$p" "$p"
    nodes+=("127.0.0.1:$p")
  done
  for p in $(cluster_ports "$base"); do redis_wait_ping "$dir/n$p" "$p"; done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
    >"$dir/create.log" 2>&1 || die_log "$dir/create.log" "redis-cli --cluster create failed"
  for ((i = 0; i < WAIT_SECS * 10; i++)); do
    why=$(cluster_not_ready "$base")
    [[ -z $why ]] && return 0
    sleep 0.1
  done
  p=${why%%:*}
  [[ -d $dir/n$p ]] || p=$base
  die_log "$dir/n$p/redis.log" "Redis Cluster on $base..$((base + 5)) not ready after ${WAIT_SECS}s: $why"
}

cmd_cluster_stop() { # DIR
  local dir
  dir=$(abs_dir "${1:-}")
  cluster_stop_nodes "$dir"
}

# ---------------------------------------------------------------- up / down / status

pg_url() { echo "postgres://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB"; }
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT"; }

# Serialises concurrent up/down. Daemons are started with fd 9 closed (9>&-): an inherited
# copy would keep the lock held for as long as the server runs.
lock_services_dir() {
  mkdir -p "$SERVICES_DIR"
  exec 9>"$SERVICES_DIR/.lock"
  flock -w 120 9 || die "another services.sh up/down holds $SERVICES_DIR/.lock"
}

cmd_up() {
  cmd_install
  lock_services_dir
  cmd_pg_start "$SERVICES_DIR/pg" "$PG_PORT"
  pg_ensure_db "$PG_PORT" "$PG_DB"
  cmd_redis_start "$SERVICES_DIR/redis" "$REDIS_PORT"
  cmd_cluster_start "$SERVICES_DIR/cluster" "$CLUSTER_BASE_PORT"
  printf '%-14s %s\n' postgres "$(pg_url)" redis "$(redis_url)" redis-cluster "$(cluster_urls "$CLUSTER_BASE_PORT")"
}

cmd_down() {
  [[ -d $SERVICES_DIR ]] || return 0
  lock_services_dir
  cmd_cluster_stop "$SERVICES_DIR/cluster"
  cmd_redis_stop "$SERVICES_DIR/redis"
  if compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null; then
    cmd_pg_stop "$SERVICES_DIR/pg"
  fi
  # Only our own subfolders, in case SERVICES_DIR points somewhere precious.
  rm -rf "$SERVICES_DIR/pg" "$SERVICES_DIR/redis" "$SERVICES_DIR/cluster" "$SERVICES_DIR/.lock"
  rmdir "$SERVICES_DIR" 2>/dev/null || true
}

cmd_status() {
  local ok=0 s
  if compgen -G '/usr/lib/postgresql/*/bin/pg_isready' >/dev/null \
      && "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; then s=up; else s=down; ok=1; fi
  printf '%-14s %-5s %s\n' postgres "$s" "$(pg_url)"
  if command -v redis-cli >/dev/null && redis_ping "$REDIS_PORT"; then s=up; else s=down; ok=1; fi
  printf '%-14s %-5s %s\n' redis "$s" "$(redis_url)"
  if command -v redis-cli >/dev/null && [[ -z $(cluster_not_ready "$CLUSTER_BASE_PORT") ]]; then s=up; else s=down; ok=1; fi
  printf '%-14s %-5s %s\n' redis-cluster "$s" "$(cluster_urls "$CLUSTER_BASE_PORT")"
  return "$ok"
}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2; }

main() {
  local cmd=${1:-}
  (( $# > 0 )) && shift
  case $cmd in
    install)       (( $# == 0 )) || usage; cmd_install ;;
    up)            (( $# == 0 )) || usage; cmd_up ;;
    down)          (( $# == 0 )) || usage; cmd_down ;;
    status)        (( $# == 0 )) || usage; cmd_status ;;
    pg-start)      (( $# == 2 )) || usage; cmd_pg_start "$@" ;;
    pg-stop)       (( $# == 1 )) || usage; cmd_pg_stop "$@" ;;
    redis-start)   (( $# == 2 )) || usage; cmd_redis_start "$@" ;;
    redis-stop)    (( $# == 1 )) || usage; cmd_redis_stop "$@" ;;
    cluster-start) (( $# == 2 )) || usage; cmd_cluster_start "$@" ;;
    cluster-stop)  (( $# == 1 )) || usage; cmd_cluster_stop "$@" ;;
    cluster-node-kill)  (( $# == 2 )) || usage; cmd_cluster_node_kill "$@" ;;
    cluster-node-start) (( $# == 2 )) || usage; cmd_cluster_node_start "$@" ;;
    -h|--help|help) usage ;;
    *)             usage ;;
  esac
}

main "$@"
