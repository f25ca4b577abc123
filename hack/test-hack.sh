#!/usr/bin/env bash
# hack/test-hack.sh — checks of the hack/ scripts themselves, in seconds and
# without bringing a stack up (`make hack-test`, part of `make test`):
#
#   ports     the demo's, the e2e suite's and the benchmark's default ports are
#             disjoint; the e2e stack moves to the next free set when its ports
#             are taken (README: `make demo` then `make test`), and says so
#   scope     the e2e/bench scripts stop only a stack in their own state dir,
#             saying so, never the demo's; the exit trap tears down only its
#             own stack and prints the log tails on failure
#   record    a running stack's recorded ports win over defaults, the
#             environment over both
#   render    the local stack's APIService is deploy/'s, with only the caBundle
#             changed; its users are bound by README.md's command; it serves
#             deploy/crd's CRD and RBAC
#   config    the e2e config writer's output (parsed by e2e's own unit test)
#
# Uses only loopback listeners and `sleep` processes it starts and stops by PID.
set -uo pipefail
# shellcheck disable=SC2016 # in_env takes code to run in the sourced environment, quoted on purpose
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

passed=0 failed=0
ok() { printf 'ok   %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$1"; [ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/     /'; failed=$((failed + 1)); }
check() { # NAME CMD...: CMD must succeed
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then ok "$name"; else fail "$name" "$out"; fi
}

# A bash that has sourced hack/lib/env.sh for state dir $1, running $2.
in_env() { KCR_LOCAL_DIR="$1" ROOT="$ROOT" bash -c "set -euo pipefail; source \"\$ROOT/hack/lib/env.sh\"; $2"; }

# listen PORT: a loopback listener, stopped at exit.
listen() {
  python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); time.sleep(600)' "$1" &
  PIDS+=("$!")
  local _
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "listener on $1 did not come up" >&2
  return 1
}

# fake_stack DIR: a "stack" in DIR whose stand-in is a sleep process (by PID).
fake_stack() {
  mkdir -p "$1/pids" "$1/logs"
  setsid sleep 600 </dev/null >/dev/null 2>&1 &
  PIDS+=("$!")
  echo "$!" >"$1/pids/standin"
  echo "a line of the fake stand-in's log" >"$1/logs/standin.log"
  echo "$!"
}

# ------------------------------------------------------------------ ports
default_of() { # SCRIPT VAR: the default of VAR in SCRIPT (`VAR:-NNNN`)
  sed -n "s/.*$2:-\([0-9]*\)}.*/\1/p" "$ROOT/hack/$1" | head -n1
}
demo_ports="$(in_env "$TMP/none" 'echo $KCR_APISERVER_PORT $KCR_EXTENSION_PORT $KCR_SHIM_PORT $KCR_SLOW_SHIM_PORT')"
e2e_ports="$(for v in APISERVER EXTENSION SHIM SLOW_SHIM; do default_of e2e-local.sh "KCR_E2E_${v}_PORT"; done | xargs)"
bench_ports="$(for v in APISERVER EXTENSION SHIM SLOW_SHIM; do default_of bench.sh "KCR_BENCH_${v}_PORT"; done | xargs)"
all="$demo_ports $e2e_ports $bench_ports"
if [ "$(wc -w <<<"$all")" = 12 ] && [ "$(tr ' ' '\n' <<<"$all" | sort -u | wc -l)" = 12 ]; then
  ok "ports: demo ($demo_ports), e2e ($e2e_ports) and bench ($bench_ports) defaults are disjoint"
else
  fail "ports: demo, e2e and bench defaults are disjoint" "demo: $demo_ports; e2e: $e2e_ports; bench: $bench_ports"
fi
ephemeral="$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)"
high="$(tr ' ' '\n' <<<"$all" | awk -v e="$ephemeral" '$1 >= e' | xargs)"
if [ -z "$high" ]; then ok "ports: all below the ephemeral range ($ephemeral-)"; else fail "ports: all below the ephemeral range ($ephemeral-)" "$high"; fi

