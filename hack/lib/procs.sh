# hack/lib/procs.sh — background processes of the local stack, by PID.
# shellcheck shell=bash
# Sourced by local-up.sh, local-down.sh and local-ctl.sh. Expects LOCAL (state dir).
# Each process NAME has: $LOCAL/pids/NAME, $LOCAL/logs/NAME.log and
# $LOCAL/cmd/NAME (its command line, one word per line, so it can be restarted).

log() { printf '[local] %s\n' "$*" >&2; }
die() { printf '[local] ERROR: %s\n' "$*" >&2; exit 1; }

proc_running() {
  local pidfile="$LOCAL/pids/$1"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# proc_start NAME CMD [ARGS...]: start in the background, log to logs/NAME.log.
proc_start() {
  local name="$1"; shift
  mkdir -p "$LOCAL/pids" "$LOCAL/logs" "$LOCAL/cmd"
  proc_running "$name" && die "$name is already running (pid $(cat "$LOCAL/pids/$name"))"
  printf '%s\n' "$@" >"$LOCAL/cmd/$name"
  # setsid: its own process group, so stopping it stops its children too.
  setsid "$@" >>"$LOCAL/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$LOCAL/pids/$name"
  log "started $name (pid $!): $*"
}

# proc_restart NAME: start again with the command line saved in cmd/NAME.
proc_restart() {
  local name="$1" args=()
  mapfile -t args <"$LOCAL/cmd/$name"
  proc_stop "$name"
  proc_start "$name" "${args[@]}"
}

# proc_stop NAME: SIGTERM the process (it cleans up its children, as
# test-containerd does), SIGKILL its whole process group after 20 s.
proc_stop() {
  local name="$1" pidfile="$LOCAL/pids/$1" pid _
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop on SIGTERM within 20s; killing its process group"
    fi
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# wait_until SECONDS WHAT CMD...: retry CMD until it succeeds.
wait_until() {
  local secs="$1" what="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# proc_alive_or_die NAME: fail with the tail of its log when it died.
proc_alive_or_die() {
  proc_running "$1" || { tail -n 30 "$LOCAL/logs/$1.log" >&2 || true; die "$1 exited; log above ($LOCAL/logs/$1.log)"; }
}
