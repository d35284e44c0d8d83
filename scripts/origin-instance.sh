#!/usr/bin/env bash
# origin-instance.sh - start, stop or kill one origin instance: the one way instances are run,
# used by scripts/up.sh (every instance) and by loadgen's `--fault origin` (a crash and a
# restart under load).
#
# Usage: scripts/origin-instance.sh COMMAND N        (N = 1, 2, ...: the instance)
#
#   start N    start instance N of the release build in the background, in its own process
#              group (setsid), on ORIGIN_LISTEN's port + N - 1, named origin-N (INSTANCE_NAME).
#              Its environment is saved first (RUN_DIR/NAME.env, mode 600) and the instance is
#              started from that file, so `respawn` runs it again exactly the same way.
#              Does not wait: see `wait`.
#   wait N     wait until it answers GET /health (30 s); on failure print its log's tail
#   stop N     SIGTERM its process group and wait for it to exit (5 s); no error if not running
#   kill N     SIGKILL its process group at once, as a crash would
#   respawn N  start it again from its saved environment (unless it runs), then wait
#
# Files in RUN_DIR: NAME.pid (the process group), NAME.log, NAME.env, where NAME is `origin`
# for instance 1 (as with a single instance) and `origin-N` for the others.
#
# Environment (read by start; respawn uses what start saved):
#   RUN_DIR=/tmp/movierec-run  ORIGIN_LISTEN=127.0.0.1:8080 (instance 1's address)
#   ORIGIN_BIN=target/release/origin   and every setting of `origin serve` (.env.example)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUN_DIR=${RUN_DIR:-/tmp/movierec-run}

die() { echo "origin-instance.sh: $*" >&2; exit 1; }

name_of() { if [[ $1 == 1 ]]; then echo origin; else echo "origin-$1"; fi; }

# A process that has exited but not been reaped yet (zombie) counts as gone.
proc_alive() { # PID
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

# The live process named by the pid file, or nothing.
running_pid() { # PIDFILE
  local pid
  [[ -f $1 ]] || return 0
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 0
  echo "$pid"
}

# Like running_pid, but the process must lead its own process group, as setsid made the
# instance do: a group it does not lead is never signalled. (Only once it has started: for a
# moment after `start`, setsid has not run yet.)
group_leader() { # PIDFILE
  local pid
  pid=$(running_pid "$1")
  [[ -n $pid ]] || return 0
  [[ $(ps -o pgid= -p "$pid" | tr -d ' ') == "$pid" ]] \
    || die "pid $pid in $1 does not lead its own process group: not an instance started by this script"
  echo "$pid"
}

# The address the instance listens on, from its saved environment.
saved_listen() { # ENVFILE
  tr '\0' '\n' <"$1" | sed -n 's/^ORIGIN_LISTEN=//p' | tail -1
}

launch() { # N: start from the saved environment
  local n=$1 name envfile vars pid bin
  name=$(name_of "$n")
  envfile=$RUN_DIR/$name.env
  [[ -f $envfile ]] || die "no saved environment $envfile: start instance $n with '$0 start $n' (or scripts/up.sh)"
  pid=$(running_pid "$RUN_DIR/$name.pid")
  [[ -z $pid ]] || die "$name is already running (pid $pid)"
  mapfile -d '' -t vars <"$envfile"
  bin=$(tr '\0' '\n' <"$envfile" | sed -n 's/^ORIGIN_BIN=//p' | tail -1)
  [[ -x $bin ]] || die "$bin is not an executable (build it: cargo build --release -p origin)"
  env -i "${vars[@]}" setsid "$bin" serve >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

cmd_start() { # N
  local n=$1 host port name bin
  ORIGIN_LISTEN=${ORIGIN_LISTEN:-127.0.0.1:8080}
  host=${ORIGIN_LISTEN%:*}
  port=${ORIGIN_LISTEN##*:}
  [[ $port =~ ^[0-9]+$ ]] || die "ORIGIN_LISTEN must be HOST:PORT, not '$ORIGIN_LISTEN'"
  name=$(name_of "$n")
  bin=${ORIGIN_BIN:-target/release/origin}
  [[ $bin == /* ]] || bin=$PWD/$bin
  mkdir -p "$RUN_DIR"
  (
    umask 077
    ORIGIN_LISTEN="$host:$((port + n - 1))" INSTANCE_NAME="origin-$n" ORIGIN_BIN=$bin \
      env -0 >"$RUN_DIR/$name.env"
  )
  launch "$n"
}

cmd_wait() { # N
  local n=$1 name pidfile url
  name=$(name_of "$n")
  pidfile=$RUN_DIR/$name.pid
  [[ -f $RUN_DIR/$name.env ]] || die "no saved environment $RUN_DIR/$name.env"
  url="http://$(saved_listen "$RUN_DIR/$name.env")/health"
  for _ in $(seq 300); do
    curl -s -o /dev/null "$url" && return 0
    [[ -n $(running_pid "$pidfile") ]] || break
    sleep 0.1
  done
  tail -20 "$RUN_DIR/$name.log" >&2 || true
  die "$name failed to start (log: $RUN_DIR/$name.log)"
}

cmd_stop() { # N
  local name pidfile pid
  name=$(name_of "$1")
  pidfile=$RUN_DIR/$name.pid
  pid=$(group_leader "$pidfile")
  if [[ -n $pid ]]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

cmd_kill() { # N
  local name pidfile pid
  name=$(name_of "$1")
  pidfile=$RUN_DIR/$name.pid
  pid=$(group_leader "$pidfile")
  [[ -n $pid ]] || die "$name is not running (no live pid in $pidfile)"
  kill -KILL -- "-$pid"
  for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
  proc_alive "$pid" && die "$name (pid $pid) did not exit after SIGKILL"
  rm -f "$pidfile"
}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2; }

(( $# == 2 )) && [[ $2 =~ ^[1-9][0-9]*$ ]] || usage
case $1 in
  start)   cmd_start "$2" ;;
  wait)    cmd_wait "$2" ;;
  stop)    cmd_stop "$2" ;;
  kill)    cmd_kill "$2" ;;
  respawn)
    pid=$(running_pid "$RUN_DIR/$(name_of "$2").pid")
    [[ -n $pid ]] || launch "$2"
    cmd_wait "$2" ;;
  *)       usage ;;
esac
