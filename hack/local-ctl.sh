#!/usr/bin/env bash
# hack/local-ctl.sh — drive the local stack (what the e2e config's commands call).
#
#   pod-create                 JSON on stdin: {"namespace","name","containers":[..],
#                              "annotations":{..},"phase":"Running","node":"node-local"};
#                              creates the Pod in the stand-in and, when Running, its
#                              sandbox + containers through CRI (what the kubelet would do)
#   pod-delete NS NAME
#   running NS POD CONTAINER   exit 0 when the container runs (asked through CRI)
#   extension-gate true|false  restart checkpoint-apiserver with ContainerCheckpointAPI=...
#   node-gate true|false       restart checkpoint-shim (node-local) with ContainerCheckpoint=...
#   remove-extension           delete the APIService
#   restore-extension          register it again and wait for discovery
#   agent-restart NODE [FLAG...]
#                              SIGKILL the node agent (checkpoint-shim) of NODE, as a
#                              crash would, and start it again with local-up.sh's flags
#                              plus FLAGs (e.g. --max-archives-per-container=2); FLAGs
#                              last only until the next agent-restart (none: restored)
#   agent-stop NODE            SIGKILL NODE's agent and leave it down (agent-restart
#                              NODE starts it again)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"
proc_running standin || die "the local stack in $LOCAL is not up (hack/local-up.sh; KCR_LOCAL_DIR names another stack)"

socket_of_node() {
  case "$1" in
    node-slow) echo "$FAKE_CRI_SOCK" ;;
    *) echo "$CONTAINERD_SOCK" ;;
  esac
}

# SIGKILL an agent's process group, as a crash would; nothing if it is down.
kill_agent() {
  local agent="$1" pid
  [ -f "$LOCAL/pids/$agent" ] || return 0
  pid="$(cat "$LOCAL/pids/$agent")"
  kill -KILL -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$LOCAL/pids/$agent"
}

# The local stack's process name of NODE's agent, and its port.
agent_of_node() {
  case "$1" in
    node-local) echo "shim $KCR_SHIM_PORT" ;;
    node-slow) echo "shim-slow $KCR_SLOW_SHIM_PORT" ;;
    *) die "no node agent for node '$1' (node-local, node-slow)" ;;
  esac
}

bool() { case "$1" in true|false) echo "$1" ;; *) die "want true or false, got '$1'" ;; esac; }

cmd="${1:-}"; shift || true
case "$cmd" in
  pod-create)
    spec="$(cat)"
    manifest="$(python3 - "$spec" <<'PY'
import json, sys, datetime
s = json.loads(sys.argv[1])
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
phase = s.get("phase") or "Running"
running = phase == "Running"
node = s.get("node") or "node-local"
pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": s["name"], "namespace": s.get("namespace") or "default",
                 "labels": {"app": s["name"]}, "annotations": s.get("annotations") or {}},
    "spec": {"nodeName": node, "containers": [
        {"name": c, "image": "localhost/kcr-test/app:v1"} for c in s["containers"]]},
    "status": {"phase": phase, "hostIP": "127.0.0.1",
               "conditions": [{"type": "Ready", "status": "True" if running else "False"}],
               "containerStatuses": [
                   {"name": c, "image": "localhost/kcr-test/app:v1", "ready": running,
                    "restartCount": 0, "started": running,
                    "state": {"running": {"startedAt": now}} if running
                             else {"waiting": {"reason": "ContainerCreating"}}}
                   for c in s["containers"]]},
}
if running:
    pod["status"]["startTime"] = now
print(json.dumps(pod))
PY
)"
    ns="$(jq -r '.metadata.namespace' <<<"$manifest")"
    name="$(jq -r '.metadata.name' <<<"$manifest")"
    node="$(jq -r '.spec.nodeName' <<<"$manifest")"
    admin_kubectl create -f - <<<"$manifest" >/dev/null
    uid="$(admin_kubectl get pod -n "$ns" "$name" -o jsonpath='{.metadata.uid}')"
    if [ "$(jq -r '.status.phase' <<<"$manifest")" = Running ]; then
      args=()
      for c in $(jq -r '.spec.containers[].name' <<<"$manifest"); do args+=(--container "$c"); done
      "$BIN/cri-pod" run --socket "$(socket_of_node "$node")" --namespace "$ns" --name "$name" --uid "$uid" "${args[@]}" >/dev/null
    fi
    echo "pod/$name created on $node"
    ;;
  pod-delete)
    ns="$1" name="$2"
    node="$(admin_kubectl get pod -n "$ns" "$name" -o jsonpath='{.spec.nodeName}' 2>/dev/null || true)"
    "$BIN/cri-pod" rm --socket "$(socket_of_node "$node")" --namespace "$ns" --name "$name" >/dev/null || true
    admin_kubectl delete pod -n "$ns" "$name" --ignore-not-found >/dev/null
    ;;
  running)
    ns="$1" pod="$2" ctr="$3"
    node="$(admin_kubectl get pod -n "$ns" "$pod" -o jsonpath='{.spec.nodeName}')"
    "$BIN/cri-pod" ls --socket "$(socket_of_node "$node")" --namespace "$ns" --name "$pod" \
      | jq -e --arg c "$ctr" 'any(.[]; .name == $c and .state == "CONTAINER_RUNNING")' >/dev/null
    ;;
  extension-gate)
    gate="$(bool "$1")"
    proc_stop extension
    start_extension "$gate"
    # the aggregator sees the new discovery at once (no caching in the stand-in)
    ;;
  node-gate)
    gate="$(bool "$1")"
    mapfile -t args <"$LOCAL/cmd/shim"
    for i in "${!args[@]}"; do
      case "${args[$i]}" in ContainerCheckpoint=*) args[$i]="ContainerCheckpoint=$gate" ;; esac
    done
    proc_stop shim
    proc_start shim "${args[@]}"
    wait_until 30 "checkpoint-shim" curl -sfk "https://127.0.0.1:$KCR_SHIM_PORT/healthz"
    ;;
  agent-stop)
    read -r agent _ <<<"$(agent_of_node "${1:-}")"
    kill_agent "$agent"
    ;;
  agent-restart)
    read -r agent port <<<"$(agent_of_node "${1:-}")"
    kill_agent "$agent"
    # local-up.sh's command line, kept apart from this restart's extra flags
    [ -f "$LOCAL/cmd/$agent.base" ] || cp "$LOCAL/cmd/$agent" "$LOCAL/cmd/$agent.base"
    mapfile -t args <"$LOCAL/cmd/$agent.base"
    shift
    args+=("$@")
    proc_start "$agent" "${args[@]}"
    wait_until 30 "$agent" curl -sfk "https://127.0.0.1:$port/healthz"
    ;;
  remove-extension)
    unregister_extension
    ;;
  restore-extension)
    register_extension
    wait_until 30 "discovery of subresources.checkpoint.kcr.dev/v1alpha1" admin_kubectl get --raw /apis/subresources.checkpoint.kcr.dev/v1alpha1
    ;;
  *)
    sed -n '2,21p' "$0" >&2
    exit 2
    ;;
esac
