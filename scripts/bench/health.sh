#!/usr/bin/env bash
# Health probes and load feedback on a real 3-host cluster in namespaces (the e2e topology):
#   drain_s    host 2's health endpoint stops -> host 2 owns no bucket of the rule (its probe:
#              http, interval 200 ms, timeout 100 ms, fall 2; heartbeat 100 ms)
#   restore_s  the endpoint is back -> host 2 owns its third again (rise 2)
#   fail_open_ok every endpoint down -> panic mode: 200 TCP requests from 100 sources, all
#              answered
#   feedback_settle_s  host 2's server made 3 times as slow under 200 new connections a
#              second (load_feedback connections, interval 1000 ms) -> the hosts' active
#              connections (ss, 2 s windows) within 15 % of each other
#   reallocations_per_min_steady  weight changes in the 60 s after that
# Last line: one JSON object.
#   usage: scripts/bench/health.sh   (as root; BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-$PWD/build}
[ "$(id -u)" -eq 0 ] || { echo "health bench: run as root" >&2; exit 1; }
[ -x "$BUILD/agent/daemon/nlb-agent" ] || {
  scripts/install-deps.sh
  cmake -S . -B "$BUILD" -G Ninja >/dev/null
  ninja -C "$BUILD" nlb-agent nlbadm >/dev/null
}
source tests/e2e/common.sh
topo_init "nlbbh-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=100
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none",
         "load_feedback": {"metric": "connections", "interval_ms": 1000, "sensitivity": 0.1}}]'
probe='{"probes": [{"name": "web", "type": "http", "url": "http://127.0.0.1:8080/healthz",
  "interval_ms": 200, "timeout_ms": 100, "rise": 2, "fall": 2}]}'
declare -A HEALTH
for i in 1 2 3; do
  host_config "$i" "$rules"
  python3 - "$TOPO_DIR/h$i.json" "$probe" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["health"] = json.loads(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
  echo 0.3 >"$TOPO_DIR/delay$i"
  topo_start_server "$i" 7000 --delay-file "$TOPO_DIR/delay$i"
  topo_start_server "$i" 8080
  HEALTH[$i]=$!
  topo_start_agent "$i"
done
wait_converged 3 30 1 2 3
sleep 1

owned() { nlbadm_h "$1" --json query | json 'd["rules"][0]["buckets_owned"]'; }
# Seconds from now until `owned I` satisfies the Python expression over n (at most 30 s).
until_owned() {
  local i=$1 expr=$2 start=$EPOCHREALTIME deadline=$((SECONDS + 30)) n
  while ((SECONDS < deadline)); do
    n=$(owned "$i" 2>/dev/null || echo -1)
    if python3 -c "import sys; n = int(sys.argv[1]); sys.exit(0 if ($expr) else 1)" "$n"; then
      python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$start" "$EPOCHREALTIME"
      return 0
    fi
    sleep 0.02
  done
  echo null
}

kill "${HEALTH[2]}"
drain_s=$(until_owned 2 'n == 0')
echo "drain: ${drain_s} s" >&2
topo_start_server 2 8080
HEALTH[2]=$!
restore_s=$(until_owned 2 'n >= 4096 // 3 - 2')
echo "restore: ${restore_s} s" >&2

for i in 1 2 3; do kill "${HEALTH[$i]}"; done
sleep 1.5 # fall 2 x (interval + timeout) + the heartbeats that carry it
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 2 --timeout 3)
panic=$(nlbadm_h 1 --json query | json 'd["health"]["panic"]')
fail_open_ok=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("true" if not r["failures"] and sum(r["answers"].values()) == 200 and sys.argv[2] == "True" else "false")' "$r" "$panic")
echo "fail open: panic=$panic answers=$(json 'd["answers"]' <<<"$r")" >&2
for i in 1 2 3; do topo_start_server "$i" 8080; HEALTH[$i]=$!; done
sleep 1.5

client churn --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --rate 200 --lifetime 0.01 \
  --interval 0.01 --timeout 5 --duration 200 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/churn.json" &
churn=$!
sleep 15
# Within 15 % over a 2 s window of ss samples.
balanced() { connections_balanced 2 7000 1 2 3 >&2; }
echo 0.9 >"$TOPO_DIR/delay2"
start=$EPOCHREALTIME
feedback_settle_s=null
while python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) < 90 else 1)" "$start" "$EPOCHREALTIME"; do
  if balanced && balanced; then # two windows in a row: settled, not a passing moment
    feedback_settle_s=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]) - 4, 1))" "$start" "$EPOCHREALTIME")
    break
  fi
done
echo "feedback settled: ${feedback_settle_s} s" >&2
changes() { cat "$TOPO_DIR"/h[123].log | grep -c 'load_weight_changed' || true; }
before=$(changes)
sleep 60
reallocations=$(($(changes) - before))
touch "$TOPO_DIR/stop"
wait "$churn"
printf '{"drain_s": %s, "restore_s": %s, "fail_open_ok": %s, "feedback_settle_s": %s, "reallocations_per_min_steady": %s}\n' \
  "$drain_s" "$restore_s" "$fail_open_ok" "$feedback_settle_s" "$reallocations"
