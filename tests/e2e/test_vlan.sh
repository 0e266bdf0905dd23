#!/usr/bin/env bash
# Issue 11, defect 10: a cluster on VLAN 100 of a trunk. Each host's XDP program sits on the
# trunk (eth0, cluster.vlan 100) and its stack meets the cluster on VLAN 100's interface (the
# VIPs, the dedicated IP, the heartbeats); VLAN 200 and untagged eth0 carry other networks
# through the same program. The switch ports hand frames over with their tags in them, as a
# trunk on the wire does. Checks: the hosts converge over heartbeats tagged 100 (and none
# other), clients on VLAN 100 are balanced and resolve the VIP to the cluster MAC (ARP answered
# inside the tag), and VLAN 200 and untagged traffic pass to each host's own stack untouched.
#
# This kernel has no 802.1Q support (`ip link add ... type vlan` fails), so a VLAN interface
# is a stand-in: a veth pair with the trunk's MAC, joined to the trunk by two TC programs
# (tests/tools/nlb_vlan_port.cpp), named to the agent by host.vlan_interface.
source "$(dirname "$0")/common.sh"
topo_init "nlbvl-$$"
VLAN_PORT=${VLAN_PORT:-$BUILD/tests/tools/nlb-vlan-port}

# vlan_link NS VID NAME ADDR: NAME stands for eth0.VID in NS, with ADDR.
vlan_link() {
  local ns=$1 vid=$2 name=$3 addr=$4
  ip -n "$ns" link add "$name" type veth peer name "${name}p"
  ip -n "$ns" link set "$name" address "$(ip -n "$ns" -br link show eth0 | awk '{print $3}')"
  ip -n "$ns" link set "${name}p" up
  ip -n "$ns" link set "$name" up
  ip -n "$ns" addr add "$addr" dev "$name"
  ip netns exec "$ns" "$VLAN_PORT" eth0 "$vid" "${name}p"
}

# trunk NS N: eth0 untagged 10.30.N/16, VLAN 200 10.20.N/16 (VLAN 100: by the caller).
trunk() {
  local ns=$1 n=$2
  ip -n "$ns" addr flush dev eth0
  ip -n "$ns" addr add "10.30.${n}/16" dev eth0
  vlan_link "$ns" 200 vl200 "10.20.${n}/16"
}

for i in 1 2; do
  topo_add_host "$i"
  trunk "$TOPO-h$i" "0.$((10 + i))"
  vlan_link "$TOPO-h$i" 100 vl100 "10.10.0.$((10 + i))/16"
  # A veth hands a tag over beside the frame, where XDP cannot read it; on a trunk the tag
  # is in the frame (a NIC: with rx-vlan-offload off, which the agent checks).
  ip netns exec "$TOPO-br" ethtool -K "h$i" txvlan off >/dev/null
done
ip netns add "$TOPO-client"
topo_link "$TOPO-client" client
trunk "$TOPO-client" 1.1
vlan_link "$TOPO-client" 100 vl100 10.10.1.1/16
for ((k = 2; k <= 20; k++)); do ip -n "$TOPO-client" addr add "10.10.1.$k/16" dev vl100; done

CLUSTER_EXTRA=', "vlan": 100'
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "single"}]'
for i in 1 2; do
  host_config "$i" "$rules" unicast "[]" ', "vlan_interface": "vl100"'
  topo_start_server "$i" 7000
  topo_start_agent "$i"
done
wait_converged 2 20 1 2

for i in 1 2; do
  q=$(nlbadm_h "$i" --json query)
  check "host $i: stack side on vl100" test "$(json 'd["host"]["vlan_interface"]' <<<"$q")" = vl100
  check "host $i: params say vlan 100" test "$(nlbadm_h "$i" --json params | json 'd["cluster"]["vlan"]')" = 100
  check "host $i: the VIP on vl100" bash -c "ip -n '$TOPO-h$i' addr show dev vl100 | grep -q ' $CLUSTER_IP/32'"
  check "host $i: no VIP on the trunk" bash -c "! ip -n '$TOPO-h$i' addr show dev eth0 | grep -q ' $CLUSTER_IP/'"
  w=$(ip netns exec "$TOPO-br" python3 "$NLB_ROOT/tests/tools/nlb_vlan_watch.py" --ifname "h$i" --duration 1.5)
  check "host $i: heartbeats tagged 100 ($w)" test "$(json 'd["vlans"].get("100", 0) > 0' <<<"$w")" = True
  check "host $i: no heartbeat outside VLAN 100 ($w)" test "$(json 'len(d["vlans"])' <<<"$w")" = 1
done

r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+20 --per-source 5 --proto tcp)
check "VLAN 100: 100 TCP connections answered ($(json 'd["answers"]' <<<"$r"))" \
  test "$(json 'sum(d["answers"].values())' <<<"$r")" = 100
check "VLAN 100: no failure" test "$(json 'len(d["failures"])' <<<"$r")" = 0
check "VLAN 100: both hosts served" test "$(json 'len(d["answers"])' <<<"$r")" = 2
check "VLAN 100: one host per source" test "$(json 'all(len(set(v)) == 1 for v in d["per_source"].values())' <<<"$r")" = True
check "VLAN 100: the VIP resolves to the cluster MAC" \
  bash -c "ip -n '$TOPO-client' neigh show $CLUSTER_IP dev vl100 | grep -q '02:bf:0a:0a:00:64'"

# Other VLANs and untagged frames pass the dataplane untouched, to each host's own stack.
for i in 1 2; do
  r=$(client burst --vip "10.20.0.$((10 + i))" --port 7000 --sources 10.20.1.1 --per-source 10 --proto tcp)
  check "VLAN 200: host $i's own address answered by host $i ($r)" \
    test "$(json 'd["answers"]' <<<"$r")" = "{'$i': 10}"
  r=$(client burst --vip "10.30.0.$((10 + i))" --port 7000 --sources 10.30.1.1 --per-source 10 --proto tcp)
  check "untagged: host $i's own address answered by host $i ($r)" \
    test "$(json 'd["answers"]' <<<"$r")" = "{'$i': 10}"
  s=$(nlbadm_h "$i" --json stats)
  check "host $i: nothing malformed" test "$(json 'd["dataplane"]["malformed"]' <<<"$s")" = 0
done
e2e_finish
