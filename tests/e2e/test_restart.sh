#!/usr/bin/env bash
# E2E 9: the agent of a host is killed with SIGKILL while it serves connections, and started
# again: the pinned dataplane kept serving, the new agent adopts it, the connections survive.
# Then the same as a package upgrade does it: `nlbadm prepare-restart` and SIGTERM, a restart
# the cluster never sees as a leave; and, for contrast, a plain SIGTERM, which is one.
source "$(dirname "$0")/common.sh"
topo_init "nlbe9-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 100
HEARTBEAT_MS=400 # tolerance 2 s: an adopting agent verifies its programs first (~0.5 s here, more under load)
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
# Host 1's arp_announce before any agent (the agent sets 2 while attached): every restart
# below keeps the dataplane, and the detach at the end must put this back, not the 2 an
# adopting agent finds.
ip netns exec "$TOPO-h1" sysctl -qw net.ipv4.conf.eth0.arp_announce=1
start_hosts "$rules" 1 2 3
wait_converged 3 20 1 2 3
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 60 --duration 60 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
sleep 1
{ kill -9 "$AGENT_PID_1" && wait "$AGENT_PID_1"; } 2>/dev/null || true
sleep 0.3
killed=$(log_lines 1)
topo_start_agent 1
wait_converged 3 20 1 2 3
check "the new agent adopted the pinned dataplane" adopted_since 1 "$killed"
sleep 2
touch "$TOPO_DIR/stop"
wait "$hold"
check "connections open across the restart completed" test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 60
check "no connection failed across the restart" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0
# The restarted agent's new stream replaces its earlier one at once: the others never count
# host 1 gone (they would take its buckets and reset its connections) nor a second host 1.
for i in 2 3; do
  check "host $i never dropped host 1" bash -c "! grep -Eq 'host_left detail=host 1 |duplicate_priority' '$TOPO_DIR/h$i.log'"
done
check "host 1 served some of them" test "$(json 'd["hosts"].get("1", 0) > 0' <"$TOPO_DIR/hold.json")" = True
((E2E_FAILED == 0)) || cat "$TOPO_DIR/hold.json" >&2

# --- prepare-restart, then SIGTERM: a restart, not a leave -------------------------------
declare -A mark
for i in 1 2 3; do mark[$i]=$(log_lines "$i"); done
rm -f "$TOPO_DIR/stop"
client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 60 --duration 60 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold2.json" &
hold=$!
sleep 1
check "prepare-restart answers its window" \
  test "$(nlbadm_h 1 --json prepare-restart | json 'd["window_s"]')" = 60
kill -TERM "$AGENT_PID_1"
wait "$AGENT_PID_1" 2>/dev/null || true
since 1 "${mark[1]}" >"$TOPO_DIR/h1.restart.log"
check "the agent logged a restart" grep -q '^info restarting' "$TOPO_DIR/h1.restart.log"
check "the agent kept its dataplane" bash -c "! grep -q '^info detached' '$TOPO_DIR/h1.restart.log'"
sleep 0.3
topo_start_agent 1
wait_converged 3 20 1 2 3
sleep 2
touch "$TOPO_DIR/stop"
wait "$hold"
check "prepare-restart: connections open across the restart completed" \
  test "$(json 'd["connections"]' <"$TOPO_DIR/hold2.json")" = 60
check "prepare-restart: no connection failed" test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold2.json")" = 0
check "prepare-restart: host 1 served some of them" \
  test "$(json 'd["hosts"].get("1", 0) > 0' <"$TOPO_DIR/hold2.json")" = True
for i in 2 3; do
  since "$i" "${mark[$i]}" >"$TOPO_DIR/h$i.restart.log"
  check "prepare-restart: host $i never saw host 1 stop or leave" \
    bash -c "! grep -Eq 'host 1 (is stopped|missed)|duplicate_priority' '$TOPO_DIR/h$i.restart.log'"
done
((E2E_FAILED == 0)) || cat "$TOPO_DIR/hold2.json" >&2

# --- a plain SIGTERM is a leave: the others hear it at once ------------------------------
for i in 1 2 3; do mark[$i]=$(log_lines "$i"); done
kill -TERM "$AGENT_PID_1"
wait "$AGENT_PID_1" 2>/dev/null || true
check "SIGTERM without prepare-restart detaches" grep -q '^info detached' <(since 1 "${mark[1]}")
sleep 0.5 # under two periods: a leave, not a timeout (tolerance 2 s)
for i in 2 3; do
  check "SIGTERM: host $i heard host 1 stop" grep -q 'host 1 is stopped' <(since "$i" "${mark[$i]}")
done
announce=$(ip netns exec "$TOPO-h1" sysctl -n net.ipv4.conf.eth0.arp_announce)
check "detached after two restarts: arp_announce as it was before the first attach ($announce)" \
  test "$announce" = 1
e2e_finish
