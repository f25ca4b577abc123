# hack/lib/env.sh — shared settings and steps of the local stack scripts.
# shellcheck shell=bash
# shellcheck disable=SC2034
: "${ROOT:?}"
LOCAL="${KCR_LOCAL_DIR:-$ROOT/.local}"
# KCR_PROFILE=release runs the stack from release binaries (hack/bench.sh).
KCR_PROFILE="${KCR_PROFILE:-debug}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$KCR_PROFILE"

# Ports: set in the environment > recorded by the stack running in $LOCAL
# (local-up.sh writes $LOCAL/stack.env, local-down.sh removes it, so
# local-ctl.sh, local-down.sh and demo.sh need only KCR_LOCAL_DIR) > the
# defaults of the demo stack. hack/e2e-local.sh and hack/bench.sh set their own.
STACK_PORT_VARS=(KCR_APISERVER_PORT KCR_EXTENSION_PORT KCR_SHIM_PORT KCR_SLOW_SHIM_PORT)
if [ -f "$LOCAL/stack.env" ]; then
  while IFS='=' read -r key value; do
    case "$key" in
      KCR_APISERVER_PORT | KCR_EXTENSION_PORT | KCR_SHIM_PORT | KCR_SLOW_SHIM_PORT)
        [ -n "${!key:-}" ] || printf -v "$key" '%s' "$value" ;;
    esac
  done <"$LOCAL/stack.env"
fi
KCR_APISERVER_PORT="${KCR_APISERVER_PORT:-16443}"
KCR_EXTENSION_PORT="${KCR_EXTENSION_PORT:-18443}"
KCR_SHIM_PORT="${KCR_SHIM_PORT:-10350}"
KCR_SLOW_SHIM_PORT="${KCR_SLOW_SHIM_PORT:-10351}"

CONTAINERD_SOCK="$LOCAL/containerd/containerd.sock"
FAKE_CRI_SOCK="$LOCAL/fake-cri.sock"
ADMIN_KUBECONFIG="$LOCAL/admin.kubeconfig"
# The users, as README.md tells an admin to create them: alice is bound to
# checkpoint-creator and nothing else, viewer to the built-in `view` role
# (reads, no checkpoint), nobody to nothing at all (render_users_policy).
ALICE_KUBECONFIG="$LOCAL/alice.kubeconfig"
VIEWER_KUBECONFIG="$LOCAL/viewer.kubeconfig"
NOBODY_KUBECONFIG="$LOCAL/nobody.kubeconfig"
APISERVICE_NAME=v1alpha1.subresources.checkpoint.kcr.dev
export PATH="/usr/local/sbin:$BIN:$PATH"
# shellcheck source=hack/lib/procs.sh
source "$ROOT/hack/lib/procs.sh"

