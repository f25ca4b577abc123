#!/usr/bin/env bash
# hack/local-up.sh — start the local stack in the background (root; loopback only):
#
#   kube-apiserver-standin  127.0.0.1:$KCR_APISERVER_PORT  (plays kube-apiserver + aggregator)
#   checkpoint-apiserver    127.0.0.1:$KCR_EXTENSION_PORT  (registered by APIService v1alpha1.subresources.checkpoint.kcr.dev)
#   checkpoint-shim         127.0.0.1:$KCR_SHIM_PORT       node "node-local" → a private containerd 2.x + runc + CRIU
#                                                          (KCR_KUBELET_ARCHIVE_NAMES=true: archives named as the kubelet does)
#   checkpoint-shim         127.0.0.1:$KCR_SLOW_SHIM_PORT  node "node-slow"  → fake-cri in slow mode (e2e scenario 10)
#
# The stand-in serves deploy/crd's PodCheckpoint CRD (and its ClusterRoles)
# from the start, and each shim runs the PodCheckpoint controller for its own
# node, so `kubectl checkpoint` takes the declarative path by default
# (`--api=subresource` takes the synchronous one).
#
# Environment: KCR_REQUEST_TIMEOUT (the stand-in's --request-timeout, default
# 60s like kube-apiserver), KCR_SLOW_SECONDS (how long node-slow's runtime
# takes to checkpoint, default 60), KCR_PROFILE (debug|release).
#
# State, logs and PIDs live in $KCR_LOCAL_DIR (default .local/, git-ignored);
# the ports it runs on are recorded in $KCR_LOCAL_DIR/stack.env for
# local-ctl.sh, local-down.sh and demo.sh. Writes kubeconfigs: admin
# (system:masters) and the users README.md tells an admin to create: alice
# (checkpoint-creator and nothing else), viewer (the built-in `view` role:
# reads, no checkpoint), nobody (no rights at all). Creates the demo pod
# `counter`. hack/local-down.sh stops it all.
#
# Knobs (off by default; hack/bench.sh turns it on):
#   KCR_STANDIN_LOG_JSON=true      the stand-in logs JSON lines (one per request, with
#                                  its user: what kcr-bench counts)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"

[ "$(id -u)" = 0 ] || die "run as root: the node side runs containerd and writes root-only archives"
if proc_running standin || proc_running containerd; then
  die "the local stack is already up ($LOCAL); run hack/local-down.sh first"
fi
for var in "${STACK_PORT_VARS[@]}"; do
  if port_in_use "${!var}"; then
    die "port ${!var} on 127.0.0.1 is in use (another stack? hack/local-down.sh stops the one in .local; set $var to move this one)"
  fi
done

log "building the binaries"
case "$KCR_PROFILE" in
  debug) build_flags=(--tests) ;;
  release) build_flags=(--release) ;;
  *) die "KCR_PROFILE must be debug or release, got '$KCR_PROFILE'" ;;
esac
# debug: --tests, for the same feature set as `cargo test --workspace`
# (dev-dependencies unified), so after `make unit` this finds every binary
# fresh instead of rebuilding the workspace with other features (and
# `make demo` leaves a build that `make test` reuses). release (hack/bench.sh):
# the binaries alone.
( cd "$ROOT" && cargo build --quiet --workspace --bins "${build_flags[@]}" )

rm -rf "$LOCAL/pids" "$LOCAL/cmd" "$LOCAL/kubelet" "$LOCAL/kubelet-slow"
mkdir -p "$LOCAL"/{logs,pids,cmd,pki}
chmod 0700 "$LOCAL"
record_stack_ports

# --------------------------------------------------------------- node side
proc_start containerd "$BIN/test-containerd" --dir "$LOCAL/containerd"
wait_until 90 "containerd (log: $LOCAL/logs/containerd.log)" \
  "$BIN/cri-pod" ls --socket "$CONTAINERD_SOCK"
proc_alive_or_die containerd

printf 'slow:%s\n' "${KCR_SLOW_SECONDS:-60}" >"$LOCAL/fake-cri.mode"
proc_start fake-cri "$BIN/fake-cri" --socket "$FAKE_CRI_SOCK" --mode-file "$LOCAL/fake-cri.mode"
wait_until 20 "fake-cri" "$BIN/cri-pod" ls --socket "$FAKE_CRI_SOCK"

# ------------------------------------------------------------------- PKI
# kubelet-ca signs the node endpoints' serving certificates and the
# extension's client certificate for them (the kubelet's --client-ca-file).
PKI="$LOCAL/pki"
"$BIN/kcr-pki" ca --out "$PKI/kubelet-ca" --cn kcr-local-kubelet-ca
"$BIN/kcr-pki" issue --ca "$PKI/kubelet-ca" --out "$PKI/node" --cn node-local \
  --host 127.0.0.1 --host localhost --server
"$BIN/kcr-pki" issue --ca "$PKI/kubelet-ca" --out "$PKI/apiserver-kubelet-client" \
  --cn system:serviceaccount:kcr-system:checkpoint-apiserver \
  --group system:serviceaccounts --group system:serviceaccounts:kcr-system --client