# The e2e stack's ports taken (as by the demo) and the first step's stand-in
# port too: it moves by +20, says so, and the new set is free.
read -r a e s ss <<<"$e2e_ports"
pick_free_base() { # a set of four ports (like the e2e one) nobody listens on
  local off
  for off in $(seq 1000 100 3000); do
    in_env "$TMP/none" "KCR_APISERVER_PORT=$((a + off)) KCR_EXTENSION_PORT=$((e + off)) KCR_SHIM_PORT=$((s + off)) KCR_SLOW_SHIM_PORT=$((ss + off)); stack_ports_free && for o in 10 20; do port_in_use \$((KCR_APISERVER_PORT + o)) && exit 1; done; exit 0" && { echo "$off"; return; }
  done
}
off="$(pick_free_base)"
A=$((a + off)) E=$((e + off)) S=$((s + off)) SS=$((ss + off))
if listen "$A" && listen "$E" && listen "$S" && listen "$SS" && listen $((A + 10)); then
  out="$(KCR_APISERVER_PORT=$A KCR_EXTENSION_PORT=$E KCR_SHIM_PORT=$S KCR_SLOW_SHIM_PORT=$SS \
    in_env "$TMP/e2e" 'relocate_stack_ports; echo "$KCR_APISERVER_PORT $KCR_EXTENSION_PORT $KCR_SHIM_PORT $KCR_SLOW_SHIM_PORT"' 2>&1)"
  want="$((A + 20)) $((E + 20)) $((S + 20)) $((SS + 20))"
  if [ "$(tail -n1 <<<"$out")" = "$want" ] && grep -q "are in use (another stack?); using $want" <<<"$out"; then
    ok "ports: taken ports move the stack to the next free set ($want) and it says so"
  else
    fail "ports: taken ports move the stack to the next free set ($want) and it says so" "$out"
  fi
else
  fail "ports: start loopback listeners"
fi
# the set just found free is kept as it is
out="$(KCR_APISERVER_PORT=$((A + 20)) KCR_EXTENSION_PORT=$((E + 20)) KCR_SHIM_PORT=$((S + 20)) KCR_SLOW_SHIM_PORT=$((SS + 20)) \
  in_env "$TMP/e2e" 'relocate_stack_ports; echo "$KCR_APISERVER_PORT"' 2>&1)"
if [ "$out" = "$((A + 20))" ]; then ok "ports: free ports stay as they are, silently"; else fail "ports: free ports stay as they are, silently" "$out"; fi

# ------------------------------------------------------------------ scope
demo_pid="$(fake_stack "$TMP/demo")"
e2e_pid="$(fake_stack "$TMP/e2e")"
out="$(in_env "$TMP/e2e" 'stop_stale_stack hack/e2e-local.sh' 2>&1)"
if ! kill -0 "$e2e_pid" 2>/dev/null && kill -0 "$demo_pid" 2>/dev/null \
  && grep -q "stopping the stack an earlier hack/e2e-local.sh left running in $TMP/e2e" <<<"$out"; then
  ok "scope: a stale stack in the e2e dir is stopped, saying so; the demo's is not touched"
else
  fail "scope: a stale stack in the e2e dir is stopped, saying so; the demo's is not touched" "$out"
fi
e2e_pid="$(fake_stack "$TMP/e2e")"
out="$(in_env "$TMP/e2e" 'stack_teardown_on_exit e2e touch "$LOCAL/extra-ran"; false' 2>&1)"
rc=$?
if [ "$rc" = 1 ] && ! kill -0 "$e2e_pid" 2>/dev/null && kill -0 "$demo_pid" 2>/dev/null \
  && [ -e "$TMP/e2e/extra-ran" ] && grep -q "a line of the fake stand-in's log" <<<"$out" \
  && grep -q "\[e2e\] FAILED (exit 1); logs kept in $TMP/e2e/logs" <<<"$out"; then
  ok "scope: the exit trap stops its own stack only, runs its cleanup, shows the log tails on failure"
else
  fail "scope: the exit trap stops its own stack only, runs its cleanup, shows the log tails on failure" "rc=$rc $out"
fi
out="$(in_env "$TMP/e2e" 'stack_teardown_on_exit e2e; true' 2>&1)"
rc=$?
if [ "$rc" = 0 ] && ! grep -q FAILED <<<"$out" && kill -0 "$demo_pid" 2>/dev/null; then
  ok "scope: a successful run exits 0 without log tails"
else
  fail "scope: a successful run exits 0 without log tails" "rc=$rc $out"
fi
kill "$demo_pid"

# ----------------------------------------------------------------- record
mkdir -p "$TMP/rec"
in_env "$TMP/rec" 'KCR_APISERVER_PORT=1111 KCR_EXTENSION_PORT=2222 KCR_SHIM_PORT=3333 KCR_SLOW_SHIM_PORT=4444; record_stack_ports'
check "record: a stack's recorded ports are what its scripts use" \
  test "$(in_env "$TMP/rec" 'echo $KCR_APISERVER_PORT $KCR_SLOW_SHIM_PORT')" = "1111 4444"
check "record: the environment wins over the record" \
  test "$(KCR_SHIM_PORT=5555 in_env "$TMP/rec" 'echo $KCR_SHIM_PORT $KCR_EXTENSION_PORT')" = "5555 2222"

