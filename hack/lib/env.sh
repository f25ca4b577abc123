# hack/lib/env.sh — shared settings and steps of the local stack scripts.
# shellcheck disable=SC2034
: "${ROOT:?}"
LOCAL="${KCR_LOCAL_DIR:-$ROOT/.local}"
# KCR_PROFILE=release runs the stack from release binaries (hack/bench.sh).
KCR_PROFILE="${KCR_PROFILE:-debug}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$KCR_PROFILE"
KCR_APISERVER_PORT="${KCR_APISERVER_PORT:-16443}"
KCR_EXTENSION_PORT="${KCR_EXTENSION_PORT:-18443}"
KCR_SHIM_PORT="${KCR_SHIM_PORT:-10350}"
KCR_SLOW_SHIM_PORT="${KCR_SLOW_SHIM_PORT:-10351}"
CONTAINERD_SOCK="$LOCAL/containerd/containerd.sock"
FAKE_CRI_SOCK="$LOCAL/fake-cri.sock"
ADMIN_KUBECONFIG="$LOCAL/admin.kubeconfig"
VIEWER_KUBECONFIG="$LOCAL/viewer.kubeconfig"
export PATH="/usr/local/sbin:$BIN:$PATH"
# shellcheck source=hack/lib/procs.sh
source "$ROOT/hack/lib/procs.sh"

admin_kubectl() { kubectl --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# The policy the stand-in decides by: the project's own RBAC (deploy/ and
# deploy/shim rendered by the real kubectl) plus the local users.
render_policy() {
  kubectl kustomize "$ROOT/deploy"
  echo "---"
  kubectl kustomize "$ROOT/deploy/shim"
  echo "---"
  cat "$ROOT/hack/local/policy.yaml"
}

# Namespaces, the two nodes (kubelet port = the shims' ports) and the
# Service the APIService points at.
render_objects() {
  cat <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: kcr-system}
YAML
  local node port
  for node in node-local:"$KCR_SHIM_PORT" node-slow:"$KCR_SLOW_SHIM_PORT"; do
    port="${node#*:}"; node="${node%%:*}"
    cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {kubernetes.io/hostname: $node, kubernetes.io/os: linux}
status:
  addresses:
    - {type: InternalIP, address: 127.0.0.1}
    - {type: Hostname, address: $node}
  daemonEndpoints:
    kubeletEndpoint: {Port: $port}
  conditions:
    - {type: Ready, status: "True"}
YAML
  done
}

# start_extension GATE: checkpoint-apiserver with ContainerCheckpointAPI=GATE.
start_extension() {
  local pki="$LOCAL/pki"
  proc_start extension "$BIN/checkpoint-apiserver" \
    --bind-address 127.0.0.1 --secure-port "$KCR_EXTENSION_PORT" \
    --tls-cert-file "$pki/extension.crt" --tls-private-key-file "$pki/extension.key" \
    --kubeconfig "$LOCAL/extension.kubeconfig" \
    --feature-gates "ContainerCheckpointAPI=$1" \
    --kubelet-certificate-authority "$pki/kubelet-ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key"
  wait_until 30 "checkpoint-apiserver (log: $LOCAL/logs/extension.log)" \
    curl -sf --cacert "$pki/extension-ca.crt" "https://127.0.0.1:$KCR_EXTENSION_PORT/readyz"
  proc_alive_or_die extension
}

# The APIService, as deploy/ has it but with the local extension CA as caBundle.
apiservice_yaml() {
  local ca
  ca="$(base64 -w0 <"$LOCAL/pki/extension-ca.crt")"
  cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: checkpoint-apiserver, namespace: kcr-system}
spec:
  ports: [{name: https, port: 443, targetPort: $KCR_EXTENSION_PORT}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.subresources.checkpoint.kcr.dev}
spec:
  group: subresources.checkpoint.kcr.dev
  version: v1alpha1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: checkpoint-apiserver, namespace: kcr-system, port: 443}
  caBundle: $ca
YAML
}

register_extension() { apiservice_yaml | admin_kubectl apply -f - >/dev/null; }
unregister_extension() { admin_kubectl delete apiservice v1alpha1.subresources.checkpoint.kcr.dev >/dev/null; }
