#!/bin/sh
# Install every Debian package migvm needs to build, test and benchmark.
# Idempotent: silent when everything is already installed.
set -e
PKGS="build-essential pkg-config libjson-c-dev libglib2.0-dev libreadline-dev check
      valgrind socat strace python3 python3-matplotlib qemu-system-x86 qemu-utils xz-utils debian-archive-keyring
      groff-base man-db iproute2 nftables clang libclang-rt-14-dev zlib1g-dev
      libzstd-dev libgnutls28-dev gnutls-bin"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
