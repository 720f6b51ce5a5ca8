#!/bin/sh
# Install, idempotently, every Debian package that qblock's build, tests and
# interop oracle (the real QEMU 7.2 tools) need.  Safe to run repeatedly: it
# only calls apt-get when something is missing.
set -e
PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev \
      libglib2.0-dev libaio-dev liburing-dev libjansson-dev zlib1g-dev libzstd-dev \
      python3 qemu-utils qemu-system-common libnbd-bin fio libgnutls28-dev time \
      gnutls-bin"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing >/dev/null
