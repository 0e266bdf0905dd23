#!/usr/bin/env bash
# Convergence engine benchmark: allocation time (64 hosts x 32 rules), heartbeat size and
# bandwidth, bucket movement on joins/leaves, balance, simulated failover and join times.
# Builds build/ (RelWithDebInfo) if needed. Last line: one JSON object.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${NLB_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$build" nlb-bench-convergence >/dev/null
exec "$build/tests/engine/nlb-bench-convergence"
