#!/usr/bin/env bash
# hack/fuzz.sh [SECONDS] [TARGET...] — build the cargo-fuzz targets in fuzz/
# and run each (or the TARGETs named) for SECONDS (default 60), one after the
# other. Exits non-zero if any target
# finds a crash (the input is kept under fuzz/artifacts/<target>/) or fails
# to build or run. Prints one line per target:
#     fuzz <target> executions=<N> crashes=<0|1> seconds=<S>
#
# The machine has only a stable toolchain: cargo fuzz passes -Z flags to
# rustc, which stable accepts with RUSTC_BOOTSTRAP=1. The default sanitizer is
# `none` (the code under test has no unsafe; libFuzzer's coverage guidance and
# Rust's panics and overflow checks, enabled with --debug-assertions, are what
# finds bugs). FUZZ_SANITIZER=address runs under ASan instead.
#
# Seeds live in fuzz/seeds/<target> (committed, read-only to the fuzzer); what
# the fuzzer finds goes to fuzz/corpus/<target> (not committed) and is reused
# by later runs on the same machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="${ROOT}/fuzz"
PER_TARGET="${1:-60}"
shift $(( $# > 0 ? 1 : 0 ))
ONLY=("$@")
CARGO_FUZZ_VERSION="0.13.1"
SANITIZER="${FUZZ_SANITIZER:-none}"
MAX_LEN="${FUZZ_MAX_LEN:-8192}"

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() { printf '[fuzz] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$PER_TARGET" =~ ^[1-9][0-9]*$ ]] || die "usage: hack/fuzz.sh [SECONDS] [TARGET...] (SECONDS a positive whole number, got '${PER_TARGET}')"
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# fuzz/ is its own workspace with its own target directory.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz ${CARGO_FUZZ_VERSION}\b"; then
  log "installing cargo-fuzz ${CARGO_FUZZ_VERSION} from crates.io"
  cargo install cargo-fuzz --version "${CARGO_FUZZ_VERSION}" --locked
fi

# kubelet-shim depends on k8s-cri, whose build script compiles the CRI protos.
if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing protobuf-compiler (protoc) for the k8s-cri build"
    DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 install protobuf-compiler >/dev/null \
      || { apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -y -q install protobuf-compiler >/dev/null; } \
      || die "protoc is missing and protobuf-compiler could not be installed (run sudo hack/setup.sh)"
  else
    die "protoc is missing: install protobuf-compiler (sudo hack/setup.sh does)"
  fi
fi

cd "$FUZZ"
BUILD_FLAGS=(--sanitizer "$SANITIZER" --debug-assertions)
log "building the fuzz targets (sanitizer ${SANITIZER}, debug assertions on)"
cargo fuzz build "${BUILD_FLAGS[@]}"

mapfile -t TARGETS < <(cargo fuzz list)
[ "${#TARGETS[@]}" -gt 0 ] || die "cargo fuzz list found no targets in ${FUZZ}"
if [ "${#ONLY[@]}" -gt 0 ]; then
  for t in "${ONLY[@]}"; do
    printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$t" || die "no fuzz target named ${t} (have: ${TARGETS[*]})"
  done
  TARGETS=("${ONLY[@]}")
fi

LOGS="${FUZZ}/artifacts/logs"
mkdir -p "$LOGS"
failed=()
for target in "${TARGETS[@]}"; do
  seeds="${FUZZ}/seeds/${target}"
  corpus="${FUZZ}/corpus/${target}"
  [ -d "$seeds" ] || die "no seeds for target ${target}: add a few inputs under fuzz/seeds/${target}/"
  mkdir -p "$corpus"
  logfile="${LOGS}/${target}.log"
  log "running ${target} for ${PER_TARGET}s (log: ${logfile#"${ROOT}/"})"
  set +e
  cargo fuzz run "${BUILD_FLAGS[@]}" "$target" "$corpus" "$seeds" -- \
    -max_total_time="$PER_TARGET" -max_len="$MAX_LEN" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$logfile" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -n 1)"
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    failed+=("$target")
    log "${target} FAILED (exit ${rc}); the end of its log:"
    tail -n 40 "$logfile" >&2
    ls "${FUZZ}/artifacts/${target}" 2>/dev/null | sed 's/^/[fuzz]   artifact: /' >&2 || true
  fi
  printf 'fuzz %s executions=%s crashes=%s seconds=%s\n' "$target" "${execs:-unknown}" "$crashes" "$PER_TARGET"
done

if [ "${#failed[@]}" -gt 0 ]; then
  die "crash or failure in: ${failed[*]} (reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${BUILD_FLAGS[*]} TARGET artifacts/TARGET/FILE)"
fi
log "all ${#TARGETS[@]} targets ran ${PER_TARGET}s each without a crash"
