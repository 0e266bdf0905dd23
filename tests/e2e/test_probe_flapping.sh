#!/usr/bin/env bash
# Issue 12: a health probe that flaps causes no more reallocations than rise/fall allow.
# Host 2's exec probe (run as nobody) toggles a state file on each check:
#   phase 1 pass, fail, pass, fail, ...           (rise 2, fall 2: never two alike in a row)
#   phase 2 fail, fail, pass, pass, fail, fail, ... (rise 3, fall 3 in a second agent run)
# Neither pattern reaches its threshold, so the verdict never changes: no probe_down, no
# convergence, host 2 keeps its share throughout, over 40 checks each. The control (two and
# two with rise/fall 2) reaches it: the share moves, once per verdict change at most.
source "$(dirname "$0")/common.sh"
topo_init "nlbpf-$$"
for i in 1 2; do topo_add_host "$i"; done
HEARTBEAT_MS=100
INTERVAL_MS=150
STATE=$TOPO_DIR/state
mkdir -m 777 "$STATE"
chmod 711 "$TOPO_DIR" # nobody reaches $STATE
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none"}]'
# A check's result from a counter in a file: four passes (the probe rises, host 2 takes its
# share), then the pattern, $1 results per half period (1: fail, pass, fail, ...; 2: fail,
# fail, pass, pass, ...). The counter is replaced by a rename, never rewritten in place: a
# read between the truncation and the write found it empty (one CI run in many).
script='n=$(cat "$0" 2>/dev/null || echo 0); echo $((n + 1)) > "$0.new" && mv "$0.new" "$0"; test "$n" -lt 4 || test $(( ((n - 4) / $1) % 2 )) = 1'

run_phase() { # run_phase NAME PER_HALF RISE_FALL none|some
  local name=$1 half=$2 rf=$3 expect=$4 i before
  rm -f "$STATE/counter" "$STATE/counter.new"
  for i in 1 2; do
    host_config "$i" "$rules"
    # host_config's document plus the health key (built in Python: the script has quotes).
    python3 - "$TOPO_DIR/h$i.json" "$i" "$script" "$STATE/counter" "$half" "$rf" "$INTERVAL_MS" <<'PY'
import json, sys
path, host, script, counter, half, rf, interval = sys.argv[1:]
c = json.load(open(path))
probes = []
if host == "2":
    probes.append({"name": "flap", "type": "exec", "user": "nobody",
                   "command": ["/bin/sh", "-c", script, counter, half],
                   "interval_ms": int(interval), "timeout_ms": 140, "rise": int(rf), "fall": int(rf)})
c["health"] = {"probes": probes}
json.dump(c, open(path, "w"), indent=1)
PY
    : >"$TOPO_DIR/h$i.log"
    topo_start_agent "$i"
  done
  wait_converged 2 20 1 2
  sleep 1 # the first passes: up, host 2 takes its share
  before=$(grep -c 'convergence_started' "$TOPO_DIR/h1.log" || true)
  sleep "$(python3 -c "print(40 * $INTERVAL_MS / 1000)")"
  local checks downs reallocations
  checks=$(cat "$STATE/counter")
  downs=$(grep -c probe_down "$TOPO_DIR/h2.log" || true)
  reallocations=$(($(grep -c 'convergence_started' "$TOPO_DIR/h1.log" || true) - before))
  echo "$name: $checks checks, $downs probe_down, $reallocations reallocations"
  check "$name: the probe ran (>= 30 checks)" test "$checks" -ge 30
  if [ "$expect" = none ]; then
    check "$name: no verdict change (no probe_down)" test "$downs" = 0
    check "$name: no reallocation" test "$reallocations" = 0
    check "$name: host 2 keeps its share" \
      test "$(nlbadm_h 2 --json query | json 'd["rules"][0]["buckets_owned"] > 1000')" = True
  else
    # The control: a pattern that reaches fall and rise does move the share, once per
    # verdict change at most (down and up: 2 per period of 2 x rise/fall checks).
    check "$name: the verdict follows the pattern (probe_down seen)" test "$downs" -ge 3
    check "$name: at most one reallocation per verdict change" test "$reallocations" -le $((2 * downs + 1))
  fi
  for i in 1 2; do
    kill "$(eval echo "\$AGENT_PID_$i")" 2>/dev/null || true
    wait "$(eval echo "\$AGENT_PID_$i")" 2>/dev/null || true
  done
}
run_phase "alternating, rise/fall 2" 1 2 none
run_phase "two and two, rise/fall 3" 2 3 none
run_phase "control: two and two, rise/fall 2" 2 2 some
e2e_finish
