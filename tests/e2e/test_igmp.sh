#!/usr/bin/env bash
# igmp mode: the group membership belongs to the kernel, not to the agent. Hosts whose NIC
# filters multicast (topo_add_filtering_host) keep receiving the cluster's frames while their
# agent is dead (kill -9) and across a restart, so a tracked connection survives it; a
# --keep-dataplane stop keeps the membership, a real detach or stop removes it.
source "$(dirname "$0")/common.sh"

GROUP=239.255.0.100 # igmp_group(10.10.0.100)
GROUP_MAC=01:00:5e:7f:00:64

# The Linux bridge snoops by IP address: once it knows a querier it sends a multicast frame
# that carries no IP group (the cluster's unicast-IP frames) to router ports only. igmp mode is
# for switches that forward the group's MAC address; the hosts' own filters are what this
# test is about, so the bridge floods.
no_snooping() { ip -n "$TOPO-br" link set br0 type bridge mcast_snooping 0; }

# The end of one topology: its agents' logs when something failed, then cleanup.
section_done() {
  if ((E2E_FAILED)); then
    echo "--- agent logs ---" >&2
    tail -n 40 "$TOPO_DIR"/h*.log >&2 || true
  fi
  topo_cleanup
  trap - EXIT
}

has_group_mac() { ip -n "$TOPO-h$1" maddr show dev eth0 | grep -qw "$GROUP_MAC"; }
no_group_mac() { ! has_group_mac "$1"; }
# The kernel-owned membership: the group as an address of eth0 with the autojoin flag.
group_addresses() { ip -n "$TOPO-h$1" -4 -o addr show dev eth0 | grep -c " $GROUP/32 .*autojoin" || true; }
rx_packets() { ip netns exec "$TOPO-h$1" cat /sys/class/net/eth0/statistics/rx_packets; }

# --- the membership across kill -9, restart, keep-dataplane stop, detach and stop ---------
topo_init "nlbig-$$"
no_snooping
for i in 1 2 3; do topo_add_filtering_host "$i"; done
topo_add_client 100
# A two-second period: the watchdog (tolerance − 1 periods, re-armed every 2 s) gives the dead
# agent's dataplane at least 6 s, time to watch it receive for longer than the client waits
# for an answer, and to start the next agent.
HEARTBEAT_MS=2000
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]'
for i in 1 2 3; do
  host_config "$i" "$rules" igmp
  topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
  topo_start_agent "$i"
done
wait_converged 3 40 1 2 3
for i in 1 2 3; do
  check "host $i: eth0 lets the group's MAC in" has_group_mac "$i"
  check "host $i: the group is an autojoin address of eth0" test "$(group_addresses "$i")" = 1
done

client hold --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --count 60 --duration 60 \
  --interval 0.1 --timeout 2 --stop-file "$TOPO_DIR/stop" >"$TOPO_DIR/hold.json" &
hold=$!
# Every connection open before the agent dies (python starts slowly on a loaded machine).
established() { ip netns exec "$TOPO-client" ss -Htn state established dst "$CLUSTER_IP:7000" | wc -l; }
for ((k = 0; k < 100 && $(established) < 60; k++)); do sleep 0.2; done
check "the client holds 60 connections" test "$(established)" = 60
sleep 1
{ kill -9 "$AGENT_PID_1" && wait "$AGENT_PID_1"; } 2>/dev/null || true
check "kill -9: the membership stays" has_group_mac 1
# The client's connections and the other hosts' heartbeats all go to the cluster MAC: a host
# that is still a member receives hundreds a second, one that is not receives none of them.
before=$(rx_packets 1)
sleep 1
after=$(rx_packets 1)
check "kill -9: eth0 still receives the cluster's frames ($((after - before)) in 1 s)" \
  test $((after - before)) -ge 50
# Dead for 3 s in all, longer than the client's 2 s timeout: a host that lost the group would
# fail every connection it serves.
sleep 2
topo_start_agent 1
wait_converged 3 40 1 2 3
check "restart: the new agent adopted the pinned dataplane" grep -q "adopted" "$TOPO_DIR/h1.log"
check "restart: the membership is adopted, not added twice" test "$(group_addresses 1)" = 1
sleep 2
touch "$TOPO_DIR/stop"
wait "$hold"
check "connections open across kill -9 and restart completed" \
  test "$(json 'd["connections"]' <"$TOPO_DIR/hold.json")" = 60
check "no connection failed across kill -9 and restart" \
  test "$(json 'len(d["failures"])' <"$TOPO_DIR/hold.json")" = 0
check "host 1 served some of them" test "$(json 'd["hosts"].get("1", 0) > 0' <"$TOPO_DIR/hold.json")" = True
((E2E_FAILED == 0)) || cat "$TOPO_DIR/hold.json" >&2

# SIGTERM with --keep-dataplane: the dataplane stays pinned, and so does the membership.
{ kill "$AGENT_PID_1" && wait "$AGENT_PID_1"; } 2>/dev/null || true
topo_start_agent 1 --keep-dataplane
wait_converged 3 40 1 2 3
{ kill "$AGENT_PID_1" && wait "$AGENT_PID_1"; } 2>/dev/null || true
check "keep-dataplane stop: the membership stays" has_group_mac 1
check "keep-dataplane stop: the group address stays" test "$(group_addresses 1)" = 1
topo_start_agent 1
wait_converged 3 40 1 2 3
# A real detach takes the membership away, like everything else attach did.
nlbadm_h 1 detach eth0 >/dev/null
check "detach: the group's MAC is out of eth0's filter" no_group_mac 1
check "detach: the group address is gone" test "$(group_addresses 1)" = 0
# And so does a stop without --keep-dataplane.
{ kill "$AGENT_PID_2" && wait "$AGENT_PID_2"; } 2>/dev/null || true
check "stop: the group's MAC is out of eth0's filter" no_group_mac 2
check "stop: the group address is gone" test "$(group_addresses 2)" = 0
section_done

((E2E_FAILED == 0)) || exit 1
echo PASS
