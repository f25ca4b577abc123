# kindest/node plus CRIU >= 4.1 (built from Debian trixie's source package,
# as hack/setup.sh does on the project's machines).
FROM docker.io/kindest/node:v1.33.1
RUN echo 'deb-src http://deb.debian.org/debian trixie main' >/etc/apt/sources.list.d/trixie-src.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends gcc make pkgconf libc6-dev libbsd-dev libcap-dev \
      libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev libprotobuf-c-dev protobuf-c-compiler \
      libprotobuf-dev uuid-dev python3 dpkg-dev xz-utils iproute2 \
 && mkdir /tmp/criu && cd /tmp/criu \
 && (apt-get source --download-only criu/trixie || true) \
 && tar -xf criu_*.orig.tar.xz --strip-components=1 \
 && make -j"$(nproc)" criu && install -m 0755 criu/criu /usr/local/sbin/criu \
 && cd / && rm -rf /tmp/criu /var/lib/apt/lists/*
