#!/usr/bin/env bash
# hack/e2e-local.sh — the e2e suite on the local stack: up, scenarios, down.
# The stack is torn down even on failure (trap); a failed run keeps its logs
# in $KCR_LOCAL_DIR/logs and prints their tails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KCR_LOCAL_DIR="${KCR_LOCAL_DIR:-$ROOT/.local/e2e}"
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"

status=1
finish() {
  if [ "$status" != 0 ]; then
    for f in "$LOCAL"/logs/*.log; do
      [ -e "$f" ] || continue
      echo "===== tail of $f" >&2
      tail -n 40 "$f" >&2
    done
    echo "[e2e] FAILED; logs kept in $LOCAL/logs" >&2
  fi
  "$ROOT/hack/local-down.sh" || true
}
trap finish EXIT

if proc_running standin; then "$ROOT/hack/local-down.sh"; fi
rm -rf "$LOCAL"
"$ROOT/hack/local-up.sh"

cat >"$LOCAL/e2e.yaml" <<YAML
# Written by hack/e2e-local.sh for the local stack.
kubeconfig: $LOCAL/alice.kubeconfig
viewerKubeconfig: $LOCAL/viewer.kubeconfig
namespace: default
pluginDir: $BIN
nodeCheckpointsDir: $LOCAL/kubelet/checkpoints
slowPod: {namespace: default, name: slow, container: app}
commands:
  createPod: [$ROOT/hack/local-ctl.sh, pod-create]
  deletePod: [$ROOT/hack/local-ctl.sh, pod-delete]
  containerRunning: [$ROOT/hack/local-ctl.sh, running]
  extensionGate: [$ROOT/hack/local-ctl.sh, extension-gate]
  nodeGate: [$ROOT/hack/local-ctl.sh, node-gate]
  removeExtension: [$ROOT/hack/local-ctl.sh, remove-extension]
  restoreExtension: [$ROOT/hack/local-ctl.sh, restore-extension]
YAML

KCR_E2E_CONFIG="$LOCAL/e2e.yaml" cargo test -p e2e --test scenarios -- --test-threads=1
status=0