# ----------------------------------------------------------------- render
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/ca.key" -out "$TMP/ca.crt" -subj /CN=test-ca -days 1 2>/dev/null
rendered="$(in_env "$TMP/none" "render_apiservice $TMP/ca.crt" 2>&1)"
deployed="$(kubectl kustomize "$ROOT/deploy" | KUBECONFIG=/dev/null kubectl patch --local -f - --type=merge -p '{}' -o json \
  | jq -s '.[] | select(.kind == "APIService")')"
if [ "$(jq -S 'del(.spec.caBundle)' <<<"$rendered")" = "$(jq -S 'del(.spec.insecureSkipTLSVerify)' <<<"$deployed")" ] \
  && [ "$(jq -r .spec.caBundle <<<"$rendered" | base64 -d)" = "$(cat "$TMP/ca.crt")" ] \
  && [ "$(jq -r .spec.insecureSkipTLSVerify <<<"$deployed")" = true ]; then
  ok "render: the local APIService is deploy/'s, caBundle instead of insecureSkipTLSVerify"
else
  fail "render: the local APIService is deploy/'s, caBundle instead of insecureSkipTLSVerify" "$rendered"
fi
readme_cmd="$(in_env "$TMP/none" 'echo "${README_ALICE_BINDING[*]}"')"
check "render: alice is bound by README.md's command ($readme_cmd)" grep -qF "$readme_cmd" "$ROOT/README.md"
policy="$(in_env "$TMP/none" render_users_policy)"
if [ "$(grep -c '^kind: ClusterRoleBinding' <<<"$policy")" = 2 ] && ! grep -q 'name: nobody' <<<"$policy" \
  && [ "$(grep -c 'name: alice$' <<<"$policy")" = 1 ]; then
  ok "render: alice has one binding, viewer one, nobody none"
else
  fail "render: alice has one binding, viewer one, nobody none" "$policy"
fi

crds="$(in_env "$TMP/none" render_crds)"
if [ "$(jq -sr '[.[] | .metadata.name] | join(",")' <<<"$(sed '/^---$/d' <<<"$crds")")" = podcheckpoints.checkpoint.kcr.dev ] \
  && [ "$(jq -S . <<<"$crds")" = "$(kubectl kustomize "$ROOT/deploy/crd" | KUBECONFIG=/dev/null kubectl patch --local -f - --type=merge -p '{}' -o json \
        | jq -S 'if .kind == "List" then .items[] else . end | select(.kind == "CustomResourceDefinition")')" ]; then
  ok "render: the local stack serves deploy/crd's PodCheckpoint CRD, unchanged"
else
  fail "render: the local stack serves deploy/crd's PodCheckpoint CRD, unchanged" "$crds"
fi
policy="$(in_env "$TMP/none" render_policy)"
if grep -q '^  name: podcheckpoint-editor$' <<<"$policy" && grep -q '^  name: checkpoint-creator$' <<<"$policy" \
  && grep -q '^  name: kcr:checkpoint-shim$' <<<"$policy"; then
  ok "render: the stand-in's policy holds deploy/crd's roles, checkpoint-creator and the agent's"
else
  fail "render: the stand-in's policy holds deploy/crd's roles, checkpoint-creator and the agent's" "$policy"
fi

# ----------------------------------------------------------------- config
# shellcheck source=hack/lib/e2e-config.sh
source "$ROOT/hack/lib/e2e-config.sh"
if write_e2e_config "$TMP/e2e.yaml" "$TMP/users dir" default /bin "" default/slow/app -- env "KCR_LOCAL_DIR=$TMP/x y" /ctl \
  && grep -qx 'noRightsKubeconfig: "'"$TMP"'/users dir/nobody.kubeconfig"' "$TMP/e2e.yaml" \
  && grep -qx '  nodeGate: \["env","KCR_LOCAL_DIR='"$TMP"'/x y","/ctl","node-gate"\]' "$TMP/e2e.yaml" \
  && ! grep -q nodeCheckpointsDir "$TMP/e2e.yaml"; then
  ok "config: the e2e config names the three users and the driver's verbs"
else
  fail "config: the e2e config names the three users and the driver's verbs" "$(cat "$TMP/e2e.yaml" 2>&1)"
fi
if write_e2e_config "$TMP/bad.yaml" "$TMP" default /bin "" "no-slashes" -- /ctl 2>/dev/null || [ -e "$TMP/bad.yaml" ]; then
  fail "config: a malformed SLOW_POD is refused and writes nothing"
else
  ok "config: a malformed SLOW_POD is refused and writes nothing"
fi

echo "hack: $passed passed, $failed failed"
[ "$failed" = 0 ]
