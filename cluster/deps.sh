#!/usr/bin/env bash
# Installs what ringkv needs to build, test and run, from Debian 12's archive.
# Idempotent and quick: when every package is present it only checks and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libevent-dev libmsgpack-dev libprotobuf-c-dev protobuf-c-compiler
  liblmdb-dev libxxhash-dev libinih-dev libedit-dev libssl-dev libcmocka-dev libjemalloc-dev
  procps redis-tools iproute2 nftables
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
