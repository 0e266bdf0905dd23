#!/usr/bin/env bash
# Installs every Debian package that building, testing, benchmarking and the demo use.
# Idempotent: prints nothing and touches nothing when all packages are already present.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang llvm
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  libboost-dev libboost-system-dev nlohmann-json3-dev libssl-dev libsystemd-dev catch2
  libclang-rt-14-dev scdoc
  # tests, benchmarks and the demo
  iproute2 iputils-ping arping tcpdump ethtool nftables iptables kmod python3 curl procps
  util-linux socat man-db groff-base strace
  prometheus # for promtool (tests/e2e/test_metrics.sh); on a systemd host it starts a service
  # the package and its checks
  lintian debootstrap systemd-container # systemd-nspawn: tests/package/test_systemd.sh
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}) and not root: run as root" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
