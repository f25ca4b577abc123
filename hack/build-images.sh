#!/usr/bin/env bash
# hack/build-images.sh [TAG] — build the container images of checkpoint-apiserver
# and checkpoint-shim with Docker (for kind; see hack/kind-up.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="${1:-dev}"
command -v docker >/dev/null || { echo "build-images: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build-images: no Docker engine is running (docker info fails)" >&2; exit 1; }
for bin in checkpoint-apiserver checkpoint-shim; do
  docker build -f "$ROOT/hack/images/Dockerfile" --build-arg BIN="$bin" -t "kcr.dev/$bin:$TAG" "$ROOT"
done
echo "built kcr.dev/checkpoint-apiserver:$TAG kcr.dev/checkpoint-shim:$TAG"
