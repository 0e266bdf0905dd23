#!/usr/bin/env bash
# E2E 4: 100 long-lived TCP connections stay up (no RST, no stall) while a fifth host joins and
# new connections reach it; then `drainstop` of a host lets its open connections finish while
# new ones go elsewhere, and the host stops once they are done.
source "$(dirname "$0")/common.sh"
topo_init "nlbe4-$$"
for i in 1 2 3 4 5; do topo_add_host "$i"; done
topo_add_client 200
HEARTBEAT_MS=100
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
for i in 1 2 3 4 5; do
  host_config "$i" "$rules"
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
done
for i in 1 2 3 4; do topo_start_agent "$i"; done
wait_converged 4 20 1 2 3 4

client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 100 --duration 60 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop1" >"$TOPO_DIR/hold1.json" &
hold1=$!
sleep 1
topo_start_agent 5
wait_converged 5 20 1 2 3 4 5
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.101+100 --per-source 4)
check "new connections answered after the join" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "new connections reach the new host" test "$(json 'd["answers"].get("5", 0) > 0' <<<"$r")" = True
sleep 2
touch "$TOPO_DIR/stop1"
wait "$hold1"
check "100 connections open across the join completed" test "$(json 'd["connections"]' <"$TOPO_DIR/hold1.json")" = 100
check "no connection reset or stalled across the join" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold1.json")" = 0

# Drainstop host 2 while it serves long-lived connections.
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 100 --duration 60 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop2" >"$TOPO_DIR/hold2.json" &
hold2=$!
sleep 1
check "drainstop accepted" nlbadm_h 2 drainstop
sleep 1
check "host 2 is draining" test "$(nlbadm_h 2 --json query | json 'd["host"]["state"]')" = draining
r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.101+100 --per-source 4)
check "new connections answered while host 2 drains" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "no new connection reaches the draining host" test "$(json 'd["answers"].get("2", 0)' <<<"$r")" = 0
touch "$TOPO_DIR/stop2"
wait "$hold2"
check "connections of the draining host finished cleanly" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold2.json")" = 0
check "the draining host served some of them" test "$(json 'd["hosts"].get("2", 0) > 0' <"$TOPO_DIR/hold2.json")" = True
deadline=$((SECONDS + 30))
until [ "$(nlbadm_h 2 --json query | json 'd["host"]["state"]')" = stopped ] || ((SECONDS > deadline)); do
  sleep 0.5
done
check "host 2 stops once its connections are done" test "$(nlbadm_h 2 --json query | json 'd["host"]["state"]')" = stopped
wait_converged 4 20 1 3 4 5
e2e_finish