admin_kubectl() { kubectl --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# ------------------------------------------------------------------ ports
# port_in_use PORT: something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stack_ports_free: none of the stack's four ports is in use.
stack_ports_free() {
  local var
  for var in "${STACK_PORT_VARS[@]}"; do
    if port_in_use "${!var}"; then return 1; fi
  done
}

# relocate_stack_ports: keep the four ports when they are free; else move all
# of them by the same offset (+10, +20, ... +500) to the first set that is,
# and say so. For stacks whose clients learn the ports from us (the e2e
# suite's config), never for one a user types commands against.
relocate_stack_ports() {
  local offset var
  for offset in $(seq 0 10 500); do
    local -A moved=()
    for var in "${STACK_PORT_VARS[@]}"; do moved[$var]=$((${!var} + offset)); done
    local busy=0
    for var in "${STACK_PORT_VARS[@]}"; do
      if port_in_use "${moved[$var]}"; then busy=1; break; fi
    done
    if [ "$busy" = 0 ]; then
      if [ "$offset" != 0 ]; then
        log "ports ${KCR_APISERVER_PORT} ${KCR_EXTENSION_PORT} ${KCR_SHIM_PORT} ${KCR_SLOW_SHIM_PORT} are in use (another stack?); using ${moved[KCR_APISERVER_PORT]} ${moved[KCR_EXTENSION_PORT]} ${moved[KCR_SHIM_PORT]} ${moved[KCR_SLOW_SHIM_PORT]}"
      fi
      for var in "${STACK_PORT_VARS[@]}"; do printf -v "$var" '%s' "${moved[$var]}"; done
      export "${STACK_PORT_VARS[@]}"
      return 0
    fi
  done
  die "no free set of ports near ${KCR_APISERVER_PORT} ${KCR_EXTENSION_PORT} ${KCR_SHIM_PORT} ${KCR_SLOW_SHIM_PORT}"
}

# record_stack_ports: write $LOCAL/stack.env for the scripts that drive this stack.
record_stack_ports() {
  local var
  for var in "${STACK_PORT_VARS[@]}"; do printf '%s=%s\n' "$var" "${!var}"; done >"$LOCAL/stack.env"
}

# stop_stale_stack SCRIPT: a stack still running in $LOCAL, the state dir of
# SCRIPT alone, was left by an earlier run of SCRIPT: stop it, saying so.
# Stacks in other state dirs (the demo's .local) are never touched.
stop_stale_stack() {
  if proc_running standin || proc_running containerd || proc_running extension; then
    log "stopping the stack an earlier $1 left running in $LOCAL (stacks in other directories are not touched)"
    KCR_LOCAL_DIR="$LOCAL" "$ROOT/hack/local-down.sh"
  fi
}

# ------------------------------------------------------- teardown on exit
# stack_teardown_on_exit TAG [CMD...]: when the calling script exits, stop
# the stack in $LOCAL (hack/local-down.sh: the processes recorded there, and
# nothing else) and then run CMD; when it exits non-zero, first print the
# tail of every log of the stack and where the logs are kept.
stack_teardown_on_exit() {
  TEARDOWN_TAG="$1"
  shift
  TEARDOWN_CMD=("$@")
  trap 'stack_teardown $?' EXIT
}

stack_teardown() {
  local rc="$1" f
  trap - EXIT
  if [ "$rc" != 0 ]; then
    for f in "$LOCAL"/logs/*.log; do
      [ -e "$f" ] || continue
      echo "===== tail of $f" >&2
      tail -n 40 "$f" >&2
    done
    printf '[%s] FAILED (exit %s); logs kept in %s\n' "$TEARDOWN_TAG" "$rc" "$LOCAL/logs" >&2
  fi
  KCR_LOCAL_DIR="$LOCAL" "$ROOT/hack/local-down.sh" || true
  if [ "${#TEARDOWN_CMD[@]}" != 0 ]; then "${TEARDOWN_CMD[@]}" || true; fi
  exit "$rc"
}

# ------------------------------------------------------------ what the stand-in serves
# The users' bindings, made by the commands a cluster admin types (run
# client-side): README.md's for alice, the e2e user, bound to
# checkpoint-creator and nothing else; the built-in read-only `view` for
# viewer (e2e scenario 4); nothing for nobody. Every authenticated user also
# has what a fresh cluster gives everyone (discovery, self reviews: the
# stand-in's bootstrap policy).
README_ALICE_BINDING=(kubectl create clusterrolebinding alice-checkpoint --clusterrole=checkpoint-creator --user=alice)
render_users_policy() {
  KUBECONFIG=/dev/null "${README_ALICE_BINDING[@]}" --dry-run=client -o yaml
  echo "---"
  KUBECONFIG=/dev/null kubectl create clusterrolebinding viewer-view --clusterrole=view --user=viewer --dry-run=client -o yaml
}

# The policy the stand-in decides by: the project's own RBAC (deploy/,
# deploy/crd's PodCheckpoint roles and deploy/shim, rendered by the real
# kubectl) plus the users'. The stand-in skips kinds that are not RBAC.
render_policy() {
  kubectl kustomize "$ROOT/deploy"
  echo "---"
  kubectl kustomize "$ROOT/deploy/crd"
  echo "---"
  kubectl kustomize "$ROOT/deploy/shim"
  echo "---"
  render_users_policy
}

# The PodCheckpoint CustomResourceDefinition as deploy/crd ships it (its
# ClusterRoles are in render_policy): the stand-in registers
# podcheckpoints.checkpoint.kcr.dev in discovery at start, as kube-apiserver
# does once `kubectl apply -k deploy/crd` has run.
render_crds() {
  kubectl kustomize "$ROOT/deploy/crd" \
    | KUBECONFIG=/dev/null kubectl patch --local -f - --type=merge -p '{}' -o json \
    | jq -c 'if .kind == "List" then .items[] else . end | select(.kind == "CustomResourceDefinition")' \
    | sed '1!s/^/---\n/'
}

# The namespaces (kcr-system from deploy/namespace) and the two nodes
# (kubelet port = the shims' ports).
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
YAML
  kubectl kustomize "$ROOT/deploy/namespace"
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

# render_apiservice CA_FILE: deploy/'s APIService exactly as `kubectl
# kustomize deploy` renders it (JSON), with the one change a cluster admin
# makes to verify the server: caBundle = CA_FILE instead of
# insecureSkipTLSVerify. Its service (kcr-system/checkpoint-apiserver:443)
# stays; the stand-in's --service-address says where that is on loopback.
render_apiservice() {
  local ca
  ca="$(base64 -w0 <"$1")"
  kubectl kustomize "$ROOT/deploy" \
    | KUBECONFIG=/dev/null kubectl patch --local -f - --type=merge -p '{}' -o json \
    | jq -s --arg name "$APISERVICE_NAME" --arg ca "$ca" '
        [.[] | select(.kind == "APIService" and .metadata.name == $name)]
        | if length == 1 then .[0] else error("deploy/ renders \(length) APIService \($name)") end
        | del(.spec.insecureSkipTLSVerify) | .spec.caBundle = $ca'
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

register_extension() {
  local json
  json="$(render_apiservice "$LOCAL/pki/extension-ca.crt")" || die "cannot render the APIService from deploy/"
  admin_kubectl apply -f - >/dev/null <<<"$json"
}
unregister_extension() { admin_kubectl delete apiservice "$APISERVICE_NAME" >/dev/null; }
