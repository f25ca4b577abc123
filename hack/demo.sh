#!/usr/bin/env bash
# hack/demo.sh — the main job: bring up the local stack (unless it is up),
# checkpoint the running container of pod `counter` with `kubectl checkpoint`
# (through a PodCheckpoint, which node-local's agent fulfils), show the object
# and the archive. `make down` stops the stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/env.sh
source "$ROOT/hack/lib/env.sh"

proc_running standin || "$ROOT/hack/local-up.sh"
export KUBECONFIG="$LOCAL/alice.kubeconfig"

echo
echo "\$ kubectl get pod counter"
kubectl get pod counter
echo
echo "\$ kubectl checkpoint counter"
out="$(kubectl checkpoint counter)"
echo "$out"
archive="$(sed -n 's/^Checkpoint Archive: *//p' <<<"$out")"
# Through a PodCheckpoint (the default here: the stack serves them) the
# archive is named relative to the node's checkpoint directory, as KEP-5823
# keeps host paths out of the API; node-local's is $LOCAL/kubelet/checkpoints.
case "$archive" in
  /*) ;;
  *) archive="$LOCAL/kubelet/checkpoints/$archive" ;;
esac
echo
echo "The archive on the node (root-only: it holds the container's memory):"
ls -l "$archive"
"$BIN/archive-summary" "$archive" app
echo
echo "\$ kubectl get podcheckpoints"
kubectl get podcheckpoints
echo
echo "The container is still running:"
"$ROOT/hack/local-ctl.sh" running default counter app && echo "  counter/app: CONTAINER_RUNNING"
echo
echo "The stack stays up for you: export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH; 'make down' stops it."
echo "('make test' runs its own stack beside it, on other ports, and leaves this one alone.)"
