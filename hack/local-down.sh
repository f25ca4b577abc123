#!/usr/bin/env bash
# hack/local-down.sh — stop what hack/local-up.sh started in $KCR_LOCAL_DIR
# (default .local/), by the PIDs recorded there and nothing else; logs stay in
# $KCR_LOCAL_DIR/logs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"
[ -d "$LOCAL/pids" ] || exit 0
# front to back: clients of a component stop before it
for name in extension shim shim-slow standin fake-cri containerd; do
  if [ -f "$LOCAL/pids/$name" ]; then
    proc_stop "$name"
    log "stopped $name"
  fi
done
for f in "$LOCAL"/pids/*; do
  [ -e "$f" ] || continue
  proc_stop "$(basename "$f")"
done
rm -f "$LOCAL/stack.env"
