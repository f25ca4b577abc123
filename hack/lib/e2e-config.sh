# hack/lib/e2e-config.sh — the one writer of the e2e suite's config
# shellcheck shell=bash
# (e2e/src/lib.rs `Config`; e2e/README.md), for hack/e2e-local.sh (the local
# stack) and hack/kind-up.sh (a kind cluster). Needs jq.
#
# write_e2e_config FILE USERS_DIR NAMESPACE PLUGIN_DIR NODE_CHECKPOINTS_DIR SLOW_POD -- CTL...
#   USERS_DIR             holds the users' kubeconfigs, as README.md tells an admin
#                         to create them: alice.kubeconfig (bound to checkpoint-creator
#                         and nothing else), viewer.kubeconfig (read-only: `view`),
#                         nobody.kubeconfig (no rights at all), and admin.kubeconfig
#                         (the cluster admin's, named in the config when it exists)
#   NODE_CHECKPOINTS_DIR  where the node's archives can be read on this machine, or ""
#   SLOW_POD              NAMESPACE/NAME/CONTAINER on a node whose runtime is slow, or ""
#   CTL...                the command line of the cluster's driver script; each of the
#                         config's commands is CTL plus its verb (pod-create, pod-delete,
#                         running, extension-gate, node-gate, remove-extension,
#                         restore-extension, agent-restart: hack/local-ctl.sh and
#                         hack/kind-ctl.sh)
# Optional, from the environment: SLOW_NODE_CHECKPOINTS_DIR, where the archives
# of SLOW_POD's node can be read on this machine.
write_e2e_config() {
  local file="$1" users="$2" namespace="$3" plugin_dir="$4" node_dir="$5" slow="$6"
  shift 6
  if [ "${1:-}" != -- ] || [ "$#" -lt 2 ]; then
    echo "write_e2e_config: want FILE USERS_DIR NAMESPACE PLUGIN_DIR NODE_CHECKPOINTS_DIR SLOW_POD -- CTL..." >&2
    return 2
  fi
  shift
  local ctl
  ctl="$(jq -cn '$ARGS.positional' --args "$@")"
  {
    printf '# Written by %s (hack/lib/e2e-config.sh); read by the e2e suite as KCR_E2E_CONFIG.\n' "${0##*/}"
    # YAML whose scalars and lists are JSON (a subset of YAML): any path quotes right.
    jq -rn --arg users "$users" --arg namespace "$namespace" --arg plugin_dir "$plugin_dir" \
      --arg node_dir "$node_dir" --arg slow "$slow" --argjson ctl "$ctl" \
      --arg slow_dir "${SLOW_NODE_CHECKPOINTS_DIR:-}" \
      --arg admin "$([ -f "$users/admin.kubeconfig" ] && echo "$users/admin.kubeconfig")" '
      def cmd($verb): $ctl + [$verb] | tojson;
      "kubeconfig: \("\($users)/alice.kubeconfig" | tojson)",
      "viewerKubeconfig: \("\($users)/viewer.kubeconfig" | tojson)",
      "noRightsKubeconfig: \("\($users)/nobody.kubeconfig" | tojson)",
      (select($admin != "") | "adminKubeconfig: \($admin | tojson)"),
      "namespace: \($namespace | tojson)",
      "pluginDir: \($plugin_dir | tojson)",
      (select($node_dir != "") | "nodeCheckpointsDir: \($node_dir | tojson)"),
      (select($slow != "") | $slow | split("/")
        | if length == 3 then "slowPod: \({namespace: .[0], name: .[1], container: .[2]} | tojson)"
          else error("SLOW_POD wants NAMESPACE/NAME/CONTAINER, got \($slow)") end),
      (select($slow_dir != "") | "slowNodeCheckpointsDir: \($slow_dir | tojson)"),
      "commands:",
      "  createPod: \(cmd("pod-create"))",
      "  deletePod: \(cmd("pod-delete"))",
      "  containerRunning: \(cmd("running"))",
      "  extensionGate: \(cmd("extension-gate"))",
      "  nodeGate: \(cmd("node-gate"))",
      "  removeExtension: \(cmd("remove-extension"))",
      "  restoreExtension: \(cmd("restore-extension"))",
      "  restartAgent: \(cmd("agent-restart"))",
      "  stopAgent: \(cmd("agent-stop"))"'
  } >"$file.tmp" || { rm -f "$file.tmp"; return 1; }
  mv "$file.tmp" "$file"
}
