#!/usr/bin/env bash
# Many fault schedules on the simulated cluster (tests/engine/test_chaos.cpp, docs/convergence.md
# "Chaos"): SEEDS schedules from FIRST (default 1000 from 0), each checked for a bucket with two
# owners at any instant and for a cluster settled within 40 periods of the faults' end. The
# failed schedules' reports go to stderr; last line: one JSON object
#   {"schedules", "failed", "failed_seeds", "seconds"}.
#   usage: scripts/bench/chaos.sh [SEEDS] [FIRST]   (BUILD=build by default; no root needed)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
seeds=${1:-1000}
first=${2:-0}
[ -x "$build/tests/engine/nlb-engine-tests" ] || {
  scripts/install-deps.sh
  cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" nlb-engine-tests >/dev/null
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
t0=$(date +%s.%N)
NLB_CHAOS_SEEDS=$seeds NLB_CHAOS_FIRST_SEED=$first \
  "$build/tests/engine/nlb-engine-tests" "chaos*" >"$out" 2>&1 || true
t1=$(date +%s.%N)
grep -qE "test cases?" "$out" || { cat "$out" >&2; echo "chaos bench: the test did not run" >&2; exit 1; }
failed=$(grep -E '^  seed=[0-9]+$' "$out" | sort -u | sed 's/.*=//' | sort -n | paste -sd, - || true)
[ -z "$failed" ] || cat "$out" >&2
python3 - "$seeds" "$failed" "$t0" "$t1" <<'PY'
import json, sys
seeds, failed, t0, t1 = sys.argv[1:]
ids = [int(s) for s in failed.split(",") if s]
print(json.dumps({"schedules": int(seeds), "failed": len(ids), "failed_seeds": ids,
                  "seconds": round(float(t1) - float(t0), 1)}))
PY
