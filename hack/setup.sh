#!/usr/bin/env bash
# hack/setup.sh — install what builds and tests need (root, idempotent).
#
#  * protobuf-compiler (the k8s-cri crate compiles the CRI protos); jq, openssl
#    and shellcheck for the hack/ scripts and their checks
#  * containerd 2.x from Debian forky, runc from bookworm
#  * CRIU >= 4.1 built from the upstream tarball Debian's archive carries
#  * busybox-based OCI test images (app + sandbox) under .cache/images/
#
# A ready machine re-runs this in seconds. docs/ENVIRONMENT.md says why each
# step looks the way it does (which containerd, why CRIU is built from source).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROOT}/.cache"
IMAGES="${CACHE}/images"
CRIU_VERSION_MIN="4.1"
CRIU_SUITE="${CRIU_SUITE:-trixie}"
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs packages, builds CRIU into /usr/local/sbin)"
export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/sbin:/usr/local/bin:${PATH}"

# ---------------------------------------------------------------- apt suites
apt_sources() {
  local src=/etc/apt/sources.list.d/kcr-extra.sources pin=/etc/apt/preferences.d/kcr-extra
  if [ ! -f "$src" ]; then
    log "adding Debian forky (binaries, pinned to 1) and trixie (sources only)"
    cat >"$src" <<'SRC'
# Added by kubectl-checkpoint hack/setup.sh: containerd 2.x comes from forky,
# CRIU >= 4.1 source from trixie. Pinned to priority 1 in preferences.d/kcr-extra.
Types: deb
URIs: http://deb.debian.org/debian
Suites: forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
Check-Valid-Until: no

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat >"$pin" <<'PIN'
Package: *
Pin: release n=forky
Pin-Priority: 1

Package: *
Pin: release n=trixie
Pin-Priority: 1
PIN
    APT_UPDATED=""
  fi
}

APT_UPDATED=""
apt_update() {
  [ -n "$APT_UPDATED" ] && return 0
  log "apt-get update"
  "${APT[@]}" update >/dev/null || die "apt-get update failed"
  APT_UPDATED=1
}

have_pkgs() {
  local missing
  missing="$(dpkg-query -W -f='${Status}\n' "$@" 2>/dev/null | awk '$0 != "install ok installed"' | wc -l)"
  [ "$(dpkg-query -W "$@" 2>/dev/null | wc -l)" = "$#" ] && [ "$missing" = 0 ]
}

install_pkgs() {
  if have_pkgs "$@"; then return 0; fi
  apt_update
  log "installing $*"
  "${APT[@]}" install --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed"
}

# ------------------------------------------------------------ build packages
BASE_PKGS=(protobuf-compiler ca-certificates iproute2 xz-utils curl jq openssl shellcheck)
CRIU_BUILD_PKGS=(gcc make pkgconf libc6-dev libbsd-dev libcap-dev libgnutls28-dev libnet1-dev
  libnftables-dev libnl-3-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev uuid-dev
  python3 dpkg-dev)

apt_sources
install_pkgs "${BASE_PKGS[@]}"
install_pkgs runc

# containerd 2.x from forky: fail loudly when it is not installable.
containerd_ok() {
  command -v containerd >/dev/null && containerd --version 2>/dev/null | grep -Eq ' v?2\.'
}
if ! containerd_ok; then
  apt_update
  log "installing containerd 2.x from forky"
  "${APT[@]}" install --no-install-recommends -t forky containerd >/dev/null \
    || die "containerd from forky did not install (does it need a newer libc6 now?)"
  containerd_ok || die "containerd from forky is not 2.x: $(containerd --version 2>&1)"
fi
# Debian's postinst may try to start containerd; we never use the system one.

# ------------------------------------------------------------------ CRIU
criu_ok() {
  local c=/usr/local/sbin/criu v
  [ -x "$c" ] || return 1
  v="$("$c" --version 2>/dev/null | awk '/^Version:/ {print $2}')"
  [ -n "$v" ] || return 1
  printf '%s\n%s\n' "$CRIU_VERSION_MIN" "$v" | sort -V -C || return 1
  "$c" check >/dev/null 2>&1
}

if ! criu_ok; then
  install_pkgs "${CRIU_BUILD_PKGS[@]}"
  apt_update
  work="${CACHE}/criu-src"
  mkdir -p "$work"
  cd "$work"
  uri_line="$(apt-get source --print-uris "criu/${CRIU_SUITE}" 2>/dev/null | grep "orig.tar" | head -n1 || true)"
  [ -n "$uri_line" ] || die "apt-get source --print-uris criu/${CRIU_SUITE} names no orig tarball"
  file="$(awk '{print $2}' <<<"$uri_line")"
  sha="$(awk '{print $4}' <<<"$uri_line" | sed 's/^SHA256://')"
  if [ ! -f "$file" ] || ! echo "${sha}  ${file}" | sha256sum -c --status; then
    log "fetching ${file}"
    # Downloads the orig tarball, then exits 100 because the .dsc is not served.
    apt-get source --download-only "criu/${CRIU_SUITE}" >/dev/null 2>&1 || true
  fi
  [ -f "$file" ] || die "criu source tarball ${file} was not downloaded"
  echo "${sha}  ${file}" | sha256sum -c --status || die "${file}: SHA256 mismatch (want ${sha})"
  rm -rf build && mkdir build
  tar -xf "$file" -C build --strip-components=1
  log "building CRIU from ${file}"
  make -C build -j"$(nproc)" criu >build.log 2>&1 || { tail -n 40 build.log >&2; die "CRIU build failed"; }
  install -m 0755 build/criu/criu /usr/local/sbin/criu
  criu_ok || { /usr/local/sbin/criu check >&2 || true; die "criu check fails with the CRIU just built"; }
  log "CRIU $(/usr/local/sbin/criu --version | awk '/^Version:/ {print $2}') installed"
fi

# ----------------------------------------------------------- test images
"${ROOT}/hack/build-test-images.sh" "$IMAGES"

log "ready: containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), criu $(/usr/local/sbin/criu --version | awk '/^Version:/ {print $2}')"
