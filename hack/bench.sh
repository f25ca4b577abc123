#!/usr/bin/env bash
# hack/bench.sh — the performance measurements of issues 7, 14 and 15 (`make bench`).
#
# Builds release once, brings up its own local stack from the release binaries
# in $KCR_LOCAL_DIR (default .local/bench) on ports of its own (26443, 28443,
# 20350, 20351 — never those of a dev or CI stack — or the next free set),
# runs kcr-bench, and tears the stack down (trap). Each ratio is printed on its own line as
# `ratio NAME VALUE`, after the raw figures. Both sides of a ratio run
# interleaved (ABBA) in the same run; medians are reported.
#
#   1. control      kubectl checkpoint slow --api=subresource  vs  kubectl create --raw
#                   <its pods/checkpoint URL> -f <empty file> (ratio control_path_vs_raw)
#                   and vs kubectl get pod slow (ratio control_path)  (fake CRI, instant)
#                   + the plugin alone, kubectl's dispatch, each request, --version
#   2. object       kubectl checkpoint slow --api=object  vs  --api=subresource (fake CRI,
#                   instant; ratio object_vs_subresource) + requests and phases
#   3. real         kubectl checkpoint of a container holding 256 MiB  vs  CRI
#                   CheckpointContainer of the same container (cri-pod checkpoint)
#   4. object_real  the same through a PodCheckpoint, a container holding 1 GiB
#                   (ratio object_real_checkpoint)
#   5. load         bursts of 500 concurrent checkpoint requests across 50 pods straight
#                   to checkpoint-apiserver (HTTP/1.1, then HTTP/2); peak RSS (VmHWM)
#                   of checkpoint-apiserver and checkpoint-shim
#   6. pcload       200 PodCheckpoints at once across the 50 pods on node-slow (fake CRI,
#                   instant): all completed, time to the last, the agents' requests per
#                   object, the agent's peak RSS and CPU; then all deleted (≤ 10 s)
#   7. download     (issue 14; runs after 4, before 5, so the final rss line still holds
#                   load's peaks) `kubectl checkpoint download NAME -c app -f FILE` of the
#                   real archive of a PodCheckpoint of a container holding 256 MiB, then
#                   2 GiB, vs `cp` of the node's file (and cp + fsync); both read the file
#                   warm (page cache); sha256 of every download checked; peak RSS of
#                   checkpoint-apiserver and node-local's agent during each download
#                   (ratio download_vs_cp for the largest size, target ≥ 0.8;
#                   ratio download_rss_flat_extension / _agent: largest / smallest)
#
# The stack serves the PodCheckpoint CRD (as every local stack does: the shims'
# node agents fulfil them) and logs its requests as JSON (KCR_STANDIN_LOG_JSON=true),
# which kcr-bench reads to count and time requests.
#
# Knobs: KCR_BENCH_ONLY="control object real object_real load pcload download" (a subset),
# KCR_BENCH_CONTROL_ITERATIONS (60), KCR_BENCH_OBJECT_ITERATIONS (30),
# KCR_BENCH_REAL_ITERATIONS (12), KCR_BENCH_OBJECT_REAL_ITERATIONS (6),
# KCR_BENCH_OBJECT_REAL_MIB (1024), KCR_BENCH_LOAD_ROUNDS (5),
# KCR_BENCH_LOAD_REQUESTS (500), KCR_BENCH_LOAD_PODS (50), KCR_BENCH_PCLOAD_OBJECTS (200),
# KCR_BENCH_DOWNLOAD_SIZES_MIB ("256 2048"; powers of two, smallest first: ~2 GiB of disk
# per GiB of archive while it runs), KCR_BENCH_DOWNLOAD_ITERATIONS (3),
# KCR_BENCH_DOWNLOAD_FLAGS (extra kcr-bench download flags, e.g. "--download-flag=--parallel=8").
# The figures are also written to $KCR_LOCAL_DIR/results.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# KCR_BENCH_PROFILE=debug: a smoke run of the harness on debug binaries (no figures).
export KCR_PROFILE="${KCR_BENCH_PROFILE:-release}"
export KCR_LOCAL_DIR="${KCR_LOCAL_DIR:-$ROOT/.local/bench}"
export KCR_APISERVER_PORT="${KCR_BENCH_APISERVER_PORT:-26443}"
export KCR_EXTENSION_PORT="${KCR_BENCH_EXTENSION_PORT:-28443}"
export KCR_SHIM_PORT="${KCR_BENCH_SHIM_PORT:-20350}"
export KCR_SLOW_SHIM_PORT="${KCR_BENCH_SLOW_SHIM_PORT:-20351}"
export KCR_STANDIN_LOG_JSON=true
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"

