#!/usr/bin/env bash
# The watchdog has slack at the smallest tolerance (docs/convergence.md, rule 5): 3 hosts at
# heartbeat_tolerance 2 — a watchdog timeout of one period — run DURATION s (default 30)
# healthy, under long-lived connections that talk every 0.5 s. The agent re-arms the watchdog
# 4 times per timeout (120 re-arms in 30 s, each in time): no watchdog_expired in any log, no
# packet dropped by the watchdog, no host lost, no connection lost. DURATION=600 is the soak.
source "$(dirname "$0")/common.sh"
topo_init "nlbwd-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 30
HEARTBEAT_MS=${HEARTBEAT_MS:-1000}
TOLERANCE=2
DURATION=${DURATION:-30}

rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "none"}]'
start_hosts "$rules" 1 2 3
wait_converged 3 20 1 2 3
convergences() { nlbadm_h "$1" --json stats | json 'd["convergences"]'; }
declare -A before
for i in 1 2 3; do before[$i]=$(convergences "$i"); done

client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+30 --count 60 \
  --duration "$DURATION" --interval 0.5 --timeout 2 >"$TOPO_DIR/hold.json"
echo "hold: $(json '{k: d[k] for k in ("connections", "hosts")}' <"$TOPO_DIR/hold.json")"
check "60 connections held for ${DURATION}s" test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 60
check "no connection lost" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0
for i in 1 2 3; do
  check "host $i: no watchdog_expired" test -z "$(grep watchdog_expired "$TOPO_DIR/h$i.log" || true)"
  s=$(nlbadm_h "$i" --json stats)
  check "host $i: no packet dropped by the watchdog" \
    test "$(json 'sum(r["dropped_watchdog"] for r in d["rules"])' <<<"$s")" = 0
  check "host $i: watchdog alive" test "$(json 'd["dataplane"]["watchdog_alive"]' <<<"$s")" = True
  check "host $i: no convergence since the start" test "$(json 'd["convergences"]' <<<"$s")" = "${before[$i]}"
done
e2e_finish
