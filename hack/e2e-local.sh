#!/usr/bin/env bash
# hack/e2e-local.sh — the e2e suite on a local stack of its own: up,
# scenarios, down.
#
# Its own state dir ($KCR_LOCAL_DIR, default .local/e2e) and its own ports
# (17443 stand-in, 19443 extension, 11350/11351 shims; KCR_E2E_*_PORT), moved
# together to the next free set when any is taken, so it runs while the
# demo's stack (`make demo`: .local, 16443 ...) or another e2e stack is up and
# never touches them. The suite learns the ports from the config written
# here. The stack is torn down even on failure (trap); a failed run keeps its
# logs in $KCR_LOCAL_DIR/logs and prints their tails.
#
# Arguments go to the test harness: `hack/e2e-local.sh s12` runs the
# scenarios whose names contain s12. The stand-in cuts requests after 5 s
# (KCR_REQUEST_TIMEOUT) and node-slow's runtime takes 8 s (KCR_SLOW_SECONDS):
# a checkpoint longer than a request may last (scenarios 10 and 12).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KCR_LOCAL_DIR="${KCR_LOCAL_DIR:-$ROOT/.local/e2e}"
export KCR_APISERVER_PORT="${KCR_E2E_APISERVER_PORT:-17443}"
export KCR_EXTENSION_PORT="${KCR_E2E_EXTENSION_PORT:-19443}"
export KCR_SHIM_PORT="${KCR_E2E_SHIM_PORT:-11350}"
export KCR_SLOW_SHIM_PORT="${KCR_E2E_SLOW_SHIM_PORT:-11351}"
export KCR_REQUEST_TIMEOUT="${KCR_REQUEST_TIMEOUT:-5s}"
export KCR_SLOW_SECONDS="${KCR_SLOW_SECONDS:-8}"
# node-local names archives as the kubelet does (scenarios 9 and 12).
export KCR_KUBELET_ARCHIVE_NAMES=true
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"
# shellcheck source=hack/lib/e2e-config.sh
source "$ROOT/hack/lib/e2e-config.sh"

stop_stale_stack hack/e2e-local.sh
relocate_stack_ports
rm -rf "$LOCAL"
stack_teardown_on_exit e2e
"$ROOT/hack/local-up.sh"

# The driver gets the state dir explicitly, so the config also works from a
# shell that does not have this script's environment.
SLOW_NODE_CHECKPOINTS_DIR="$LOCAL/kubelet-slow/checkpoints" write_e2e_config "$LOCAL/e2e.yaml" "$LOCAL" default "$BIN" "$LOCAL/kubelet/checkpoints" default/slow/app \
  -- env "KCR_LOCAL_DIR=$LOCAL" "$ROOT/hack/local-ctl.sh"

# --workspace: the feature set `make unit` and local-up.sh built with, so
# only the scenarios' own test binary is compiled here.
KCR_E2E_CONFIG="$LOCAL/e2e.yaml" cargo test --workspace --test scenarios -- --test-threads=1 "$@"
