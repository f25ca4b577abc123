#!/usr/bin/env bash
# hack/kind-ctl.sh — the e2e config's commands for a kind cluster (see hack/kind-up.sh);
# the same verbs as hack/local-ctl.sh, done the Kubernetes way.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KUBECONFIG="$ROOT/.local/kind/admin.kubeconfig"
CLUSTER=kcr
die() { echo "kind-ctl: $*" >&2; exit 1; }
bool() { case "$1" in true|false) echo "$1" ;; *) die "want true or false, got '$1'" ;; esac; }

cmd="${1:-}"; shift || true
case "$cmd" in
  pod-create)
    spec="$(cat)"
    manifest="$(python3 - "$spec" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
running = (s.get("phase") or "Running") == "Running"
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": s["name"], "namespace": s.get("namespace") or "default",
                    "annotations": s.get("annotations") or {}},
       "spec": {"containers": [{"name": c, "image": "docker.io/library/busybox:1.36",
                                "command": ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 1; done"]}
                               for c in s["containers"]]}}
if not running:  # never schedulable: stays Pending
    pod["spec"]["nodeSelector"] = {"kcr.dev/no-such-node": "true"}
print(json.dumps(pod))
PY
)"
    kubectl apply -f - <<<"$manifest" >/dev/null
    ns="$(jq -r .metadata.namespace <<<"$manifest")"; name="$(jq -r .metadata.name <<<"$manifest")"
    if [ "$(jq -r '.spec.nodeSelector // empty' <<<"$manifest")" = "" ]; then
      kubectl -n "$ns" wait --for=condition=Ready "pod/$name" --timeout=180s >/dev/null
    fi
    ;;
  pod-delete) kubectl -n "$1" delete pod "$2" --ignore-not-found --wait=false >/dev/null ;;
  running)
    state="$(kubectl -n "$1" get pod "$2" -o jsonpath="{.status.containerStatuses[?(@.name==\"$3\")].state.running.startedAt}")"
    [ -n "$state" ]
    ;;
  extension-gate)
    gate="$(bool "$1")"
    kubectl -n kcr-system get deploy checkpoint-apiserver -o json \
      | jq --arg g "--feature-gates=ContainerCheckpointAPI=$gate" \
          '.spec.template.spec.containers[0].args |= map(if startswith("--feature-gates=") then $g else . end)' \
      | kubectl apply -f - >/dev/null
    kubectl -n kcr-system rollout status deploy/checkpoint-apiserver --timeout=180s >/dev/null
    ;;
  node-gate)
    gate="$(bool "$1")"
    for node in $(kind get nodes --name "$CLUSTER"); do
      docker exec "$node" sh -c "
        grep -q '^featureGates:' /var/lib/kubelet/config.yaml || printf 'featureGates:\n' >>/var/lib/kubelet/config.yaml
        sed -i '/^  ContainerCheckpoint:/d' /var/lib/kubelet/config.yaml
        sed -i 's/^featureGates:.*/featureGates:\n  ContainerCheckpoint: $gate/' /var/lib/kubelet/config.yaml
        systemctl restart kubelet"
    done
    kubectl wait --for=condition=Ready nodes --all --timeout=120s >/dev/null
    ;;
  remove-extension) kubectl delete apiservice v1alpha1.subresources.checkpoint.kcr.dev >/dev/null ;;
  restore-extension)
    kubectl apply -k "$ROOT/test/kind/overlay" >/dev/null
    kubectl wait --for=condition=Available apiservice/v1alpha1.subresources.checkpoint.kcr.dev --timeout=120s >/dev/null
    ;;
  agent-restart)
    # kind's kubelets serve /checkpoint themselves: no node agent (deploy/shim) runs there.
    die "agent-restart: this kind cluster runs no checkpoint-shim node agent (deploy/shim) to restart on node '${1:-}'" ;;
  *) die "unknown command '$cmd' (pod-create, pod-delete, running, extension-gate, node-gate, remove-extension, restore-extension, agent-restart)" ;;
esac