ONLY="${KCR_BENCH_ONLY:-control object real object_real load pcload download}"
CONTROL_ITERATIONS="${KCR_BENCH_CONTROL_ITERATIONS:-60}"
OBJECT_ITERATIONS="${KCR_BENCH_OBJECT_ITERATIONS:-30}"
REAL_ITERATIONS="${KCR_BENCH_REAL_ITERATIONS:-12}"
OBJECT_REAL_ITERATIONS="${KCR_BENCH_OBJECT_REAL_ITERATIONS:-6}"
OBJECT_REAL_MIB="${KCR_BENCH_OBJECT_REAL_MIB:-1024}"
LOAD_ROUNDS="${KCR_BENCH_LOAD_ROUNDS:-5}"
LOAD_REQUESTS="${KCR_BENCH_LOAD_REQUESTS:-500}"
LOAD_PODS="${KCR_BENCH_LOAD_PODS:-50}"
PCLOAD_OBJECTS="${KCR_BENCH_PCLOAD_OBJECTS:-200}"
DOWNLOAD_SIZES_MIB="${KCR_BENCH_DOWNLOAD_SIZES_MIB:-256 2048}"
DOWNLOAD_ITERATIONS="${KCR_BENCH_DOWNLOAD_ITERATIONS:-3}"
DOWNLOAD_FLAGS="${KCR_BENCH_DOWNLOAD_FLAGS:-}"
wants() { [[ " $ONLY " == *" $1 "* ]]; }
bench() { printf '[bench] %s\n' "$*" >&2; }

stop_stale_stack hack/bench.sh
relocate_stack_ports
rm -rf "$LOCAL"
stack_teardown_on_exit bench rm -rf "$LOCAL/archives" "$LOCAL/kubelet/checkpoints" "$LOCAL/download"
"$ROOT/hack/local-up.sh" # builds the release binaries (KCR_PROFILE=release)

export PATH="$BIN:$PATH" # kubectl finds the release kubectl-checkpoint
ALICE="$LOCAL/alice.kubeconfig"
RESULTS="$LOCAL/results.txt"
STANDIN_LOG="$LOCAL/logs/standin.log"
# The real kubectl binary, not google-cloud-sdk's `kubectl` dispatcher (which
# execs kubectl.1.NN and adds ~10 ms to every run): KCR_BENCH_KUBECTL overrides.
KUBECTL="${KCR_BENCH_KUBECTL:-}"
if [ -z "$KUBECTL" ]; then
  KUBECTL="$(ls -1 "$(dirname "$(readlink -f "$(command -v kubectl)")")"/kubectl.1.* 2>/dev/null | sort -V | tail -n1)"
  KUBECTL="${KUBECTL:-$(command -v kubectl)}"
