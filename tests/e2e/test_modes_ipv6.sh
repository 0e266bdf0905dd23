#!/usr/bin/env bash
# E2E 6 and 7: multicast and igmp modes (unicast is every other test) serve TCP and UDP with
# no duplicate answer, and `nlbadm ip2mac` names the MAC the cluster answers ARP with; an IPv6
# VIP beside the IPv4 cluster IP is reachable (neighbour solicitation answered by the
# dataplane) and serves TCP and UDP.
source "$(dirname "$0")/common.sh"

run_mode() {
  local mode=$1 v6=${2:-}
  topo_init "nlbe6-$mode-$$"
  for i in 1 2 3; do topo_add_host "$i" "$v6"; done
  topo_add_client 100
  local vips='[]'
  [ -z "$v6" ] || vips='["fd00::100"]'
  for i in 1 2 3; do
    host_config "$i" '[{"vip": "all", "ports": [7000, 7000], "protocol": "both", "mode": "multiple", "affinity": "none"}]' "$mode" "$vips"
    if [ -n "$v6" ]; then
      topo_start_server "$i" 7000 --vip "$CLUSTER_IP" --vip fd00::100
    else
      topo_start_server "$i" 7000 --vip "$CLUSTER_IP"
    fi
    topo_start_agent "$i"
  done
  wait_converged 3 20 1 2 3
  local r
  r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 3)
  check "$mode: 300 TCP connections answered" test "$(json 'sum(d["answers"].values())' <<<"$r")" = 300
  check "$mode: every host served" test "$(json 'len(d["answers"])' <<<"$r")" = 3
  r=$(client burst --vip "$CLUSTER_IP" --port 7000 --sources 10.10.1.1+100 --per-source 3 --proto udp)
  check "$mode: 300 UDP requests answered once each" test "$(json 'sum(d["answers"].values()), d["duplicates"]' <<<"$r")" = "(300, 0)"
  local want got
  want=$("$NLBADM" ip2mac "$CLUSTER_IP" --mode "$mode" | awk '{print $1}')
  got=$(ip -n "$TOPO-client" neigh show "$CLUSTER_IP" | awk '{print $5}')
  check "$mode: ip2mac ($want) is the MAC the cluster answers ARP with ($got)" test "$want" = "$got"
  if [ -n "$v6" ]; then
    r=$(client burst --vip fd00::100 --port 7000 --sources "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')" --per-source 10)
    check "IPv6: 160 TCP connections answered" test "$(json 'sum(d["answers"].values()), len(d["failures"])' <<<"$r")" = "(160, 0)"
    check "IPv6: spread over the hosts" test "$(json 'len(d["answers"]) > 1' <<<"$r")" = True
    r=$(client burst --vip fd00::100 --port 7000 --sources "$(printf 'fd00::1:%d,' $(seq 1 16) | sed 's/,$//')" --per-source 10 --proto udp)
    check "IPv6: 160 UDP requests answered once each" test "$(json 'sum(d["answers"].values()), d["duplicates"]' <<<"$r")" = "(160, 0)"
    got=$(ip -n "$TOPO-client" -6 neigh show fd00::100 | awk '{print $5}')
    check "IPv6: the solicitation was answered with the cluster MAC ($got)" test "$want" = "$got"
    q=$(nlbadm_h 1 --json stats)
    check "IPv6: the dataplane answered neighbour solicitations" test "$(json 'sum(1 for _ in [0]) if d["dataplane"]["nd_replied"] > 0 else 0' <<<"$q")" = 1
  fi
  topo_cleanup
  trap - EXIT
}

run_mode multicast
run_mode igmp
run_mode unicast v6
e2e_finish
