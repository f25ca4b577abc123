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
   && [ "$OUT/app.tar" -nt "$0" ] && [ "$OUT/app.tar" -nt "${ROOT}/hack/oci_image.py" ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# busybox-static from Debian (the .deb is kept in .cache so reruns stay offline).
deb_dir="${ROOT}/.cache/debs"
mkdir -p "$deb_dir"
if ! ls "$deb_dir"/busybox-static_*.deb >/dev/null 2>&1; then
  ( cd "$deb_dir" && apt-get download busybox-static >/dev/null 2>&1 ) \
    || { apt-get -q update >/dev/null && ( cd "$deb_dir" && apt-get download busybox-static >/dev/null ); } \
    || { echo "[images] ERROR: cannot download busybox-static from Debian" >&2; exit 1; }
fi
dpkg -x "$(ls "$deb_dir"/busybox-static_*.deb | head -n1)" "$work/pkg"
cp "$work/pkg/bin/busybox" "$work/busybox"
python3 "${ROOT}/hack/oci_image.py" "$work/busybox" "$OUT"
echo "[images] built $OUT/app.tar $OUT/pause.tar" >&2