fi
{
  echo "# kcr-bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "# $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | head -n1)), git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$RESULTS"
# kubectl keeps its discovery cache under $HOME/.kube/cache: one of our own.
export HOME="$LOCAL/home"
mkdir -p "$HOME"

# ---------------------------------------------------------------- 1. control path
if wants control; then
  echo instant >"$LOCAL/fake-cri.mode"
  bench "control path: $CONTROL_ITERATIONS rounds"
  "$BIN/kcr-bench" control --kubectl "$KUBECTL" --plugin "$BIN/kubectl-checkpoint" \
    --kubeconfig "$ALICE" --pod slow --container app --standin-log "$STANDIN_LOG" \
    --scratch-dir "$LOCAL" --iterations "$CONTROL_ITERATIONS" | tee -a "$RESULTS"
fi

# ---------------------------------------------------------------- 2. declarative path
if wants object; then
  echo instant >"$LOCAL/fake-cri.mode"
  bench "declarative path: $OBJECT_ITERATIONS rounds"
  "$BIN/kcr-bench" object --kubectl "$KUBECTL" --kubeconfig "$ALICE" \
    --admin-kubeconfig "$ADMIN_KUBECONFIG" --pod slow --standin-log "$STANDIN_LOG" \
    --iterations "$OBJECT_ITERATIONS" | tee -a "$RESULTS"
fi

# mem_pod NAME BYTES: pod NAME on node-local (the Pod object as local-ctl.sh makes
# it), its container replaced by one holding BYTES (a power of two): busybox awk
# doubles a string to that length (every byte written) and keeps it while sleeping.
# Above 1 GiB (busybox awk's longest string) it holds BYTES/1GiB copies of a
# 1 GiB string.
mem_pod() {
  echo "{\"namespace\":\"default\",\"name\":\"$1\",\"containers\":[\"app\"]}" | "$ROOT/hack/local-ctl.sh" pod-create >/dev/null
  local uid
  uid="$(admin_kubectl get pod "$1" -o jsonpath='{.metadata.uid}')"
  "$BIN/cri-pod" rm --socket "$CONTAINERD_SOCK" --namespace default --name "$1" >/dev/null
  "$BIN/cri-pod" run --socket "$CONTAINERD_SOCK" --namespace default --name "$1" --uid "$uid" \
    --container app --command awk \
    "BEGIN { tag = \"kcr_bench_$1\"; n = $2; c = n > 1073741824 ? 1073741824 : n; s = \"x\"; while (length(s) < c) s = s s; for (i = 1; i < n / c; i++) a[i] = s i; print tag, c * (n / c); while (1) system(\"sleep 3600\") }" >/dev/null
}

# ---------------------------------------------------------------- 2. real checkpoint
if wants real; then
  mem_pod mem 268435456 # 256 MiB
  bench "real checkpoint: $REAL_ITERATIONS rounds of a 256 MiB container"
  "$BIN/kcr-bench" real --kubectl "$KUBECTL" --kubeconfig "$ALICE" --pod mem --container app \
    --api subresource \
    --cri-pod "$BIN/cri-pod" --socket "$CONTAINERD_SOCK" --out-dir "$LOCAL/archives" \
    --rss-marker kcr_bench_mem --min-rss-mib 250 --iterations "$REAL_ITERATIONS" | tee -a "$RESULTS"
  "$ROOT/hack/local-ctl.sh" pod-delete default mem
fi

# ---------------------------------------------------------------- 4. real, declarative
if wants object_real; then
  bytes=$((OBJECT_REAL_MIB * 1048576))
  mem_pod bigmem "$bytes"
  bench "real checkpoint through a PodCheckpoint: $OBJECT_REAL_ITERATIONS rounds of a $OBJECT_REAL_MIB MiB container"
  "$BIN/kcr-bench" real --kubectl "$KUBECTL" --kubeconfig "$ALICE" --pod bigmem --container app \
    --api object --archive-root "$LOCAL/kubelet/checkpoints" --admin-kubeconfig "$ADMIN_KUBECONFIG" \
    --ratio-name object_real_checkpoint --timeout 300 \
    --cri-pod "$BIN/cri-pod" --socket "$CONTAINERD_SOCK" --out-dir "$LOCAL/archives" \
    --rss-marker kcr_bench_bigmem --min-rss-mib $((OBJECT_REAL_MIB * 97 / 100)) \
    --iterations "$OBJECT_REAL_ITERATIONS" | tee -a "$RESULTS"
  "$ROOT/hack/local-ctl.sh" pod-delete default bigmem
fi

# ---------------------------------------------------------------- 7. download (issue 14)
if wants download; then
  mkdir -p "$LOCAL/download"
  pods=()
  for mib in $DOWNLOAD_SIZES_MIB; do
    mem_pod "dl$mib" $((mib * 1048576))
    pods+=(--pod "dl$mib=$mib")
  done
  bench "download: $DOWNLOAD_ITERATIONS rounds per archive of containers holding $DOWNLOAD_SIZES_MIB MiB (df: $(df -h --output=avail "$LOCAL" | tail -n1 | tr -d ' ') free)"
  # shellcheck disable=SC2086 # $DOWNLOAD_FLAGS: words for kcr-bench
  "$BIN/kcr-bench" download --kubectl "$KUBECTL" --kubeconfig "$ALICE" \
    --admin-kubeconfig "$ADMIN_KUBECONFIG" "${pods[@]}" --container app \
    --archive-root "$LOCAL/kubelet/checkpoints" --out-dir "$LOCAL/download" \
    --extension-pid-file "$LOCAL/pids/extension" --agent-pid-file "$LOCAL/pids/shim" \
    --iterations "$DOWNLOAD_ITERATIONS" $DOWNLOAD_FLAGS | tee -a "$RESULTS"
  for mib in $DOWNLOAD_SIZES_MIB; do
    "$ROOT/hack/local-ctl.sh" pod-delete default "dl$mib"
  done
  rm -rf "$LOCAL/download"
fi

# The pods load-0.. on node-slow (items 5 and 6).
load_pods() {
  admin_kubectl get pod "load-$((LOAD_PODS - 1))" >/dev/null 2>&1 && return 0
  bench "creating $LOAD_PODS pods on node-slow"
  for i in $(seq 0 $((LOAD_PODS - 1))); do
    printf '{"namespace":"default","name":"load-%d","containers":["app"],"node":"node-slow"}' "$i" \
      | "$ROOT/hack/local-ctl.sh" pod-create >/dev/null
  done
}

# ---------------------------------------------------------------- 3. load
if wants load; then
  echo instant >"$LOCAL/fake-cri.mode"
  load_pods
  for proto in "" --http2; do
    bench "load: $LOAD_ROUNDS bursts of $LOAD_REQUESTS concurrent requests ${proto:-(HTTP/1.1)}"
    # shellcheck disable=SC2086 # $proto is one flag or nothing
    "$BIN/kcr-bench" load $proto --url "https://127.0.0.1:$KCR_EXTENSION_PORT" \
      --ca "$LOCAL/pki/extension-ca.crt" \
      --cert "$LOCAL/pki/apiserver/front-proxy-client.crt" \
      --key "$LOCAL/pki/apiserver/front-proxy-client.key" \
      --pods "$LOAD_PODS" --requests "$LOAD_REQUESTS" --rounds "$LOAD_ROUNDS" | tee -a "$RESULTS"
  done
  # TCP connections checkpoint-apiserver holds to the API server after the bursts.
  ext_pid="$(cat "$LOCAL/pids/extension")"
  echo "load extension_connections_to_apiserver=$(ss -tnpH state established "( dport = :$KCR_APISERVER_PORT )" | grep -c "pid=$ext_pid," || true)" | tee -a "$RESULTS"
fi

# ---------------------------------------------------------------- 6. PodCheckpoints under load
if wants pcload; then
  echo instant >"$LOCAL/fake-cri.mode"
  load_pods
  bench "pcload: $PCLOAD_OBJECTS PodCheckpoints at once across $LOAD_PODS pods on node-slow"
  "$BIN/kcr-bench" pcload --kubeconfig "$ADMIN_KUBECONFIG" --pods "$LOAD_PODS" \
    --objects "$PCLOAD_OBJECTS" --agent-pid-file "$LOCAL/pids/shim-slow" \
    --checkpoint-dir "$LOCAL/kubelet-slow/checkpoints" --standin-log "$STANDIN_LOG" | tee -a "$RESULTS"
fi

# Peak RSS over the whole run (every phase above; pcload resets shim-slow's).
"$BIN/kcr-bench" rss --pids-dir "$LOCAL/pids" \
  --limit extension=64 --limit shim=32 --limit shim-slow=32 | tee -a "$RESULTS"

bench "figures written to $RESULTS"
