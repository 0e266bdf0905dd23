#!/usr/bin/env bash
# Runs every fault test one after the other (or those named: run_all.sh deaf pause), prints
# each one's JSON line and a summary; exit status 1 if any failed. As root, after a build:
#   BUILD=build tests/faults/run_all.sh            FAULTS_JSON=out.jsonl keeps the lines
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BUILD=${BUILD:-$here/../../build}
faults=("$@")
((${#faults[@]})) || faults=(deaf blind other_key pause pause_restart restart_timing filtered_restart outage_pause short_pauses starved starved_join twin_lossy slow_log
  misconfigured_first replay slow_timing forged_flood forged_flood_random_sources rolling_upgrade link_flap vip_removed mtu rx_dead rx_dead_pair other_cluster_ip)
out=${FAULTS_JSON:-$(mktemp /tmp/nlb-faults.XXXXXX.jsonl)}
export FAULTS_JSON=$out
start=$SECONDS
failed=()
for f in "${faults[@]}"; do
  t=$SECONDS
  # The flood runs as ctest runs it: from one source MAC, and from random ones.
  script=$f src=own
  [ "$f" != forged_flood_random_sources ] || { script=forged_flood; src=random; }
  if FLOOD_SRC=$src bash "$here/test_$script.sh" >"/tmp/nlb-fault-$f.log" 2>&1; then r=PASS; else r=FAIL; failed+=("$f"); fi
  grep '^{"fault"' "/tmp/nlb-fault-$f.log" || echo "{\"fault\": \"$f\", \"pass\": false, \"error\": \"no report, see /tmp/nlb-fault-$f.log\"}"
  echo "== $f: $r ($((SECONDS - t)) s, log /tmp/nlb-fault-$f.log)"
done
echo "== summary ($((SECONDS - start)) s; lines in $out)"
python3 - "$out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    v = {k: str(d.get(k)) for k in ("requests", "answered_twice", "lost", "recover_s")}
    print(f'{d["fault"]:<20} {"pass" if d["pass"] else "FAIL":<5} requests {v["requests"]:>6}  '
          f'twice {v["answered_twice"]:>5}  lost {v["lost"]:>5}  recover_s {v["recover_s"]:>6}'
          + ("" if d["pass"] else "  " + "; ".join(d["failures"])))
PY
if ((${#failed[@]})); then echo "failed: ${failed[*]}"; exit 1; fi
