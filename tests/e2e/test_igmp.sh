#!/usr/bin/env bash
# igmp mode: the group membership belongs to the kernel, not to the agent. Hosts whose NIC
# filters multicast (topo_add_filtering_host) keep receiving the cluster's frames while their
# agent is dead (kill -9) and across a restart, so a tracked connection survives it; a
# --keep-dataplane stop keeps the membership, a real detach or stop removes it. Then the
# querier (cluster.igmp_querier): general queries appear on the segment, and of two queriers
# the one with the higher address falls silent while it hears the lower one, and takes over
# once the lower one is gone.
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

has_group_mac() { [[ " $(ip -n "$TOPO-h$1" maddr show dev eth0) " == *[[:space:]]"$GROUP_MAC"[[:space:]]* ]]; } # (grep -q: SIGPIPE)
no_group_mac() { ! has_group_mac "$1"; }
# The kernel-owned membership: the group as an address of eth0 with the autojoin flag, labelled
# so that SIOCGIFADDR still names the host's own address.
group_addresses() { ip -n "$TOPO-h$1" -4 -o addr show dev eth0 | grep -c " $GROUP/32 .*autojoin eth0:nlb" || true; }
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
killed=$(log_lines 1)
topo_start_agent 1
wait_converged 3 40 1 2 3
check "restart: the new agent adopted the pinned dataplane" adopted_since 1 "$killed"
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

# --- the querier ----------------------------------------------------------------------------
# capture_queries SECONDS: the IGMP queries the client's eth0 sees in that time, as JSON.
capture_queries() {
  ip netns exec "$TOPO-client" python3 - "$1" <<'PY'
import json, select, socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0))
end = time.monotonic() + float(sys.argv[1])
out = []
for _ in range(100000):
    left = end - time.monotonic()
    if left <= 0 or not select.select([s], [], [], left)[0]:
        break
    ip = s.recv(2048)[14:]
    if len(ip) < 20 or ip[9] != 2:
        continue
    ihl = (ip[0] & 15) * 4
    igmp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
    if len(igmp) < 8 or igmp[0] != 0x11:
        continue
    out.append({"src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20]),
                "ttl": ip[8], "options": ip[20:ihl].hex(), "len": len(igmp),
                "group": socket.inet_ntoa(igmp[4:8]), "qqic": igmp[9] if len(igmp) >= 12 else None})
print(json.dumps(out))
PY
}
queries_from() { python3 -c 'import json, sys; print(sum(q["src"] == sys.argv[1] for q in json.load(sys.stdin)))' "$1"; }
querier_state() { nlbadm_h "$1" --json query | json 'd["host"]["igmp_querier"]["querier"], d["host"]["igmp_querier"]["other_querier"]'; }

topo_init "nlbiq-$$"
no_snooping
for i in 1 2; do topo_add_host "$i"; done
topo_add_client 1
HEARTBEAT_MS=200
CLUSTER_EXTRA=', "igmp_querier": true, "igmp_query_interval_s": 2'
for i in 1 2; do host_config "$i" "" igmp; done

# Host 2 alone: it queries, as RFC 3376 says a query looks.
topo_start_agent 2
wait_converged 1 20 2
q=$(capture_queries 5)
check "one querier: host 2 queries (every 2 s: $(queries_from 10.10.0.12 <<<"$q") in 5 s)" \
  test "$(queries_from 10.10.0.12 <<<"$q")" -ge 2
check "the query is an IGMPv3 general query to 224.0.0.1, TTL 1, router alert, QQIC 2" \
  test "$(json '{(x["dst"], x["ttl"], x["options"], x["len"], x["group"], x["qqic"]) for x in d}' <<<"$q")" \
  = "{('224.0.0.1', 1, '94040000', 12, '0.0.0.0', 2)}"
check "host 2 says it is the querier" test "$(querier_state 2)" = "(True, None)"

# Host 1 joins with the lower address: it queries, host 2 falls silent.
topo_start_agent 1
wait_converged 2 20 1 2
sleep 1
q=$(capture_queries 6)
check "two queriers: the lower address queries ($(queries_from 10.10.0.11 <<<"$q") in 6 s)" \
  test "$(queries_from 10.10.0.11 <<<"$q")" -ge 2
check "two queriers: the higher address is silent ($(queries_from 10.10.0.12 <<<"$q") in 6 s)" \
  test "$(queries_from 10.10.0.12 <<<"$q")" = 0
check "host 2 says host 1 is the querier" test "$(querier_state 2)" = "(False, '10.10.0.11')"
check "host 1 says it is the querier" test "$(querier_state 1)" = "(True, None)"

# Host 1 leaves: after 2 × 2 s + 0.5 s without its queries host 2 takes over.
nlbadm_h 1 detach eth0 >/dev/null
q=$(capture_queries 8)
check "the lower one gone: host 2 queries again ($(queries_from 10.10.0.12 <<<"$q") in 8 s)" \
  test "$(queries_from 10.10.0.12 <<<"$q")" -ge 1
check "the lower one gone: host 1 sends nothing" test "$(queries_from 10.10.0.11 <<<"$q")" = 0
check "host 2 logged that it queries again" grep -q "igmp_querier.*querying again" "$TOPO_DIR/h2.log"
section_done
((E2E_FAILED == 0)) || exit 1
echo PASS
