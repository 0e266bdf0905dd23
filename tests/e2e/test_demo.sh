#!/usr/bin/env bash
# The README's first command, scripts/demo.sh, as a test: nothing else runs it, and it is the
# project's main job. It must exit 0, spread 300 HTTP requests over its 3 hosts, fail over
# within the bound it prints (tolerance + 2 = 7 periods), and serve every request after.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp /tmp/nlb-demo.XXXXXX)
trap 'rm -f "$out"' EXIT
failed=0
check() { # check "description" command...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what" >&2; failed=1; fi
}
"$root/scripts/demo.sh" >"$out" 2>&1
rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$out" | tee "$out.plain" >/dev/null
trap 'rm -f "$out" "$out.plain"' EXIT
check "demo.sh exits 0 (exit $rc)" test "$rc" = 0
# The two request rounds: "N host K" lines after each "300 HTTP requests" heading.
IFS="|" read -r first second < <(python3 - "$out.plain" <<'PY'
import re, sys
rounds, cur = [], None
for line in open(sys.argv[1]):
    if "300 HTTP requests" in line:
        cur = {}
        rounds.append(cur)
    elif line.startswith("== "):
        cur = None
    elif cur is not None and (m := re.match(r"\s*(\d+) (.*\S)", line)):
        cur[m.group(2)] = int(m.group(1))
fmt = lambda r: ",".join(f"{k}={v}" for k, v in sorted(r.items())) or "none"
print("|".join(fmt(r) for r in (rounds + [{}, {}])[:2]))
PY
)
echo "before the failover: $first; after: $second"
check "3 hosts share the first 300 requests, none failed, each 60-140" python3 -c '
import sys
r = dict(kv.split("=") for kv in sys.argv[1].split(","))
sys.exit(0 if sorted(r) == ["host 1", "host 2", "host 3"] and all(60 <= int(v) <= 140 for v in r.values()) else 1)' "$first"
check "hosts 1 and 2 serve all 300 after the failover" python3 -c '
import sys
r = dict(kv.split("=") for kv in sys.argv[1].split(","))
sys.exit(0 if sorted(r) == ["host 1", "host 2"] and sum(map(int, r.values())) == 300 else 1)' "$second"
periods=$(sed -n 's/.*all served again after [0-9.]* s (= \([0-9.]*\) heartbeat periods.*/\1/p' "$out.plain")
echo "failover: ${periods:-none} periods"
check "failover within tolerance + 2 = 7 periods" \
  python3 -c 'import sys; sys.exit(0 if sys.argv[1] and float(sys.argv[1]) <= 7 else 1)' "${periods:-}"
if ((failed)); then
  tail -n 60 "$out.plain" >&2
  exit 1
fi
echo "PASS"