# The extension's serving certificate, trusted by the APIService's caBundle.
"$BIN/kcr-pki" ca --out "$PKI/extension-ca" --cn kcr-local-extension-ca
"$BIN/kcr-pki" issue --ca "$PKI/extension-ca" --out "$PKI/extension" \
  --cn checkpoint-apiserver.kcr-system.svc \
  --host checkpoint-apiserver.kcr-system.svc --host 127.0.0.1 --host localhost --server

# ---------------------------------------------------------- control plane
render_policy >"$LOCAL/policy.yaml"
render_crds >"$LOCAL/crds.yaml"
render_objects >"$LOCAL/objects.yaml"
standin_extra=()
if [ "${KCR_STANDIN_LOG_JSON:-false}" = true ]; then
  standin_extra+=(--log-json)
fi
proc_start standin "$BIN/kube-apiserver-standin" serve \
  --cert-dir "$PKI/apiserver" --port "$KCR_APISERVER_PORT" \
  --request-timeout "${KCR_REQUEST_TIMEOUT:-60s}" \
  --policy "$LOCAL/policy.yaml" --objects "$LOCAL/crds.yaml" --objects "$LOCAL/objects.yaml" "${standin_extra[@]}" \
  --service-address "kcr-system/checkpoint-apiserver=127.0.0.1:$KCR_EXTENSION_PORT" \
  --write-kubeconfig "$ADMIN_KUBECONFIG"
wait_until 30 "kube-apiserver-standin (log: $LOCAL/logs/standin.log)" \
  kubectl --kubeconfig "$ADMIN_KUBECONFIG" get --raw /readyz
proc_alive_or_die standin

standin_kubeconfig() { "$BIN/kube-apiserver-standin" kubeconfig --cert-dir "$PKI/apiserver" "$@"; }
standin_kubeconfig --user alice --out "$ALICE_KUBECONFIG"
standin_kubeconfig --user viewer --out "$VIEWER_KUBECONFIG"
standin_kubeconfig --user nobody --out "$NOBODY_KUBECONFIG"
standin_kubeconfig --service-account kcr-system/checkpoint-apiserver --out "$LOCAL/extension.kubeconfig"
standin_kubeconfig --service-account kcr-system/checkpoint-shim --out "$LOCAL/shim.kubeconfig"

# ------------------------------------------------------------ node agents
start_shim() { # NAME NODE PORT CRI-SOCKET ROOT-DIR GATE [FLAG...]
  proc_start "$1" "$BIN/checkpoint-shim" \
    --container-runtime-endpoint "unix://$4" --root-dir "$5" \
    --address 127.0.0.1 --port "$3" --node-name "$2" \
    --kubeconfig "$LOCAL/shim.kubeconfig" \
    --tls-cert-file "$PKI/node.crt" --tls-private-key-file "$PKI/node.key" \
    --client-ca-file "$PKI/kubelet-ca.crt" \
    --podcheckpoint-controller=true \
    --feature-gates "ContainerCheckpoint=${6:-true}" "${@:7}"
}
# KCR_KUBELET_ARCHIVE_NAMES=true (hack/e2e-local.sh): node-local names archives
# as the kubelet does (to the second, overwritten), so the e2e suite proves the
# extension's one-at-a-time, 1-s-apart guarantee on a kubelet-like node.
node_local_flags=()
if [ "${KCR_KUBELET_ARCHIVE_NAMES:-false}" = true ]; then
  node_local_flags+=(--kubelet-archive-names-for-testing)
fi
start_shim shim node-local "$KCR_SHIM_PORT" "$CONTAINERD_SOCK" "$LOCAL/kubelet" true "${node_local_flags[@]}"
start_shim shim-slow node-slow "$KCR_SLOW_SHIM_PORT" "$FAKE_CRI_SOCK" "$LOCAL/kubelet-slow"
wait_until 30 "checkpoint-shim (log: $LOCAL/logs/shim.log)" curl -sfk "https://127.0.0.1:$KCR_SHIM_PORT/healthz"
wait_until 30 "checkpoint-shim node-slow" curl -sfk "https://127.0.0.1:$KCR_SLOW_SHIM_PORT/healthz"

# --------------------------------------------------------------- extension
start_extension true
register_extension
log "waiting for the aggregated API"
wait_until 60 "discovery of subresources.checkpoint.kcr.dev/v1alpha1 through the stand-in" \
  kubectl --kubeconfig "$ADMIN_KUBECONFIG" get --raw /apis/subresources.checkpoint.kcr.dev/v1alpha1

# ---------------------------------------------------------------- demo pod
echo '{"namespace":"default","name":"counter","containers":["app"]}' | "$ROOT/hack/local-ctl.sh" pod-create >/dev/null
echo '{"namespace":"default","name":"slow","containers":["app"],"node":"node-slow"}' | "$ROOT/hack/local-ctl.sh" pod-create >/dev/null

cat >&2 <<MSG
[local] the local stack is up ($LOCAL)
  export KUBECONFIG=$ALICE_KUBECONFIG   # checkpoint-creator (admin: $ADMIN_KUBECONFIG, read-only: $VIEWER_KUBECONFIG, no rights: $NOBODY_KUBECONFIG)
  export PATH=$BIN:\$PATH                      # kubectl finds the kubectl-checkpoint plugin
  kubectl checkpoint counter
  KCR_LOCAL_DIR=$LOCAL hack/local-down.sh   # stop it
MSG
