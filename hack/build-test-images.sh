#!/usr/bin/env bash
# hack/build-test-images.sh OUT_DIR — build the two busybox-based OCI archives the
# tests import into containerd (nothing can be pulled here):
#   OUT_DIR/app.tar    localhost/kcr-test/app:v1    (busybox; default cmd: a counter loop)
#   OUT_DIR/pause.tar  localhost/kcr-test/pause:v1  (sandbox image: /bin/sleep inf)
# Idempotent: skips when both archives exist and are newer than this script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-${ROOT}/.cache/images}"
mkdir -p "$OUT"
if [ -s "$OUT/app.tar" ] && [ -s "$OUT/pause.tar" ] \
   && [ "$OUT/app.tar" -nt "$0" ] && [ "$OUT/pause.tar" -nt "${ROOT}/hack/oci_image.py" ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c 'not a dynamic' || true) && [ "$file_is_static" = 1 ]; then
  cp /bin/busybox "$work/busybox"
else
  ( cd "$work" && apt-get download busybox-static >/dev/null 2>&1 ) \
    || { apt-get -q update >/dev/null && ( cd "$work" && apt-get download busybox-static >/dev/null ); } \
    || { echo "[images] ERROR: cannot download busybox-static" >&2; exit 1; }
  dpkg -x "$work"/busybox-static_*.deb "$work/pkg"
  cp "$work/pkg/bin/busybox" "$work/busybox"
fi
python3 "${ROOT}/hack/oci_image.py" "$work/busybox" "$OUT"
echo "[images] built $OUT/app.tar $OUT/pause.tar" >&2
