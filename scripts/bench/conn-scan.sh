#!/usr/bin/env bash
# One connection scan's CPU cost with both IPv4 tables full (524,288 records), by copying
# the records out (the baseline, batched lookups) and by map iterators in the kernel
# (ConnScanner, what a settled host runs), interleaved over ROUNDS rounds on the same tables;
# medians, as ratios in one run. kernel_cpu_pct_at_2s is what a full table would cost a host
# scanning every 2 s (a settled host with full tables waits 60 s: docs/agent.md). Last line:
# one JSON object.
#   usage: scripts/bench/conn-scan.sh [ROUNDS]   (as root; BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
[ "$(id -u)" -eq 0 ] || { echo "conn-scan bench: run as root" >&2; exit 1; }
[ -x "$build/tests/bpf/nlb-bench-conn-scan" ] || {
  scripts/install-deps.sh
  cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" nlb-bench-conn-scan >/dev/null
}
exec "$build/tests/bpf/nlb-bench-conn-scan" "${1:-7}"
